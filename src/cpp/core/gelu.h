// Exact-erf GELU, x * Phi(x), in one place for the encoder's element-wise op and the GEMM
// epilogue. erf by Abramowitz & Stegun 7.1.28: erf(a) = 1 - 1 / P(a), P = (1 + a1 a + ... +
// a6 a^6)^16 for a >= 0 (absolute error <= 3e-7): a polynomial, four squarings and one division,
// about half the work of an exp-based formula, branch-free so loops vectorize. With erf's odd
// symmetry, 0.5 x (1 + erf(x / sqrt 2)) = max(x, 0) - 0.5 |x| / P(|x| / sqrt 2): no sign
// restoring (16 vector operations, were 20). a is capped at 64, where P overflows to inf and the
// quotient is 0 (so x = +-inf gives inf and 0, not inf / inf); NaN passes through.
#pragma once
#include <cmath>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mixq {
namespace {

constexpr float kErfA[6] = {0.0705230784f, 0.0422820123f, 0.0092705272f, 0.0001520143f, 0.0002765672f,
                            0.0000430638f};

inline float gelu_scalar(float x) {
  float a = std::fabs(x) * 0.70710678f;
  a = a > 64.f ? 64.f : a;  // NaN stays NaN
  float p = kErfA[5];
  for (int i = 4; i >= 0; --i) p = p * a + kErfA[i];
  p = p * a + 1.f;
  p *= p, p *= p, p *= p, p *= p;  // ^16
  return (x < 0.f ? 0.f : x) - 0.70710678f * (a / p);  // 0.5 |x| = a / sqrt 2
}

#if defined(__AVX512F__)
inline __m512 gelu16(__m512 x) {
  // min / max return their second operand when either is NaN: the operand order keeps NaN.
  const __m512 a = _mm512_min_ps(_mm512_set1_ps(64.f), _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678f)));
  __m512 p = _mm512_set1_ps(kErfA[5]);
  for (int i = 4; i >= 0; --i) p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(kErfA[i]));
  p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(1.f));
  p = _mm512_mul_ps(p, p), p = _mm512_mul_ps(p, p), p = _mm512_mul_ps(p, p), p = _mm512_mul_ps(p, p);
  return _mm512_fnmadd_ps(_mm512_set1_ps(0.70710678f), _mm512_div_ps(a, p), _mm512_max_ps(_mm512_setzero_ps(), x));
}
#endif

}  // namespace
}  // namespace mixq
