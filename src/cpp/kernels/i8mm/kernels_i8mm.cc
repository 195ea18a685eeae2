// Armv8.6 int8 matrix-multiply micro-kernels (usmmla: u8 x s8, exact, no sign trick): the plain
// GEMM and the groupwise W4A8 / W2A8 kernel on the x32c4 layout. usmmla multiplies a 2x8 block of
// A by an 8x2 block of B into a 2x2 int32 tile (32 MACs per instruction, twice udot's 16). The
// x32c4 registers of two consecutive k steps hold 4 columns x 4 k each; one zip of their 32-bit
// lanes gives 2 columns x 8 k, usmmla's B operand. A row pair's 8 bytes each make the A operand.
// Tile: 6 rows (3 pairs) x 16 columns, 24 accumulators; each 32-column panel in two halves. The
// 2x2 tiles are unzipped into rows at the end.
#include <arm_neon.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"
#include "kernels/neon_halves.h"

namespace mixq {
namespace {

// 8 bytes of a row from its k step p: both steps, or one step and zeros.
inline uint8x8_t row_bytes(const uint8_t* a, bool two_steps) {
  if (two_steps) return vld1_u8(a);
  return vreinterpret_u8_u32(vset_lane_u32(uint32_t(load_i32(a)), vdup_n_u32(0), 0));
}

// One or two k steps (from p) of MR rows x the half panel into acc[pair][column pair].
template <int MR>
inline void mmla_steps(int32x4_t (&acc)[(MR + 1) / 2][8], const uint8_t* a, int64_t lda, int64_t p, const int8_t* b,
                       bool two_steps) {
  constexpr int P = (MR + 1) / 2;
  uint8x16_t av[P];
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q) {
    const uint8x8_t lo = row_bytes(a + 2 * q * lda + 4 * p, two_steps);
    const uint8x8_t hi = 2 * q + 1 < MR ? row_bytes(a + (2 * q + 1) * lda + 4 * p, two_steps) : vdup_n_u8(0);
    av[q] = vcombine_u8(lo, hi);
  }
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) {
    const int32x4_t s0 = vreinterpretq_s32_s8(vld1q_s8(b + p * 128 + 16 * v));
    const int32x4_t s1 = two_steps ? vreinterpretq_s32_s8(vld1q_s8(b + (p + 1) * 128 + 16 * v)) : vdupq_n_s32(0);
    const int8x16_t b01 = vreinterpretq_s8_s32(vzip1q_s32(s0, s1)), b23 = vreinterpretq_s8_s32(vzip2q_s32(s0, s1));
#pragma GCC unroll 4
    for (int q = 0; q < P; ++q) {
      acc[q][2 * v] = vusmmlaq_s32(acc[q][2 * v], av[q], b01);
      acc[q][2 * v + 1] = vusmmlaq_s32(acc[q][2 * v + 1], av[q], b23);
    }
    // Keeps the next columns' loads after these products: hoisted, their registers made GCC 12
    // spill accumulators of the 6-row tile.
    __asm__ volatile("" ::: "memory");
  }
}

// `steps` contiguous k steps of MR rows (a: row 0's first byte) into acc (b: the half's first
// byte of the first step; steps 128 bytes apart).
template <int MR>
inline void mmla_run(int32x4_t (&acc)[(MR + 1) / 2][8], int64_t steps, const uint8_t* a, int64_t lda,
                     const int8_t* b) {
  int64_t p = 0;
  for (; p + 2 <= steps; p += 2) mmla_steps<MR>(acc, a, lda, p, b, true);
  if (p < steps) mmla_steps<MR>(acc, a, lda, p, b, false);
}

// out[i][v] = the int32 products of rows i x columns 4v..4v+3 of a half panel over k_steps k steps
// (b: the half's first byte of step 0; steps 128 bytes apart). RUNS: A in runs of seg_steps steps,
// run s from a + s * seg_stride (GemmS8Fn); else plain rows, in an instance of their own as before
// runs (the groupwise kernel's k loop shared with the runs' loop spilled under GCC 12).
template <int MR, bool RUNS>
inline void mmla_half(int64_t k_steps, int64_t seg_steps, int64_t seg_stride, const uint8_t* a, int64_t lda,
                      const int8_t* b, int32x4_t (&out)[MR][4]) {
  constexpr int P = (MR + 1) / 2;
  int32x4_t acc[P][8];
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q)
    for (int t = 0; t < 8; ++t) acc[q][t] = vdupq_n_s32(0);
  if constexpr (RUNS) {
    for (int64_t p0 = 0, off = 0; p0 < k_steps; p0 += seg_steps, off += seg_stride)
      mmla_run<MR>(acc, seg_steps, a + off, lda, b + p0 * 128);
  } else {
    mmla_run<MR>(acc, k_steps, a, lda, b);
  }
  // acc[q][2v] = [r0c0 r0c1 r1c0 r1c1] of columns 4v, 4v+1; acc[q][2v+1] the same of 4v+2, 4v+3.
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < 4; ++v) {
      const int64x2_t t0 = vreinterpretq_s64_s32(acc[q][2 * v]), t1 = vreinterpretq_s64_s32(acc[q][2 * v + 1]);
      out[2 * q][v] = vreinterpretq_s32_s64(vzip1q_s64(t0, t1));
      if (2 * q + 1 < MR) out[2 * q + 1][v] = vreinterpretq_s32_s64(vzip2q_s64(t0, t1));
    }
}

}  // namespace

void u8s8s32_gemm_6x32c4__i8mm(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                               int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                               int64_t seg_stride, int cols) {
  s8_gemm_by_halves<6>(mr, np, k_steps, a, lda, b, b_stride, c, ldc, accumulate, seg_steps, seg_stride, cols,
                        [](auto MR, auto RUNS, auto&&... args) { mmla_half<MR.value, RUNS.value>(args...); });
}

void u8s8f32_groupwise_gemm_6x32c4__i8mm(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda,
                                         const int8_t* b, int64_t b_stride, int64_t group_steps, float* c, int64_t ldc,
                                         bool accumulate) {
  groupwise_gemm_by_halves<6>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate,
                               [](auto MR, auto RUNS, auto&&... args) { mmla_half<MR.value, RUNS.value>(args...); });
}

}  // namespace mixq
