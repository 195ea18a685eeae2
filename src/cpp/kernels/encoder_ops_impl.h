// The encoder's element-wise ops written once (see encoder_ops.h). Reductions keep 16 partial
// sums so they vectorize without fast-math; exp is a branch-free polynomial for the same
// reason (libm calls would stay scalar). Everything is in an anonymous namespace: copies compiled
// with different flags must never be merged by the linker.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/encoder_ops.h"
#ifdef __AVX512F__
#include <immintrin.h>

#include "kernels/avx512/epilogue_avx512.h"
#include "kernels/avx512/tail_mask_avx512.h"
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

#ifdef __AVX512F__

// 16 floats times inv, rounded half to even, as int32.
inline __m512i codes16(__m512 v, __m512 inv) {
  return _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
// exp_poly on 16 lanes: the same range reduction and polynomial, 2^n by vscalefps.
inline __m512 exp16(__m512 x) {
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-86.f), _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-86.f)), _mm512_set1_ps(88.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x));
  __m512 p = _mm512_set1_ps(1.f / 720.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_maskz_scalef_ps(_knot_mask16(tiny), p, n);
}

// exp(d) for d <= 0, for probabilities that become 8-bit codes: 2^t, t = d log2(e), as
// 2^round(t) * P(f) with a degree-4 fit of 2^f on [-1/2, 1/2] (relative error 3.1e-6, a
// thousandth of a code step; exp16 is degree 6). 10 vector operations where exp16 takes 13 and
// a subtraction. t below -126 (masked keys) gives ~1e-38, not 0: nothing in the sum or the codes.
inline __m512 exp_probability16(__m512 d) {
  const __m512 t = _mm512_max_ps(_mm512_mul_ps(d, _mm512_set1_ps(1.44269504f)), _mm512_set1_ps(-126.f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.009600404649972916f), f, _mm512_set1_ps(0.055916935205459595f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.24023719131946564f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6931219696998596f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}
#endif

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
    const __mmask16 k = tail_mask(n - i);
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

// x = exp(x - max(x)) in place over a row of n values; returns the sum of the results.
float exp_row(float* x, int64_t n) {
  const float mx = row_max(x, n);
#ifdef __AVX512F__
  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 m = tail_mask(n - k);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + k), vmx));
    _mm512_mask_storeu_ps(x + k, m, e);
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
  }
  return _mm512_reduce_add_ps(acc);
#else
  for (int64_t k = 0; k < n; ++k) x[k] = exp_poly(x[k] - mx);
  return row_sum(x, n);
#endif
}

void softmax_impl(int64_t rows, int64_t n, float* x, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    const float inv = 1.f / exp_row(xr, n);
    for (int64_t k = 0; k < n; ++k) xr[k] *= inv;
  }
}

// One query row's attention over L cached rows of d values (KV = float, or int8 codes with one
// scale per row): scores, their softmax, then the weighted sum of the values into out.
#ifdef __AVX512F__
inline __m512 load16(const float* x) { return _mm512_loadu_ps(x); }
inline __m512 load16(const int8_t* x) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x))));
}
#endif

template <typename KV>
float dot_row(const float* q, const KV* k, int64_t d) {
  int64_t c = 0;
  float s = 0.f;
#ifdef __AVX512F__
  __m512 acc = _mm512_setzero_ps();
  for (; c + 16 <= d; c += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), load16(k + c), acc);
  s = _mm512_reduce_add_ps(acc);
#else
  float part[kLanes] = {};  // 16 partial sums: the compiler vectorizes the lanes
  for (; c + kLanes <= d; c += kLanes)
    for (int i = 0; i < kLanes; ++i) part[i] += q[c + i] * float(k[c + i]);
  for (int i = 0; i < kLanes; ++i) s += part[i];
#endif
  for (; c < d; ++c) s += q[c] * float(k[c]);
  return s;
}

