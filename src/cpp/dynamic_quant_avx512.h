// Min and max of a float row with an Inf/NaN check, in AVX-512: the range pass of dynamic
// quantization. The plain C++ loop (ops_impl.h) compiles to scalar compares (GCC keeps the
// NaN semantics of `a < b ? a : b`), which made quantizing cost as much as a third of a GEMM.
// Included by ops_impl.h when compiled for AVX-512.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace mixq {
namespace {

// lo = min(0, row), hi = max(0, row); false if any value is Inf or NaN.
inline bool row_range_avx512(const float* row, int64_t K, float& lo, float& hi) {
  const __m512i exp_bits = _mm512_set1_epi32(0x7f800000);
  __m512 mn = _mm512_setzero_ps(), mx = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (K - k)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, row + k);  // masked-off lanes read 0: inside the range
    bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(v), exp_bits), exp_bits);
    mn = _mm512_min_ps(mn, v);
    mx = _mm512_max_ps(mx, v);
  }
  lo = _mm512_reduce_min_ps(mn);
  hi = _mm512_reduce_max_ps(mx);
  return bad == 0;
}

}  // namespace
}  // namespace mixq
