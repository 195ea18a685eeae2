// Exact-erf GELU, x * Phi(x), in one place for the encoder's element-wise op and the GEMM
// epilogue. erf by Abramowitz & Stegun 7.1.28: erf(a) = 1 - (1 + a1 a + ... + a6 a^6)^-16 for
// a >= 0 (absolute error <= 3e-7), odd symmetry restored: a polynomial, four squarings and one
// division, about half the work of an exp-based formula, branch-free so loops vectorize. Large |x|
// overflows the power to inf: erf = +-1.
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
  const float a = std::fabs(x) * 0.70710678f;
  float p = kErfA[5];
  for (int i = 4; i >= 0; --i) p = p * a + kErfA[i];
  p = p * a + 1.f;
  p *= p, p *= p, p *= p, p *= p;  // ^16
  return 0.5f * x * (1.f + std::copysign(1.f - 1.f / p, x));
}

#if defined(__AVX512F__)
inline __m512 gelu16(__m512 x) {
  const __m512 a = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678f));
  __m512 p = _mm512_set1_ps(kErfA[5]);
  for (int i = 4; i >= 0; --i) p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(kErfA[i]));
  p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(1.f));
  p = _mm512_mul_ps(p, p), p = _mm512_mul_ps(p, p), p = _mm512_mul_ps(p, p), p = _mm512_mul_ps(p, p);
  __m512 erf = _mm512_sub_ps(_mm512_set1_ps(1.f), _mm512_div_ps(_mm512_set1_ps(1.f), p));
  // copysign: erf >= 0, so OR in x's sign bit
  erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf),
                                            _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u)))));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.f), erf));
}
#endif

}  // namespace
}  // namespace mixq