// out[0, n) = sum_j w[j] * v[j * d + c0 + c], 64 columns at a time held in registers across j
// (a sum through memory is a store-to-load chain per key).
template <typename KV>
void weighted_rows(int64_t L, int64_t d, const float* w, const KV* v, float* out) {
  int64_t c0 = 0;
#ifdef __AVX512F__
  for (; c0 + 64 <= d; c0 += 64) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t j = 0; j < L; ++j) {
      const __m512 wj = _mm512_set1_ps(w[j]);
      for (int i = 0; i < 4; ++i) acc[i] = _mm512_fmadd_ps(wj, load16(v + j * d + c0 + 16 * i), acc[i]);
    }
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(out + c0 + 16 * i, acc[i]);
  }
#endif
  for (; c0 < d; c0 += kLanes) {
    const int64_t n = std::min<int64_t>(kLanes, d - c0);
    float acc[kLanes] = {};
    if (n == kLanes) {  // a constant trip count: the compiler keeps the 16 sums in one vector
      for (int64_t j = 0; j < L; ++j)
        for (int i = 0; i < kLanes; ++i) acc[i] += w[j] * float(v[j * d + c0 + i]);
    } else {
      for (int64_t j = 0; j < L; ++j)
        for (int64_t i = 0; i < n; ++i) acc[i] += w[j] * float(v[j * d + c0 + i]);
    }
    std::copy(acc, acc + n, out + c0);
  }
}

template <typename KV>
void attend_row_impl(int64_t L, int64_t d, const float* q, const KV* k, const KV* v, const float* k_scale,
                     const float* v_scale, float scale, float* scores, float* out) {
  for (int64_t j = 0; j < L; ++j) scores[j] = dot_row(q, k + j * d, d) * (k_scale ? k_scale[j] * scale : scale);
  const float inv = 1.f / exp_row(scores, L);
  for (int64_t j = 0; j < L; ++j) scores[j] *= v_scale ? inv * v_scale[j] : inv;
  weighted_rows(L, d, scores, v, out);
}

// g = silu(g) * u = g / (1 + exp(-g)) * u over n values (the decoder's SwiGLU gate).
void silu_gate_impl(int64_t n, float* g, const float* u) {
  int64_t i = 0;
#ifdef __AVX512F__
  const __m512 one = _mm512_set1_ps(1.f);
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(g + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
  }
#endif
  for (; i < n; ++i) g[i] = g[i] / (1.f + exp_poly(-g[i])) * u[i];
}

void attend_f32_impl(int64_t L, int64_t d, const float* q, const float* k, const float* v, float scale, float* scores,
                     float* out) {
  attend_row_impl<float>(L, d, q, k, v, nullptr, nullptr, scale, scores, out);
}

void attend_s8_impl(int64_t L, int64_t d, const float* q, const int8_t* k, const int8_t* v, const float* k_scale,
                    const float* v_scale, float scale, float* scores, float* out) {
  attend_row_impl<int8_t>(L, d, q, k, v, k_scale, v_scale, scale, scores, out);
}

