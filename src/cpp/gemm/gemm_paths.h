// Where gemm_s8 switches paths, one row per ISA level. A path whose kernel the level lacks (s8g
// below avx512vnni, s8w above avx2) is never taken, whatever its row says.
#pragma once
#include <cstdint>

#include "core/isa.h"

namespace mixq {

struct GemmPaths {
  // Low-bit weights from this many rows: unpacked to s8 once per row block and reused by all its
  // rows (s8g). Below it the codes are unpacked in registers: faster up to 64 rows at
  // K = N = 4096, and for decode, where they stream from DRAM.
  int64_t groupwise_min_rows;
  // A weight of at most this many codes is small (a CNN's late layers at batch 1, M = 16..49)...
  int64_t small_weight_codes;
  // ... and goes groupwise from this many rows: its in-register path also pays a parallel pass of
  // per-group activation sums (MobileNetV2-small's w4a8 layers at M = 49, K = 144..192: 2x -> 1.2x
  // the w8a8 time).
  int64_t small_weight_min_rows;
  // One group over all of K and at most this many codes, from groupwise_min_rows rows: unpacked
  // serially into an int8 weight and run on the int8 kernel (MobileNetV2-small's 1x1 convs, K = 9..96:
  // w8a8 speed instead of 12-35 % slower at batch 128). Larger weights keep the groupwise path,
  // which unpacks in parallel (serially, 4096 x 4096 per-channel codes made W4A8 at M = 128 3x slower).
  int64_t single_group_max_codes;
  // int8 on int16-widened operands (s8w) from this many rows and output columns: narrower weights
  // do not repay widening A (conv shapes with N = 16-64 ran 10-35 % slower).
  int64_t wide_min_rows;
  int64_t wide_min_cols;
};

// Indexed by Isa.
constexpr GemmPaths kGemmPaths[] = {
    /* ref */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
    /* avx2 */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
    /* avx512 */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
    /* avx512vnni */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
    // Arm and RISC-V: the x86 switch points, not tuned (no hardware here to time them on).
    /* neon */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
    /* dotprod */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
    /* i8mm */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
    /* sve */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
    /* rvv */ {96, int64_t(1) << 18, 12, int64_t(1) << 16, 16, 128},
};
static_assert(sizeof(kGemmPaths) / sizeof(kGemmPaths[0]) == sizeof(kAllIsas) / sizeof(kAllIsas[0]),
              "one row per Isa");

inline const GemmPaths& gemm_paths(Isa isa) { return kGemmPaths[int(isa)]; }

}  // namespace mixq
