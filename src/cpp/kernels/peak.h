// Tight loops of independent multiply-accumulate chains, one per ISA, used to measure the compute
// roof (ops per iteration given below). Each returns a checksum so the loop is not optimized out.
#pragma once
#include <cstdint>

namespace mixq {

int64_t peak_loop_int8_avx512vnni(int64_t iters);  // 16 x 64 MACs = 2048 ops per iteration
int64_t peak_loop_fp32_avx512(int64_t iters);      // 16 x 16 FMAs = 512 flops per iteration
int64_t peak_loop_bf16_avx512bf16(int64_t iters);  // 16 x 32 MACs = 1024 flops per iteration
int64_t peak_loop_fp32_avx2(int64_t iters);        // 12 x 8 FMAs = 192 flops per iteration
int64_t peak_loop_int8_avx2(int64_t iters);        // 12 x 16 int16 MACs = 384 ops per iteration

}  // namespace mixq
