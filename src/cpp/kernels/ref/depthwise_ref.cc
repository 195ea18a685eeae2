// Scalar depthwise kernels: the reference the SIMD ones are tested against, and what runs at the ref
// level (and off x86) and for int8 kernels of more than kDwMaxExactTaps taps. int32 accumulation
// for int8.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "ops/depthwise_impl.h"
#include "ops/window.h"

namespace mixq {
namespace {

// Runs fn(n, oh) over every output row, in parallel.
template <typename Fn>
void for_each_output_row(const DwCall& c, Fn fn) {
  parallel_for(c.s.N * c.OH, [&](int64_t task, int) { fn(task / c.OH, task % c.OH); });
}

// nearbyint() in the default rounding mode, written so that baseline SIMD (SSE2, no rounding
// instruction) vectorizes it instead of calling libm: adding and removing 1.5 * 2^23 rounds any
// |v| < 2^22 to the nearest integer, ties to even; larger magnitudes are integers already or
// saturate the u8 code either way.
inline float round_even(float v) {
  const float magic = 12582912.f;
  return std::fabs(v) < 4194304.f ? (v + magic) - magic : v;
}

}  // namespace

void u8s8_dwconv__ref(const DwCall& c) {
  const DwShape& s = c.s;
  const int64_t C = s.C;
  const int8_t* codes = c.w->codes.data();
  const float* mult = c.mult;
  const std::vector<float> zeros(static_cast<size_t>(C), 0.f);
  const float* bias = c.bias ? c.bias : zeros.data();
  const float lo = c.lo, hi = c.hi, inv = 1.f / c.out_scale, zpf = float(c.out_zp);
  const int16_t zp16 = int16_t(c.in_zp);
  // Scalars captured by value: the float stores below could alias them through a reference,
  // which would stop the loops from vectorizing.
  for_each_output_row(c, [&, mult, bias, lo, hi, inv, zpf, zp16](int64_t n, int64_t oh) {
    std::vector<int32_t> acc(static_cast<size_t>(C));
    std::vector<float> y(static_cast<size_t>(C));
    for (int64_t ow = 0; ow < c.OW; ++ow) {
      std::fill(acc.begin(), acc.end(), 0);
      for_each_tap(s, oh, ow, [&](int64_t ih, int64_t iw, int64_t t) {
        const uint8_t* x = c.in_u8 + ((n * s.H + ih) * s.W + iw) * c.ld_in;
        const int8_t* wt = codes + t * C;
        // |(x - zp) * w| <= 255 * 128 fits int16: 16-bit multiplies, which baseline SIMD has.
        for (int64_t ch = 0; ch < C; ++ch) acc[ch] += int16_t(int16_t(x[ch] - zp16) * wt[ch]);
      });
      for (int64_t ch = 0; ch < C; ++ch) {
        const float v = float(acc[ch]) * mult[ch] + bias[ch];
        y[ch] = v < lo ? lo : (v > hi ? hi : v);
      }
      const int64_t o = ((n * c.OH + oh) * c.OW + ow) * c.ld_out;
      if (c.out_u8) {
        uint8_t* out = c.out_u8 + o;
        for (int64_t ch = 0; ch < C; ++ch) {
          float v = round_even(y[ch] * inv) + zpf;
          v = v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
          out[ch] = uint8_t(int32_t(v));
        }
      } else {
        std::memcpy(c.out_f32 + o, y.data(), size_t(C) * sizeof(float));
      }
    }
  });
}

void f32_dwconv__ref(const DwCall& c) {
  const DwShape& s = c.s;
  const int64_t C = s.C;
  const std::vector<float> zeros(static_cast<size_t>(C), 0.f);
  const float* bias = c.bias ? c.bias : zeros.data();
  const float lo = c.lo, hi = c.hi;
  for_each_output_row(c, [&, bias, lo, hi](int64_t n, int64_t oh) {
    std::vector<float> acc(static_cast<size_t>(C));
    for (int64_t ow = 0; ow < c.OW; ++ow) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for_each_tap(s, oh, ow, [&](int64_t ih, int64_t iw, int64_t t) {
        const float* x = c.in_f32 + ((n * s.H + ih) * s.W + iw) * c.ld_in;
        for (int64_t cb = 0; cb * kDwBlock < C; ++cb) {  // packed weights: [cb][tap][16]
          const float* wt = c.w->block(cb) + t * kDwBlock;
          const int64_t c0 = cb * kDwBlock, nc = std::min(kDwBlock, C - c0);
          for (int64_t j = 0; j < nc; ++j) acc[c0 + j] += x[c0 + j] * wt[j];
        }
      });
      float* out = c.out_f32 + ((n * c.OH + oh) * c.OW + ow) * c.ld_out;
      for (int64_t ch = 0; ch < C; ++ch) {
        const float y = acc[ch] + bias[ch];
        out[ch] = y < lo ? lo : (y > hi ? hi : y);
      }
    }
  });
}

}  // namespace mixq
