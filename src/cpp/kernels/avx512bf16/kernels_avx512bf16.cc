// AVX-512 BF16 micro-kernel: vdpbf16ps (bf16 pairs, fp32 accumulate) on a 14x32 tile.
#include <immintrin.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

template <int MR>
void gemm_bf16(int64_t k_steps, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc,
               bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k_steps; ++p) {
    const __m512bh b0 = as_bh(_mm512_loadu_si512(b)), b1 = as_bh(_mm512_loadu_si512(b + 32));
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512bh ai = as_bh(_mm512_set1_epi32(load_i32(a + i * lda)));
      c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
    }
    a += 2;
    b += 64;
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

void bf16_gemm_14x32c2__avx512bf16(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda,
                                   const uint16_t* b, int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for_each_panel<14>(mr, np, [&](auto MR, int j) {
    gemm_bf16<MR.value>(k_steps, a, lda, b + j * b_stride, c + 32 * j, ldc, accumulate);
  });
}

// 16 independent vdpbf16ps chains: the bf16 compute roof of one core.
int64_t peak_bf16__avx512bf16(int64_t iters) {
  __m512bh x = as_bh(_mm512_set1_epi32(0x3f803f80)), y = as_bh(_mm512_set1_epi32(0x3a833a83));
  __asm__("" : "+v"(x), "+v"(y));  // opaque operands: the compiler must not fold the chains
  // Distinct starting values: identical chains would be merged by the compiler.
  __m512 a0 = _mm512_set1_ps(0.f), a1 = _mm512_set1_ps(1.f), a2 = _mm512_set1_ps(2.f), a3 = _mm512_set1_ps(3.f);
  __m512 a4 = _mm512_set1_ps(4.f), a5 = _mm512_set1_ps(5.f), a6 = _mm512_set1_ps(6.f), a7 = _mm512_set1_ps(7.f);
  __m512 a8 = _mm512_set1_ps(8.f), a9 = _mm512_set1_ps(9.f), a10 = _mm512_set1_ps(10.f), a11 = _mm512_set1_ps(11.f);
  __m512 a12 = _mm512_set1_ps(12.f), a13 = _mm512_set1_ps(13.f), a14 = _mm512_set1_ps(14.f), a15 = _mm512_set1_ps(15.f);
  for (int64_t it = 0; it < iters; ++it) {
    a0 = _mm512_dpbf16_ps(a0, x, y), a1 = _mm512_dpbf16_ps(a1, x, y), a2 = _mm512_dpbf16_ps(a2, x, y);
    a3 = _mm512_dpbf16_ps(a3, x, y), a4 = _mm512_dpbf16_ps(a4, x, y), a5 = _mm512_dpbf16_ps(a5, x, y);
    a6 = _mm512_dpbf16_ps(a6, x, y), a7 = _mm512_dpbf16_ps(a7, x, y), a8 = _mm512_dpbf16_ps(a8, x, y);
    a9 = _mm512_dpbf16_ps(a9, x, y), a10 = _mm512_dpbf16_ps(a10, x, y), a11 = _mm512_dpbf16_ps(a11, x, y);
    a12 = _mm512_dpbf16_ps(a12, x, y), a13 = _mm512_dpbf16_ps(a13, x, y), a14 = _mm512_dpbf16_ps(a14, x, y);
    a15 = _mm512_dpbf16_ps(a15, x, y);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                     _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
  return int64_t(_mm512_reduce_add_ps(s));
}

}  // namespace mixq
