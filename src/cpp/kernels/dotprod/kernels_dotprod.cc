// Armv8.2 dot-product int8 micro-kernels (udot by element): the plain u8 x s8 GEMM and the
// groupwise W4A8 / W2A8 kernel, on the x32c4 layout as it is: one 16-byte B register holds 4
// columns x 4 k, exactly udot's lanes, and a row's 16 activation bytes give the 4 k steps' lanes.
// udot multiplies u8 x u8, so B is flipped to u8 (b + 128 = b ^ 0x80, once per register, shared by
// all rows) and 128 x the row's activation sum is subtracted at the end; the row sums come from a
// udot by ones per 16 bytes, in a pass of their own (in the k loop their 4 registers made GCC spill
// accumulators). Exact in int32 (mod 2^32, like the reference).
// Tile: 4 rows x 16 columns (16 accumulators), each 32-column panel in two halves.
#include <arm_neon.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"
#include "kernels/neon_halves.h"

namespace mixq {
namespace {

template <int MR, int L>
inline void dot_step(uint32x4_t (&acc)[MR][4], const uint8x16_t (&av)[MR], const int8_t* b) {
  const uint8x16_t flip = vdupq_n_u8(0x80);
  uint8x16_t bv[4];
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) bv[v] = veorq_u8(vld1q_u8(reinterpret_cast<const uint8_t*>(b) + 16 * v), flip);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 4; ++v) acc[i][v] = vdotq_laneq_u32(acc[i][v], bv[v], av[i], L);
  // Keeps the next step's loads after these products: hoisted, their registers made GCC 12 spill.
  __asm__ volatile("" ::: "memory");
}

// One run of `steps` contiguous k steps of MR rows into acc (a: the run's first byte of row 0; b:
// the half's first byte of the run's first step; steps 128 bytes apart).
template <int MR>
inline void dot_run(uint32x4_t (&acc)[MR][4], int64_t steps, const uint8_t* a, int64_t lda, const int8_t* b) {
  int64_t p = 0;
  for (; p + 4 <= steps; p += 4) {
    uint8x16_t av[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) av[i] = vld1q_u8(a + i * lda + 4 * p);
    dot_step<MR, 0>(acc, av, b + (p + 0) * 128);
    dot_step<MR, 1>(acc, av, b + (p + 1) * 128);
    dot_step<MR, 2>(acc, av, b + (p + 2) * 128);
    dot_step<MR, 3>(acc, av, b + (p + 3) * 128);
  }
  for (; p < steps; ++p) {  // 1-3 last steps: the row's 4 bytes in lane 0, zeros elsewhere
    uint8x16_t av[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      av[i] = vreinterpretq_u8_u32(vsetq_lane_u32(uint32_t(load_i32(a + i * lda + 4 * p)), vdupq_n_u32(0), 0));
    dot_step<MR, 0>(acc, av, b + p * 128);
  }
}

// out[i][v] = the exact int32 products of rows i x columns 4v..4v+3 of a half panel over k_steps
// k steps (b: the half's first byte of step 0; steps 128 bytes apart). RUNS: A in runs of
// seg_steps steps, run s from a + s * seg_stride (GemmS8Fn), and the row sums of the correction
// cover exactly the runs' bytes; else plain rows. Plain rows have an instance of their own, as
// before runs, and out of line as GCC 12 chose before (inlined into the kernels, its k loop took
// 2-8 more register moves).
template <int MR, bool RUNS>
__attribute__((noinline)) void dot_half(int64_t k_steps, int64_t seg_steps, int64_t seg_stride, const uint8_t* a, int64_t lda,
                     const int8_t* b, int32x4_t (&out)[MR][4]) {
  if constexpr (!RUNS) seg_steps = k_steps, seg_stride = 0;
  uint32x4_t acc[MR][4];
  uint32_t corr[MR];  // 128 x the row's activation sum, what b ^ 0x80 added
  const uint8x16_t ones = vdupq_n_u8(1);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    uint32x4_t rs = vdupq_n_u32(0);
    uint32_t sum = 0;
    for (int64_t p0 = 0, off = 0; p0 < k_steps; p0 += seg_steps, off += seg_stride) {
      const uint8_t* ar = a + i * lda + off;
      int64_t p = 0;
      for (; p + 4 <= seg_steps; p += 4) rs = vdotq_u32(rs, vld1q_u8(ar + 4 * p), ones);
      for (; p < seg_steps; ++p)
        for (int t = 0; t < 4; ++t) sum += ar[4 * p + t];
    }
    corr[i] = (sum + vaddvq_u32(rs)) << 7;
    for (int v = 0; v < 4; ++v) acc[i][v] = vdupq_n_u32(0);
  }
  if constexpr (RUNS) {
    for (int64_t p0 = 0, off = 0; p0 < k_steps; p0 += seg_steps, off += seg_stride)
      dot_run<MR>(acc, seg_steps, a + off, lda, b + p0 * 128);
  } else {
    dot_run<MR>(acc, k_steps, a, lda, b);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const uint32x4_t ci = vdupq_n_u32(corr[i]);
    for (int v = 0; v < 4; ++v) out[i][v] = vreinterpretq_s32_u32(vsubq_u32(acc[i][v], ci));
  }
}

}  // namespace

void u8s8s32_gemm_4x32c4__dotprod(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                                  int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                                  int64_t seg_stride, int cols) {
  s8_gemm_by_halves<4>(mr, np, k_steps, a, lda, b, b_stride, c, ldc, accumulate, seg_steps, seg_stride, cols,
                        [](auto MR, auto RUNS, auto&&... args) { dot_half<MR.value, RUNS.value>(args...); });
}

void u8s8f32_groupwise_gemm_4x32c4__dotprod(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda,
                                            const int8_t* b, int64_t b_stride, int64_t group_steps, float* c,
                                            int64_t ldc, bool accumulate) {
  groupwise_gemm_by_halves<4>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate,
                               [](auto MR, auto RUNS, auto&&... args) { dot_half<MR.value, RUNS.value>(args...); });
}

}  // namespace mixq
