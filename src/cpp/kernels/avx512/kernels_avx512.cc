// AVX-512 (F/BW/VL/DQ) micro-kernels without VNNI.
//  - int8: exact, B sign-extended to int16 and multiplied with vpmaddwd (never the saturating
//    vpmaddubsw); each int32 lane keeps two partial sums that are folded at the end.
//  - fp32: 14x32 tile, 28 zmm accumulators, A broadcast from memory.
#include <immintrin.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

template <int MR>
void gemm_s8_avx512(int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b, int32_t* c, int64_t ldc,
                    bool accumulate, int64_t seg_steps, int64_t seg_stride) {
  // acc[i][q]: row i, 8 columns (quarter q of the 32) x 2 partial sums each.
  __m512i acc[MR][4];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int q = 0; q < 4; ++q) acc[i][q] = _mm512_setzero_si512();
  for_each_k_step(k_steps, seg_steps, seg_stride, [&](int64_t p, int64_t off) {
    const __m512i b0 = _mm512_loadu_si512(b + 128 * p), b1 = _mm512_loadu_si512(b + 128 * p + 64);
    const __m512i w[4] = {_mm512_cvtepi8_epi16(_mm512_castsi512_si256(b0)),
                          _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(b0, 1)),
                          _mm512_cvtepi8_epi16(_mm512_castsi512_si256(b1)),
                          _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(b1, 1))};
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi64(widen_u8x4(a + i * lda + off));
      for (int q = 0; q < 4; ++q) acc[i][q] = _mm512_add_epi32(acc[i][q], _mm512_madd_epi16(w[q], ai));
    }
  });
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    int32_t* row = c + i * ldc;
    for (int h = 0; h < 2; ++h) {
      __m512i lo = acc[i][2 * h], hi = acc[i][2 * h + 1];
      __m512i s = _mm512_add_epi32(_mm512_permutex2var_epi32(lo, even, hi), _mm512_permutex2var_epi32(lo, odd, hi));
      if (accumulate) s = _mm512_add_epi32(s, _mm512_loadu_si512(row + 16 * h));
      _mm512_storeu_si512(row + 16 * h, s);
    }
  }
}

template <int MR>
void gemm_f32_avx512(int64_t k_steps, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                     bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < k_steps; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    a += 1;
    b += 32;
  }
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(row));
      c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, c0[i]);
    _mm512_storeu_ps(row + 16, c1[i]);
  }
}

}  // namespace

void u8s8s32_gemm_6x32c4__avx512(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                                 int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                                 int64_t seg_stride, int cols) {
  for_each_panel<6>(mr, np, [&](auto MR, int j) {
    gemm_s8_avx512<MR.value>(k_steps, a, lda, b + j * b_stride, c + 32 * j, ldc, accumulate, seg_steps, seg_stride);
  });
}

void f32_gemm_14x32__avx512(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const float* b,
                            int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for_each_panel<14>(mr, np, [&](auto MR, int j) {
    gemm_f32_avx512<MR.value>(k_steps, a, lda, b + j * b_stride, c + 32 * j, ldc, accumulate);
  });
}

// 16 independent FMA chains: the fp32 compute roof of one core.
int64_t peak_fp32__avx512(int64_t iters) {
  __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
  __asm__("" : "+v"(x), "+v"(y));  // opaque operands: the compiler must not fold the chains
  // Distinct starting values: identical chains would be merged by the compiler.
  __m512 a0 = _mm512_set1_ps(0.f), a1 = _mm512_set1_ps(1.f), a2 = _mm512_set1_ps(2.f), a3 = _mm512_set1_ps(3.f);
  __m512 a4 = _mm512_set1_ps(4.f), a5 = _mm512_set1_ps(5.f), a6 = _mm512_set1_ps(6.f), a7 = _mm512_set1_ps(7.f);
  __m512 a8 = _mm512_set1_ps(8.f), a9 = _mm512_set1_ps(9.f), a10 = _mm512_set1_ps(10.f), a11 = _mm512_set1_ps(11.f);
  __m512 a12 = _mm512_set1_ps(12.f), a13 = _mm512_set1_ps(13.f), a14 = _mm512_set1_ps(14.f), a15 = _mm512_set1_ps(15.f);
  for (int64_t it = 0; it < iters; ++it) {
    a0 = _mm512_fmadd_ps(a0, x, y), a1 = _mm512_fmadd_ps(a1, x, y), a2 = _mm512_fmadd_ps(a2, x, y);
    a3 = _mm512_fmadd_ps(a3, x, y), a4 = _mm512_fmadd_ps(a4, x, y), a5 = _mm512_fmadd_ps(a5, x, y);
    a6 = _mm512_fmadd_ps(a6, x, y), a7 = _mm512_fmadd_ps(a7, x, y), a8 = _mm512_fmadd_ps(a8, x, y);
    a9 = _mm512_fmadd_ps(a9, x, y), a10 = _mm512_fmadd_ps(a10, x, y), a11 = _mm512_fmadd_ps(a11, x, y);
    a12 = _mm512_fmadd_ps(a12, x, y), a13 = _mm512_fmadd_ps(a13, x, y), a14 = _mm512_fmadd_ps(a14, x, y);
    a15 = _mm512_fmadd_ps(a15, x, y);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                     _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
  return int64_t(_mm512_reduce_add_ps(s));
}

}  // namespace mixq
