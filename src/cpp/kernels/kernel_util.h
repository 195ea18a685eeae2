// Small helpers shared by the SIMD micro-kernel translation units (internal linkage only).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace mixq {
namespace {

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 4 u8 values -> 4 zero-extended int16 lanes packed in a 64-bit word (for vpmaddwd paths).
inline int64_t widen_u8x4(const uint8_t* p) {
  return int64_t(uint64_t(p[0]) | (uint64_t(p[1]) << 16) | (uint64_t(p[2]) << 32) | (uint64_t(p[3]) << 48));
}

// body(p, offset) for k steps p = 0..k_steps-1 of an s8 kernel (GemmS8Fn): offset is the byte
// offset of step p in an A row, its run's start (run s at s * seg_stride) plus 4 per step in the run.
template <typename Body>
inline void for_each_k_step(int64_t k_steps, int64_t seg_steps, int64_t seg_stride, Body&& body) {
  if (seg_steps <= 0 || seg_steps > k_steps) seg_steps = k_steps;
  for (int64_t p0 = 0, run = 0; p0 < k_steps; p0 += seg_steps, run += seg_stride)
    for (int64_t q = 0; q < seg_steps; ++q) body(p0 + q, run + 4 * q);
}

// Calls f(std::integral_constant<int, mr>) for a runtime mr in 1..MAX, so each row count gets a
// fully unrolled kernel instance.
template <int MAX, typename F>
inline void dispatch_mr(int mr, F&& f) {
  if (mr == MAX) return f(std::integral_constant<int, MAX>{});
  if constexpr (MAX > 1) dispatch_mr<MAX - 1>(mr, f);
}

// The AVX2 low-bit kernels' tiles over one 32-column panel, at most 8 accumulators of 8 columns: 1-2
// rows take the whole panel, 3-4 rows two halves, so one decode of the codes serves all four rows
// (row pairs over the whole panel measured 0.85x for weight-only, no faster for W4A8). Runs
// f(MR, CH, c0): MR rows, CH chunks from chunk c0.
template <typename F>
inline void panel_tiles_8acc(int mr, F&& f) {
  dispatch_mr<4>(mr, [&](auto MR) {
    if constexpr (MR.value <= 2) {
      f(MR, std::integral_constant<int, 4>{}, 0);
    } else {
      f(MR, std::integral_constant<int, 2>{}, 0);
      f(MR, std::integral_constant<int, 2>{}, 2);
    }
  });
}

// The same tiles for AVX2 kernels whose B costs little to prepare (int8, bf16): 3-4 rows take the
// whole panel in row pairs, so every pass reads whole cache lines in order (Zen 3, M = 3-8: int8
// 1.2-1.3x, bf16 1.45-1.6x faster than halves). Runs f(MR, r0): MR (1-2) rows from row r0.
template <typename F>
inline void panel_row_pairs(int mr, F&& f) {
  dispatch_mr<4>(mr, [&](auto MR) {
    if constexpr (MR.value <= 2) {
      f(MR, 0);
    } else {
      f(std::integral_constant<int, 2>{}, 0);
      f(std::integral_constant<int, MR.value - 2>{}, 2);
    }
  });
}

// For kernels that handle one 32-column panel per call: runs f(MR, j) for each panel j < np.
template <int MAX, typename F>
inline void for_each_panel(int mr, int np, F&& f) {
  for (int j = 0; j < np; ++j) dispatch_mr<MAX>(mr, [&](auto MR) { f(MR, j); });
}

}  // namespace
}  // namespace mixq

