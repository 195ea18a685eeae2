// The tile loops of the Arm int8 kernels (dotprod, i8mm), which compute a panel 16 columns (one
// half) at a time: half(MR, RUNS, k_steps, seg_steps, seg_stride, a, lda, b, out) fills the MR x 16
// int32 sums of one half (RUNS: A in runs, GemmS8Fn), and these loops store or fold them into C.
// Included by those units only (internal linkage).
#pragma once
#include <arm_neon.h>

#include <cstdint>
#include <type_traits>

#include "kernels/kernel_util.h"

namespace mixq {
namespace {

// GemmS8Fn over halves: halves past the columns the caller reads (cols) are not computed.
template <int MAX_MR, typename Half>
inline void s8_gemm_by_halves(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                              int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                              int64_t seg_stride, int cols, Half half) {
  const bool runs = seg_steps > 0 && seg_steps < k_steps;
  for_each_panel<MAX_MR>(mr, np, [&](auto MR, int j) {
    for (int h = 0; h < 2 && 32 * j + 16 * h < cols; ++h) {
      int32x4_t out[MR.value][4];
      const int8_t* bh = b + j * b_stride + 64 * h;
      if (runs) half(MR, std::true_type{}, k_steps, seg_steps, seg_stride, a, lda, bh, out);
      else half(MR, std::false_type{}, k_steps, k_steps, int64_t(0), a, lda, bh, out);
      int32_t* ch = c + 32 * j + 16 * h;
#pragma GCC unroll 8
      for (int i = 0; i < MR.value; ++i)
        for (int v = 0; v < 4; ++v) {
          int32_t* cp = ch + i * ldc + 4 * v;
          vst1q_s32(cp, accumulate ? vaddq_s32(vld1q_s32(cp), out[i][v]) : out[i][v]);
        }
    }
  });
}

// GemmGroupwiseFn over halves: per group the exact int32 dot product, then c += scale * dot in
// fp32. The fp32 sums live in C (L1) between groups, which leaves the registers to the int32 tile.
template <int MAX_MR, typename Half>
inline void groupwise_gemm_by_halves(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                                     int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate,
                                     Half half) {
  for_each_panel<MAX_MR>(mr, np, [&](auto MR, int j) {
    constexpr int R = MR.value;
    for (int h = 0; h < 2; ++h) {
      float* ch = c + 32 * j + 16 * h;
      if (!accumulate)
        for (int i = 0; i < R; ++i)
          for (int v = 0; v < 4; ++v) vst1q_f32(ch + i * ldc + 4 * v, vdupq_n_f32(0.f));
      const int8_t* bg = b + j * b_stride;
      for (int64_t g0 = 0; g0 < k_steps; g0 += group_steps) {
        const int64_t steps = group_steps < k_steps - g0 ? group_steps : k_steps - g0;  // last group cut at K
        int32x4_t out[R][4];
        half(MR, std::false_type{}, steps, steps, int64_t(0), a + 4 * g0, lda, bg + 64 * h, out);
        const float* scale = reinterpret_cast<const float*>(bg + group_steps * 128) + 16 * h;
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i)
          for (int v = 0; v < 4; ++v) {
            float* cp = ch + i * ldc + 4 * v;
            vst1q_f32(cp, vfmaq_f32(vld1q_f32(cp), vcvtq_f32_s32(out[i][v]), vld1q_f32(scale + 4 * v)));
          }
        bg += group_steps * 128 + 128;
      }
    }
  });
}

}  // namespace
}  // namespace mixq
