// CPU feature and cache detection: cpuid + xgetbv on x86-64, getauxval(AT_HWCAP/AT_HWCAP2) on
// aarch64 and riscv64 (riscv64 also /proc/cpuinfo's isa line when hwcap lacks V).
#pragma once
#include <cstdint>

#include "core/isa.h"

namespace mixq {

struct CpuFeatures {
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool neon = false, dotprod = false, i8mm = false, sve = false, sve2 = false;  // aarch64
  int sve_bytes = 0;                                                           // SVE vector length
  bool rvv = false;                                                            // riscv64 V 1.0
  int rvv_vlen_bits = 0;
  int64_t l1d_bytes = 32 << 10, l2_bytes = 1 << 20, l3_bytes = 32 << 20;
  int physical_cores = 1;
};

const CpuFeatures& cpu_features();
bool isa_supported(Isa isa);

}  // namespace mixq
