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

// Calls f(std::integral_constant<int, mr>) for a runtime mr in 1..MAX, so each row count gets a
// fully unrolled kernel instance.
template <int MAX, typename F>
inline void dispatch_mr(int mr, F&& f) {
  if (mr == MAX) return f(std::integral_constant<int, MAX>{});
  if constexpr (MAX > 1) dispatch_mr<MAX - 1>(mr, f);
}

// The AVX2 kernels' tiles over one 32-column panel, at most 8 accumulators of 8 columns. Runs
// f(MR, CH, c0, r0): MR rows from row r0, CH chunks of 8 columns from chunk c0. 1-2 rows take the
// whole panel. For 3-4 rows, kernels whose B costs little to prepare (int8, bf16) take the whole
// panel in row pairs, so every pass reads whole cache lines in order (Zen 3, M = 3-8: int8 1.2-1.3x,
// bf16 1.45-1.6x faster than halves); kernels that decode low-bit codes take two 16-column halves
// with all rows, so one decode serves four rows (row pairs: weight-only 0.85x, W4A8 no faster).
enum class RowSplit { halves, pairs };

template <RowSplit split, typename F>
inline void panel_tiles_8acc(int mr, F&& f) {
  using Whole = std::integral_constant<int, 4>;
  using Half = std::integral_constant<int, 2>;
  dispatch_mr<4>(mr, [&](auto MR) {
    if constexpr (MR.value <= 2) {
      f(MR, Whole{}, 0, 0);
    } else if constexpr (split == RowSplit::pairs) {
      f(std::integral_constant<int, 2>{}, Whole{}, 0, 0);
      f(std::integral_constant<int, MR.value - 2>{}, Whole{}, 0, 2);
    } else {
      f(MR, Half{}, 0, 0);
      f(MR, Half{}, 2, 0);
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

