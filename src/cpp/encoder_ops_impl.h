// The encoder's element-wise ops written once (see encoder_ops.h). Reductions keep 16 partial
// sums so they vectorize without fast-math; exp and erf are branch-free polynomials for the same
// reason (libm calls would stay scalar). Everything is in an anonymous namespace: copies compiled
// with different flags must never be merged by the linker.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "encoder_ops.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace mixq {
namespace {

constexpr int kLanes = 16;

// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by its degree-6 Taylor polynomial (relative error
// < 2e-7), 2^n added to the exponent bits. Below -86 the result is 0: denormal results (and the
// slow arithmetic on them in the sums that follow) never appear.
inline float exp_poly(float x) {
  const bool tiny = x < -86.f;
  x = x < -86.f ? -86.f : (x > 88.f ? 88.f : x);
  const float n = std::nearbyint(x * 1.44269504f);
  const float r = x - n * 0.693145752f - n * 1.42860677e-6f;  // ln2 split in two: r stays exact
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  int32_t bits;
  std::memcpy(&bits, &p, 4);
  bits += int32_t(n) * (1 << 23);
  std::memcpy(&p, &bits, 4);
  return tiny ? 0.f : p;
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), odd symmetry restored.
inline float erf_poly(float x) {
  const float a = std::fabs(x);
  const float t = 1.f / (1.f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float y = 1.f - p * t * exp_poly(-a * a);
  return std::copysign(y, x);
}

float row_sum(const float* x, int64_t n) {
  float part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) part[j] += x[i + j];
  for (; i < n; ++i) part[0] += x[i];
  float s = 0.f;
  for (int j = 0; j < kLanes; ++j) s += part[j];
  return s;
}

// Largest value of a row. GCC keeps a float max reduction scalar (NaN rules), so AVX-512 builds
// use intrinsics; the portable loop is for baseline builds.
float row_max(const float* x, int64_t n) {
#ifdef __AVX512F__
  __m512 m = _mm512_set1_ps(-__builtin_inff());
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    m = _mm512_max_ps(m, _mm512_mask_loadu_ps(m, k, x + i));  // masked-off lanes keep m
  }
  return _mm512_reduce_max_ps(m);
#else
  float m = -__builtin_inff();
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
#endif
}

void layernorm_impl(int64_t rows, int64_t n, const float* x, int64_t ldx, const float* gamma, const float* beta,
                    float eps, float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    const float mean = row_sum(xr, n) / float(n);
    float part[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float d = xr[i + j] - mean;
        part[j] += d * d;
      }
    for (; i < n; ++i) part[0] += (xr[i] - mean) * (xr[i] - mean);
    float var = 0.f;
    for (int j = 0; j < kLanes; ++j) var += part[j];
    const float rstd = 1.f / std::sqrt(var / float(n) + eps);
    for (int64_t k = 0; k < n; ++k) yr[k] = (xr[k] - mean) * rstd * gamma[k] + beta[k];
  }
}

void gelu_impl(int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.f + erf_poly(x[i] * 0.70710678f));
}

void softmax_impl(int64_t rows, int64_t n, float* x, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    const float mx = row_max(xr, n);
    for (int64_t k = 0; k < n; ++k) xr[k] = exp_poly(xr[k] - mx);
    const float inv = 1.f / row_sum(xr, n);
    for (int64_t k = 0; k < n; ++k) xr[k] *= inv;
  }
}

void quantize_rows_s8_impl(int64_t rows, int64_t n, const float* x, int64_t ldx, float scale_mult, int8_t* q,
                           int64_t ldq, float* scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    // max |x| on the bit patterns: for finite floats, integer order of |x|'s bits is float order,
    // and an integer max vectorizes where a float one (NaN rules) does not.
    uint32_t part[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        uint32_t b;
        std::memcpy(&b, xr + i + j, 4);
        b &= 0x7fffffffu;
        part[j] = b > part[j] ? b : part[j];
      }
    for (; i < n; ++i) {
      uint32_t b;
      std::memcpy(&b, xr + i, 4);
      b &= 0x7fffffffu;
      part[0] = b > part[0] ? b : part[0];
    }
    uint32_t top = 0;
    for (int j = 0; j < kLanes; ++j) top = part[j] > top ? part[j] : top;
    float amax;
    std::memcpy(&amax, &top, 4);
    const float s = amax > 0.f ? amax / 127.f : 1.f, inv = 1.f / s;
    int8_t* qr = q + r * ldq;
    for (int64_t k = 0; k < n; ++k) qr[k] = int8_t(int32_t(std::nearbyint(xr[k] * inv)));
    scale[r] = s * scale_mult;
  }
}

void quantize_cols_s8_impl(int64_t rows, int64_t n, const float* x, int64_t ldx, float* scale, int8_t* q,
                           int64_t ldq) {
  constexpr int64_t kBlock = 256;  // columns at a time (a head is 32-128 wide)
  uint32_t top[kBlock];
  float inv[kBlock];
  for (int64_t c0 = 0; c0 < n; c0 += kBlock) {
    const int64_t cn = n - c0 < kBlock ? n - c0 : kBlock;
    // Column max |x| on the bit patterns (see quantize_rows_s8_impl), row after row: the inner
    // loop runs along a row and vectorizes.
    for (int64_t c = 0; c < cn; ++c) top[c] = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * ldx + c0;
      for (int64_t c = 0; c < cn; ++c) {
        uint32_t b;
        std::memcpy(&b, xr + c, 4);
        b &= 0x7fffffffu;
        top[c] = b > top[c] ? b : top[c];
      }
    }
    for (int64_t c = 0; c < cn; ++c) {
      float amax;
      std::memcpy(&amax, top + c, 4);
      const float s = amax > 0.f ? amax / 127.f : 1.f;
      inv[c] = 1.f / s;
      scale[c0 + c] = s;
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cn; ++c)
        q[(c0 + c) * ldq + r] = int8_t(int32_t(std::nearbyint(x[r * ldx + c0 + c] * inv[c])));
  }
}

}  // namespace
}  // namespace mixq

#define MIXQ_DEFINE_ENCODER_OPS(symbol, label) \
  namespace mixq {                              \
  extern const EncoderOps symbol;               \
  const EncoderOps symbol = {label, layernorm_impl, gelu_impl, softmax_impl, quantize_rows_s8_impl, \
                             quantize_cols_s8_impl}; \
  }
