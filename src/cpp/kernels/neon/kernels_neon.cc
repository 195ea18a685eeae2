// NEON fp32 micro-kernel (aarch64 baseline): a 4-row tile over each 32-column panel in two
// halves of 16 columns, 16 accumulators; per 4 k a row's 4 activations are one vector load and
// each FMA takes its activation by lane (fmla by element), so A costs a load per 4 k and B 4 loads
// per k shared by the 4 rows.
#include <arm_neon.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

template <int MR, int L>
inline void fma_step(float32x4_t (&acc)[MR][4], const float32x4_t (&av)[MR], const float* b) {
  const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av[i], L);
    acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av[i], L);
    acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av[i], L);
    acc[i][3] = vfmaq_laneq_f32(acc[i][3], b3, av[i], L);
  }
}

// MR rows x 16 columns (b: the half panel's first column of step 0; steps are 32 floats apart).
template <int MR>
void f32_half(int64_t k_steps, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, bool accumulate) {
  float32x4_t acc[MR][4];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 4; ++v) acc[i][v] = accumulate ? vld1q_f32(c + i * ldc + 4 * v) : vdupq_n_f32(0.f);
  int64_t k = 0;
  for (; k + 4 <= k_steps; k += 4) {
    float32x4_t av[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) av[i] = vld1q_f32(a + i * lda + k);
    fma_step<MR, 0>(acc, av, b + (k + 0) * 32);
    fma_step<MR, 1>(acc, av, b + (k + 1) * 32);
    fma_step<MR, 2>(acc, av, b + (k + 2) * 32);
    fma_step<MR, 3>(acc, av, b + (k + 3) * 32);
  }
  for (; k < k_steps; ++k) {
    float32x4_t av[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) av[i] = vdupq_n_f32(a[i * lda + k]);
    fma_step<MR, 0>(acc, av, b + k * 32);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 4; ++v) vst1q_f32(c + i * ldc + 4 * v, acc[i][v]);
}

}  // namespace

void f32_gemm_4x32__neon(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const float* b,
                         int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for_each_panel<4>(mr, np, [&](auto MR, int j) {
    for (int h = 0; h < 2; ++h)
      f32_half<MR.value>(k_steps, a, lda, b + j * b_stride + 16 * h, c + 32 * j + 16 * h, ldc, accumulate);
  });
}

}  // namespace mixq