void scores_softmax_u8_impl(int64_t rows, int64_t n, const int32_t* acc, int64_t ldacc, const int32_t* a_zp,
                            const float* a_scale, const int32_t* colsum, const float* b_scale, const float* bias,
                            float* x, uint8_t* q, int64_t ldq, float* scale) {
#ifdef __AVX512F__
  // Each pass over a group of rows before the next pass: a row's reductions (max, then sum) end
  // in a dependency chain, and the rows beside it give the core independent work meanwhile.
  constexpr int64_t kGroup = 8;
  for (int64_t r0 = 0; r0 < rows; r0 += kGroup) {
    const int64_t g = std::min(kGroup, rows - r0);
    float row_max[kGroup];
    // The scores epilogue's arithmetic (epilogue_s32_avx512), with each row's max on the way.
    for (int64_t i = 0; i < g; ++i) {
      const int64_t r = r0 + i;
      const __m512i vzp = _mm512_set1_epi32(a_zp[r]);
      const __m512 vsa = _mm512_set1_ps(a_scale[r]);
      __m512 vmax = _mm512_set1_ps(-__builtin_inff());
      for (int64_t k = 0; k < n; k += 16) {
        const __mmask16 m = tail_mask(n - k);
        const __m512 y = _mm512_add_ps(dequant16_s32(m, acc + r * ldacc + k, vzp, colsum + k, vsa, b_scale + k),
                                       _mm512_maskz_loadu_ps(m, bias + k));
        _mm512_mask_storeu_ps(x + r * n + k, m, y);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, y);
      }
      row_max[i] = _mm512_reduce_max_ps(vmax);
    }
    // Then exp, its sum and the codes in one pass: a code needs exp alone, not the sum.
    const __m512 c255 = _mm512_set1_ps(255.f);
    for (int64_t i = 0; i < g; ++i) {
      const int64_t r = r0 + i;
      const __m512 vmx = _mm512_set1_ps(row_max[i]);
      __m512 sum = _mm512_setzero_ps();
      for (int64_t k = 0; k < n; k += 16) {
        const __mmask16 m = tail_mask(n - k);
        const __m512 e = exp_probability16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + r * n + k), vmx));
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(m, e));
        _mm_mask_storeu_epi8(q + r * ldq + k, m, _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(e, c255))));
      }
      scale[r] = 1.f / (255.f * _mm512_reduce_add_ps(sum));
      for (int64_t k = n; k < ldq; ++k) q[r * ldq + k] = 0;
    }
  }
#else
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* ar = acc + r * ldacc;
    float* xr = x + r * n;
    uint8_t* qr = q + r * ldq;
    const uint32_t zp = uint32_t(a_zp[r]);
    const float sa = a_scale[r];
    for (int64_t k = 0; k < n; ++k)
      xr[k] = float(int32_t(uint32_t(ar[k]) - zp * uint32_t(colsum[k]))) * (sa * b_scale[k]) + bias[k];
    scale[r] = 1.f / (255.f * exp_row(xr, n));
    for (int64_t k = 0; k < n; ++k) qr[k] = uint8_t(int32_t(std::nearbyint(xr[k] * 255.f)));
    for (int64_t k = n; k < ldq; ++k) qr[k] = 0;
  }
#endif
}

// max |x| over n values of stride `step`, on the bit patterns: for finite floats the integer order
// of |x|'s bits is the float order, and an integer max vectorizes where a float one (NaN rules)
// does not. Returns the scale max/127 (1 for all zeros).
float symmetric_scale(const float* x, int64_t n, int64_t step) {
  uint32_t top = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i * step, 4);
    b &= 0x7fffffffu;
    top = b > top ? b : top;
  }
  float amax;
  std::memcpy(&amax, &top, 4);
  return amax > 0.f ? amax / 127.f : 1.f;
}

inline int8_t code_s8(float v, float inv) { return int8_t(int32_t(std::nearbyint(v * inv))); }

// Panel layout (x32c4): weight row w, depth k -> panels[(w / 32) * panel_bytes + (k / 4) * 128 +
// (w % 32) * 4 + k % 4].
inline int64_t panel_offset(int64_t w, int64_t k, int64_t panel_bytes) {
  return (w / 32) * panel_bytes + (k / 4) * 128 + (w % 32) * 4 + (k % 4);
}

void pack_keys_s8_impl(int64_t rows, int64_t n, const float* x, int64_t ldx, float scale_mult, int8_t* panels,
                       int64_t panel_bytes, float* scale, int32_t* colsum) {
  for (int64_t j = 0; j < rows; ++j) {
    const float* xr = x + j * ldx;
    int8_t* base = panels + panel_offset(j, 0, panel_bytes);
#ifdef __AVX512F__
    __m512 m = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(n - k), xr + k)));
    const float amax = _mm512_reduce_max_ps(m), s = amax > 0.f ? amax / 127.f : 1.f;
    const __m512 inv = _mm512_set1_ps(1.f / s);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t k = 0; k < n; k += 16) {
      const __m512i q = codes16(_mm512_maskz_loadu_ps(tail_mask(n - k), xr + k), inv);
      sum = _mm512_add_epi32(sum, q);
      alignas(16) int32_t words[4];  // codes k..k+15 as four 4-byte groups, one per k step
      _mm_store_si128(reinterpret_cast<__m128i*>(words), _mm512_cvtepi32_epi8(q));
      for (int64_t w = 0; w < 4 && k + 4 * w < n; ++w) std::memcpy(base + (k / 4 + w) * 128, words + w, 4);
    }
    scale[j] = s * scale_mult;
    colsum[j] = _mm512_reduce_add_epi32(sum);
