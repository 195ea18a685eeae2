// SVE int8 micro-kernel (SVE + I8MM, e.g. Neoverse V1/N2, Graviton 3): u8 x s8 by sudot by element,
// exact without the sign trick, on the x32c4 layout, vector-length agnostic. An SVE register holds
// VL/32 columns x 4 k of one k step; the indexed sudot takes its activation word from each 128-bit
// segment of the second operand, so a row's 16 activation bytes (4 k steps) are loaded once and
// replicated into every segment (ld1rq), then serve 4 steps by lane. Tile: 8 rows x 2 vectors of
// columns (16 accumulators), strip-mined over the 32-column panel: 4 chunks at VL 128, 2 at 256,
// 1 from 512 (columns past 32 predicated off).
#include <arm_sve.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// Vector types are sizeless (no arrays of them): the 8 rows' accumulators are named and each row's
// statement is written once through MIXQ_SVE_ROWS; rows >= MR compile away.
#define MIXQ_SVE_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

// k_steps k steps of MR rows x the panel's first `cols` columns (rounded up to whole chunks); RUNS:
// A in runs of seg_steps steps, run s from a + s * seg_stride (GemmS8Fn), else plain rows. Plain
// rows have an instance of their own: sharing the runs' code, or a branch to it, changed GCC 12's
// register allocation of the k loop (8 rows: 96 -> 103 instructions, accumulators in z0-z7 where
// sudot wants its activations).
template <int MR, bool RUNS>
void sve_s8_panel(int64_t k_steps, int64_t seg_steps, int64_t seg_stride, const uint8_t* a, int64_t lda,
                  const int8_t* b, int32_t* c, int64_t ldc, bool accumulate, int64_t cols) {
  const int64_t w = int64_t(svcntw());  // columns per vector
  for (int64_t n0 = 0; n0 < 32 && n0 < cols; n0 += 2 * w) {
    const svbool_t p0 = svwhilelt_b32(n0, int64_t(32)), p1 = svwhilelt_b32(n0 + w, int64_t(32));
    const svbool_t q0 = svwhilelt_b8(4 * n0, int64_t(128)), q1 = svwhilelt_b8(4 * (n0 + w), int64_t(128));
    const int8_t* bc = b + 4 * n0;
#define MIXQ_INIT(i) svint32_t acc##i##_0 = svdup_n_s32(0), acc##i##_1 = svdup_n_s32(0);
    MIXQ_SVE_ROWS(MIXQ_INIT)
#undef MIXQ_INIT
#define MIXQ_DOT(i, L)                                                  \
  if constexpr (i < MR) {                                               \
    acc##i##_0 = svsudot_lane_s32(acc##i##_0, b0, a##i, L);             \
    acc##i##_1 = svsudot_lane_s32(acc##i##_1, b1, a##i, L);             \
  }
#define MIXQ_STEP(L)                                                    \
  {                                                                     \
    const svint8_t b0 = svld1_s8(q0, br + (p + L) * 128);               \
    const svint8_t b1 = svld1_s8(q1, br + (p + L) * 128 + 4 * w);       \
    MIXQ_DOT(0, L) MIXQ_DOT(1, L) MIXQ_DOT(2, L) MIXQ_DOT(3, L)         \
    MIXQ_DOT(4, L) MIXQ_DOT(5, L) MIXQ_DOT(6, L) MIXQ_DOT(7, L)         \
  }
#define MIXQ_LOAD_A4(i) \
  const svuint8_t a##i = i < MR ? svld1rq_u8(svptrue_b8(), ar + i * lda + 4 * p) : svdup_n_u8(0);
// 1-3 last steps: the row's 4 bytes in every 32-bit lane, used by lane 0.
#define MIXQ_LOAD_A1(i) \
  const svuint8_t a##i = svreinterpret_u8_u32(svdup_n_u32(i < MR ? uint32_t(load_i32(ar + i * lda + 4 * p)) : 0u));
// `steps` contiguous k steps from ar (row 0's first byte) and br (B of the first step).
#define MIXQ_RUN(AR, BR, STEPS)                                         \
  {                                                                     \
    const uint8_t* ar = AR;                                             \
    const int8_t* br = BR;                                              \
    const int64_t steps = STEPS;                                        \
    int64_t p = 0;                                                      \
    for (; p + 4 <= steps; p += 4) {                                    \
      MIXQ_SVE_ROWS(MIXQ_LOAD_A4)                                       \
      MIXQ_STEP(0) MIXQ_STEP(1) MIXQ_STEP(2) MIXQ_STEP(3)               \
    }                                                                   \
    for (; p < steps; ++p) {                                            \
      MIXQ_SVE_ROWS(MIXQ_LOAD_A1)                                       \
      MIXQ_STEP(0)                                                      \
    }                                                                   \
  }
    if constexpr (RUNS) {
      for (int64_t p0 = 0, off = 0; p0 < k_steps; p0 += seg_steps, off += seg_stride)
        MIXQ_RUN(a + off, bc + p0 * 128, seg_steps)
    } else {
      MIXQ_RUN(a, bc, k_steps)
    }
#undef MIXQ_RUN
#undef MIXQ_LOAD_A1
#undef MIXQ_LOAD_A4
#undef MIXQ_STEP
#undef MIXQ_DOT
#define MIXQ_STORE(i)                                                                       \
  if constexpr (i < MR) {                                                                   \
    int32_t* ci = c + i * ldc + n0;                                                         \
    if (accumulate) {                                                                       \
      acc##i##_0 = svadd_s32_x(p0, acc##i##_0, svld1_s32(p0, ci));                          \
      acc##i##_1 = svadd_s32_x(p1, acc##i##_1, svld1_s32(p1, ci + w));                      \
    }                                                                                       \
    svst1_s32(p0, ci, acc##i##_0);                                                          \
    svst1_s32(p1, ci + w, acc##i##_1);                                                      \
  }
    MIXQ_SVE_ROWS(MIXQ_STORE)
#undef MIXQ_STORE
  }
}

#undef MIXQ_SVE_ROWS

}  // namespace

// Chunks of columns the caller does not read (cols) are not computed.
void u8s8s32_gemm_8x32c4__sve(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                              int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                              int64_t seg_stride, int cols) {
  if (seg_steps <= 0 || seg_steps >= k_steps) {
    for_each_panel<8>(mr, np, [&](auto MR, int j) {
      sve_s8_panel<MR.value, false>(k_steps, k_steps, 0, a, lda, b + j * b_stride, c + 32 * j, ldc, accumulate,
                                    int64_t(cols) - 32 * j);
    });
  } else {
    for_each_panel<8>(mr, np, [&](auto MR, int j) {
      sve_s8_panel<MR.value, true>(k_steps, seg_steps, seg_stride, a, lda, b + j * b_stride, c + 32 * j, ldc,
                                   accumulate, int64_t(cols) - 32 * j);
    });
  }
}

}  // namespace mixq
