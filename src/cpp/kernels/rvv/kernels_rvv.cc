// RISC-V vector 1.0 micro-kernels: fp32, int8 (u8 x s8) and groupwise W4A8 / W2A8, on the x86
// packed layouts, VLEN-agnostic: each 32-column panel is strip-mined in chunks of vl columns
// (vsetvl at e32, LMUL 2: 8 columns at VLEN 128, 16 at 256, the whole panel from 512), and MR = 8
// rows of LMUL-2 accumulators take 16 of the 32 vector registers.
// int8: one segment load (vlseg4e8) splits a chunk's x32c4 bytes into its 4 k planes; each plane
// is sign-extended to int16 once and shared by the 8 rows, whose activations (u8, exact in int16)
// multiply it by vwmacc.vx into int32: exact, one widening multiply-accumulate per row, k and chunk.
#include <riscv_vector.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// Vector types are sizeless (no arrays of them), so the 8 rows' accumulators are named acc0..acc7
// and each row's statement is written once through MIXQ_RVV_ROWS; rows >= MR compile away.
#define MIXQ_RVV_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

template <int MR>
void f32_panel(int64_t k_steps, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, bool accumulate) {
  for (size_t n0 = 0, vl; n0 < 32; n0 += vl) {
    vl = __riscv_vsetvl_e32m2(32 - n0);
#define MIXQ_INIT(i)                                                                                         \
  vfloat32m2_t acc##i = __riscv_vfmv_v_f_f32m2(0.f, vl);                                                    \
  if constexpr (i < MR)                                                                                      \
    if (accumulate) acc##i = __riscv_vle32_v_f32m2(c + i * ldc + n0, vl);
    MIXQ_RVV_ROWS(MIXQ_INIT)
#undef MIXQ_INIT
    for (int64_t k = 0; k < k_steps; ++k) {
      const vfloat32m2_t bv = __riscv_vle32_v_f32m2(b + k * 32 + n0, vl);
#define MIXQ_FMA(i) \
  if constexpr (i < MR) acc##i = __riscv_vfmacc_vf_f32m2(acc##i, a[i * lda + k], bv, vl);
      MIXQ_RVV_ROWS(MIXQ_FMA)
#undef MIXQ_FMA
    }
#define MIXQ_STORE(i) \
  if constexpr (i < MR) __riscv_vse32_v_f32m2(c + i * ldc + n0, acc##i, vl);
    MIXQ_RVV_ROWS(MIXQ_STORE)
#undef MIXQ_STORE
  }
}

// The int32 products of MR rows x vl columns (from n0) over `steps` k steps from a and b, handed
// to finish(i, acc) row by row. A in runs of seg_steps steps, run s from a + s * seg_stride
// (GemmS8Fn; seg_steps = steps: plain rows).
template <int MR, typename Finish>
inline void dot_chunk(int64_t steps, int64_t seg_steps, int64_t seg_stride, const uint8_t* a, int64_t lda,
                      const int8_t* b, size_t n0, size_t vl, Finish&& finish) {
  if (seg_steps <= 0 || seg_steps > steps) seg_steps = steps;
#define MIXQ_INIT(i) vint32m2_t acc##i = __riscv_vmv_v_x_i32m2(0, vl);
  MIXQ_RVV_ROWS(MIXQ_INIT)
#undef MIXQ_INIT
  for (int64_t p0 = 0, off = 0; p0 < steps; p0 += seg_steps, off += seg_stride) {
    const uint8_t* ar = a + off;  // the run's first byte of row 0
    const int8_t* br = b + p0 * 128;
    for (int64_t p = 0; p < seg_steps; ++p) {
      const vint8mf2x4_t planes = __riscv_vlseg4e8_v_i8mf2x4(br + p * 128 + 4 * n0, vl);
      const vint16m1_t b0 = __riscv_vsext_vf2_i16m1(__riscv_vget_v_i8mf2x4_i8mf2(planes, 0), vl);
      const vint16m1_t b1 = __riscv_vsext_vf2_i16m1(__riscv_vget_v_i8mf2x4_i8mf2(planes, 1), vl);
      const vint16m1_t b2 = __riscv_vsext_vf2_i16m1(__riscv_vget_v_i8mf2x4_i8mf2(planes, 2), vl);
      const vint16m1_t b3 = __riscv_vsext_vf2_i16m1(__riscv_vget_v_i8mf2x4_i8mf2(planes, 3), vl);
#define MIXQ_MAC(i)                                                               \
  if constexpr (i < MR) {                                                         \
    const uint8_t* ai = ar + i * lda + 4 * p;                                     \
    acc##i = __riscv_vwmacc_vx_i32m2(acc##i, int16_t(ai[0]), b0, vl);             \
    acc##i = __riscv_vwmacc_vx_i32m2(acc##i, int16_t(ai[1]), b1, vl);             \
    acc##i = __riscv_vwmacc_vx_i32m2(acc##i, int16_t(ai[2]), b2, vl);             \
    acc##i = __riscv_vwmacc_vx_i32m2(acc##i, int16_t(ai[3]), b3, vl);             \
  }
      MIXQ_RVV_ROWS(MIXQ_MAC)
#undef MIXQ_MAC
    }
  }
#define MIXQ_FINISH(i) \
  if constexpr (i < MR) finish(i, acc##i);
  MIXQ_RVV_ROWS(MIXQ_FINISH)
#undef MIXQ_FINISH
}

// The panel's first `cols` columns (at most 32; none if cols <= 0).
template <int MR>
void s8_panel(int64_t k_steps, int64_t seg_steps, int64_t seg_stride, const uint8_t* a, int64_t lda, const int8_t* b,
              int32_t* c, int64_t ldc, bool accumulate, int64_t cols) {
  const size_t n_end = size_t(cols < 0 ? 0 : cols < 32 ? cols : 32);
  for (size_t n0 = 0, vl; n0 < n_end; n0 += vl) {
    vl = __riscv_vsetvl_e32m2(n_end - n0);
    dot_chunk<MR>(k_steps, seg_steps, seg_stride, a, lda, b, n0, vl, [&](int i, vint32m2_t acc) {
      int32_t* cp = c + i * ldc + n0;
      if (accumulate) acc = __riscv_vadd_vv_i32m2(__riscv_vle32_v_i32m2(cp, vl), acc, vl);
      __riscv_vse32_v_i32m2(cp, acc, vl);
    });
  }
}

// Groupwise: per group and chunk the exact int32 dot product, then c += scale * dot in fp32 (the
// fp32 sums live in C between groups, leaving the registers to the int32 tile).
template <int MR>
void groupwise_panel(int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b, int64_t G, float* c,
                     int64_t ldc, bool accumulate) {
  for (size_t n0 = 0, vl; n0 < 32; n0 += vl) {
    vl = __riscv_vsetvl_e32m2(32 - n0);
    if (!accumulate)
      for (int i = 0; i < MR; ++i) __riscv_vse32_v_f32m2(c + i * ldc + n0, __riscv_vfmv_v_f_f32m2(0.f, vl), vl);
    const int8_t* bg = b;
    for (int64_t g0 = 0; g0 < k_steps; g0 += G) {
      const int64_t steps = G < k_steps - g0 ? G : k_steps - g0;  // a last group cut short at K
      const vfloat32m2_t scale = __riscv_vle32_v_f32m2(reinterpret_cast<const float*>(bg + G * 128) + n0, vl);
      dot_chunk<MR>(steps, steps, 0, a + 4 * g0, lda, bg, n0, vl, [&](int i, vint32m2_t acc) {
        float* cp = c + i * ldc + n0;
        const vfloat32m2_t dot = __riscv_vfcvt_f_x_v_f32m2(acc, vl);
        __riscv_vse32_v_f32m2(cp, __riscv_vfmacc_vv_f32m2(__riscv_vle32_v_f32m2(cp, vl), dot, scale, vl), vl);
      });
      bg += G * 128 + 128;
    }
  }
}

#undef MIXQ_RVV_ROWS

}  // namespace

void f32_gemm_8x32__rvv(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const float* b,
                        int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for_each_panel<8>(mr, np, [&](auto MR, int j) {
    f32_panel<MR.value>(k_steps, a, lda, b + j * b_stride, c + 32 * j, ldc, accumulate);
  });
}

// Columns the caller does not read (cols) are not computed.
void u8s8s32_gemm_8x32c4__rvv(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                              int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                              int64_t seg_stride, int cols) {
  for_each_panel<8>(mr, np, [&](auto MR, int j) {
    s8_panel<MR.value>(k_steps, seg_steps, seg_stride, a, lda, b + j * b_stride, c + 32 * j, ldc, accumulate,
                       int64_t(cols) - 32 * j);
  });
}

void u8s8f32_groupwise_gemm_8x32c4__rvv(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda,
                                        const int8_t* b, int64_t b_stride, int64_t group_steps, float* c, int64_t ldc,
                                        bool accumulate) {
  for_each_panel<8>(mr, np, [&](auto MR, int j) {
    groupwise_panel<MR.value>(k_steps, a, lda, b + j * b_stride, group_steps, c + 32 * j, ldc, accumulate);
  });
}

}  // namespace mixq