#else
    const float s = symmetric_scale(xr, n, 1), inv = 1.f / s;
    int32_t sum = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int8_t c = code_s8(xr[k], inv);
      base[(k / 4) * 128 + k % 4] = c;
      sum += c;
    }
    scale[j] = s * scale_mult;
    colsum[j] = sum;
#endif
  }
}

void pack_values_s8_impl(int64_t rows, int64_t n, const float* x, int64_t ldx, int8_t* panels, int64_t panel_bytes,
                         float* scale, int32_t* colsum) {
#ifdef __AVX512F__
  // 16 channels at a time: their max over the rows, then 4 rows at a time quantized and
  // interleaved so each channel's 4 codes (one k step) are contiguous: 64 bytes of one panel row.
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 mc = tail_mask(n - c);
    __m512 m = _mm512_setzero_ps();
    for (int64_t r = 0; r < rows; ++r) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps(mc, x + r * ldx + c)));
    const __m512 s = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.f),
                                          _mm512_div_ps(m, _mm512_set1_ps(127.f)));
    _mm512_mask_storeu_ps(scale + c, mc, s);
    const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.f), s);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t r = 0; r < rows; r += 4) {
      __m128i b[4];
      for (int t = 0; t < 4; ++t) {
        const __m512i q = r + t < rows ? codes16(_mm512_maskz_loadu_ps(mc, x + (r + t) * ldx + c), inv)
                                       : _mm512_setzero_si512();
        sum = _mm512_add_epi32(sum, q);
        b[t] = _mm512_cvtepi32_epi8(q);
      }
      const __m128i t01l = _mm_unpacklo_epi8(b[0], b[1]), t01h = _mm_unpackhi_epi8(b[0], b[1]);
      const __m128i t23l = _mm_unpacklo_epi8(b[2], b[3]), t23h = _mm_unpackhi_epi8(b[2], b[3]);
      __m128i* dst = reinterpret_cast<__m128i*>(panels + panel_offset(c, r, panel_bytes));
      _mm_storeu_si128(dst + 0, _mm_unpacklo_epi16(t01l, t23l));  // channels c..c+3
      _mm_storeu_si128(dst + 1, _mm_unpackhi_epi16(t01l, t23l));  // c+4..c+7
      _mm_storeu_si128(dst + 2, _mm_unpacklo_epi16(t01h, t23h));  // c+8..c+11
      _mm_storeu_si128(dst + 3, _mm_unpackhi_epi16(t01h, t23h));  // c+12..c+15
    }
    _mm512_mask_storeu_epi32(colsum + c, mc, sum);
  }
#else
  for (int64_t c = 0; c < n; ++c) {
    const float s = symmetric_scale(x + c, rows, ldx), inv = 1.f / s;
    int32_t sum = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const int8_t q = code_s8(x[r * ldx + c], inv);
      panels[panel_offset(c, r, panel_bytes)] = q;
      sum += q;
    }
    scale[c] = s;
    colsum[c] = sum;
  }
#endif
}

}  // namespace
}  // namespace mixq

#define MIXQ_DEFINE_ENCODER_OPS(symbol, label) \
  namespace mixq {                              \
  extern const EncoderOps symbol;               \
  const EncoderOps symbol = {label, layernorm_impl, softmax_impl, scores_softmax_u8_impl, pack_keys_s8_impl, \
                             pack_values_s8_impl, attend_f32_impl, attend_s8_impl, silu_gate_impl}; \
  }
