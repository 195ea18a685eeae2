// Dynamic per-row u8 quantization in AVX-512: the range pass and the rounding pass. The plain C++
// loops (ops_impl.h) compile to scalar compares (GCC keeps the NaN semantics of `a < b ? a : b`)
// and, for short rows (attention heads: 64 values), spend more in loop set-up than in work.
// Included by ops_impl.h when compiled for AVX-512.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx512/tail_mask_avx512.h"

namespace mixq {
namespace {

// Row values row[k] * mult[k] (mult may be null: smoothing factors of a SmoothQuant linear).
inline __m512 load_row16(const float* row, const float* mult, int64_t k, __mmask16 m) {
  const __m512 v = _mm512_maskz_loadu_ps(m, row + k);
  return mult ? _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, mult + k)) : v;
}

// lo = min(0, row), hi = max(0, row); false if any value is Inf or NaN.
inline bool row_range_avx512(const float* row, int64_t K, const float* mult, float& lo, float& hi) {
  constexpr int kNanOrInf = 0x01 | 0x08 | 0x10 | 0x80;  // vfpclassps: QNaN, +Inf, -Inf, SNaN
  __m512 mn = _mm512_setzero_ps(), mx = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    const __m512 v = load_row16(row, mult, k, m);  // masked-off lanes read 0: inside the range
    bad |= _mm512_fpclass_ps_mask(v, kNanOrInf);
    mn = _mm512_min_ps(mn, v);
    mx = _mm512_max_ps(mx, v);
  }
  lo = _mm512_reduce_min_ps(mn);
  hi = _mm512_reduce_max_ps(mx);
  return bad == 0;
}

// q[k] = clamp(round_half_even(row[k] * inv) + z, 0, 255), as the portable loop computes it, in
// integers: |row[k] * inv| <= 256 (inv = 255 / range of the row), so the conversion never
// overflows; max with 0, and the unsigned saturating narrowing clamps at 255.
inline void quantize_row_avx512(const float* row, int64_t K, const float* mult, float inv, float z, uint8_t* q) {
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i vz = _mm512_set1_epi32(int32_t(z)), zero = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    __m512i v = _mm512_cvt_roundps_epi32(_mm512_mul_ps(load_row16(row, mult, k, m), vinv),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_max_epi32(_mm512_add_epi32(v, vz), zero);
    _mm_mask_storeu_epi8(q + k, m, _mm512_cvtusepi32_epi8(v));
  }
}

}  // namespace
}  // namespace mixq
