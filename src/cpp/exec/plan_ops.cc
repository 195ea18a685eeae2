#include "exec/plan_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/parallel.h"
#include "kernels/dispatch.h"
#include "ops/window.h"

namespace mixq {
namespace {

constexpr int64_t kGrainBytes = 1 << 15;

}  // namespace

void quantize_tensor(int64_t n, const float* x, QParams q, uint8_t* out) {
  const float inv = 1.f / q.scale, zp = float(q.zp);
  const IsaOps* ops = active_dispatch().ops;
  parallel_chunks(n, kGrainBytes, [&](int64_t i0, int64_t i1) {
    ops->quantize_planes_u8(x + i0, 0, 1, i1 - i0, inv, zp, out + i0);
  });
}

void dequantize_tensor(int64_t n, const uint8_t* x, QParams q, float* out) {
  parallel_chunks(n, kGrainBytes, [&](int64_t i0, int64_t i1) {
    const uint8_t* __restrict src = x;
    float* __restrict dst = out;
    const float s = q.scale;
    const int32_t z = q.zp;
    for (int64_t i = i0; i < i1; ++i) dst[i] = s * float(int32_t(src[i]) - z);
  });
}

void add_tensors(int64_t n, DType dt, const void* a, QParams qa, const void* b, QParams qb, float lo, float hi,
                 void* out, QParams qo) {
  if (dt == DType::f32) {
    const float *fa = static_cast<const float*>(a), *fb = static_cast<const float*>(b);
    float* fo = static_cast<float*>(out);
    parallel_chunks(n, kGrainBytes / 4, [&](int64_t i0, int64_t i1) {
      const float *__restrict pa = fa, *__restrict pb = fb;
      float* __restrict po = fo;
      const float l = lo, h = hi;
      for (int64_t i = i0; i < i1; ++i) po[i] = std::min(std::max(pa[i] + pb[i], l), h);
    });
    return;
  }
  const uint8_t *ua = static_cast<const uint8_t*>(a), *ub = static_cast<const uint8_t*>(b);
  uint8_t* uo = static_cast<uint8_t*>(out);
  const float inv = 1.f / qo.scale, zp = float(qo.zp);
  parallel_chunks(n, kGrainBytes, [&](int64_t i0, int64_t i1) {
    const uint8_t *__restrict pa = ua, *__restrict pb = ub;
    uint8_t* __restrict po = uo;
    const float sa = qa.scale, za = float(qa.zp), sb = qb.scale, zb = float(qb.zp), l = lo, h = hi, iv = inv, z = zp;
    for (int64_t i = i0; i < i1; ++i) {
      float y = sa * (float(pa[i]) - za) + sb * (float(pb[i]) - zb);
      po[i] = quantize_u8(std::min(std::max(y, l), h), iv, z);
    }
  });
}

void copy_channels(int64_t pixels, int64_t c, DType dt, const void* in, QParams qi, void* out, int64_t ld_out,
                   QParams qo) {
  const int64_t elem = dt == DType::f32 ? 4 : 1;
  const bool requant = dt == DType::u8 && (qi.scale != qo.scale || qi.zp != qo.zp);
  const uint8_t* src = static_cast<const uint8_t*>(in);
  uint8_t* dst = static_cast<uint8_t*>(out);
  const float inv = 1.f / qo.scale, zp = float(qo.zp);
  parallel_chunks(pixels, std::max<int64_t>(1, kGrainBytes / (c * elem)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const uint8_t* s = src + p * c * elem;
      uint8_t* d = dst + p * ld_out * elem;
      if (!requant) {
        std::memcpy(d, s, size_t(c * elem));
        continue;
      }
      const float si = qi.scale, zi = float(qi.zp), iv = inv, z = zp;
      const int64_t cc = c;
      for (int64_t j = 0; j < cc; ++j) d[j] = quantize_u8(si * (float(s[j]) - zi), iv, z);
    }
  });
}

namespace {

// Calls fn(out_pixel_index, n, oy, ox, c0, cn) for every output pixel and chunk of `chunk` channels
// [c0, c0 + cn), in parallel over (n, oy, chunk); the grain counts the input a task reads (a global
// pool's rows read the whole image each).
template <typename Fn>
void for_each_output_chunk(const PoolShape& s, int64_t chunk, Fn fn) {
  const int64_t chunks = (s.C + chunk - 1) / chunk;
  const int64_t taps = std::min<int64_t>(s.KH * s.KW, kGrainBytes);  // bounded: no overflow below
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / std::max<int64_t>(1, s.OW * std::min(s.C, chunk) * taps));
  parallel_chunks(s.N * s.OH * chunks, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t / chunks, c0 = (t % chunks) * chunk, cn = std::min(chunk, s.C - c0);
      for (int64_t ox = 0; ox < s.OW; ++ox) fn(r * s.OW + ox, r / s.OH, r % s.OH, ox, c0, cn);
    }
  });
}

// The running maximum of 64 bytes of channels over a window's taps, in four 16-byte vectors (the
// baseline ISA's width; GCC vector types), kept in registers.
template <typename T>
struct Vec16;
template <>
struct Vec16<uint8_t> {
  typedef uint8_t type __attribute__((vector_size(16)));
};
template <>
struct Vec16<float> {
  typedef float type __attribute__((vector_size(16)));
};

template <typename T>
void max_pool_impl(const PoolShape& s, const T* in, T* out) {
  using V = typename Vec16<T>::type;
  constexpr int64_t kLanes = 16 / int64_t(sizeof(T)), kChunk = 4 * kLanes;
  const int64_t C = s.C, full_chunks = C / kChunk;
  for_each_output_chunk(s, C, [&](int64_t o, int64_t n, int64_t oy, int64_t ox, int64_t, int64_t) {
    T* dst = out + o * C;
    for (int64_t c0 = 0; c0 < full_chunks * kChunk; c0 += kChunk) {
      V m0 = V{} + std::numeric_limits<T>::lowest(), m1 = m0, m2 = m0, m3 = m0;
      for_each_tap(s, oy, ox, [&](int64_t iy, int64_t ix, int64_t) {
        const T* src = in + ((n * s.H + iy) * s.W + ix) * C + c0;
        V x0, x1, x2, x3;
        std::memcpy(&x0, src, 16), std::memcpy(&x1, src + kLanes, 16);
        std::memcpy(&x2, src + 2 * kLanes, 16), std::memcpy(&x3, src + 3 * kLanes, 16);
        // std::max's order: a NaN input leaves the maximum as it was.
        m0 = m0 < x0 ? x0 : m0, m1 = m1 < x1 ? x1 : m1, m2 = m2 < x2 ? x2 : m2, m3 = m3 < x3 ? x3 : m3;
      });
      std::memcpy(dst + c0, &m0, 16), std::memcpy(dst + c0 + kLanes, &m1, 16);
      std::memcpy(dst + c0 + 2 * kLanes, &m2, 16), std::memcpy(dst + c0 + 3 * kLanes, &m3, 16);
    }
    const int64_t c0 = full_chunks * kChunk;  // the channels past the last whole chunk
    if (c0 == C) return;
    std::fill(dst + c0, dst + C, std::numeric_limits<T>::lowest());
    for_each_tap(s, oy, ox, [&](int64_t iy, int64_t ix, int64_t) {
      const T* src = in + ((n * s.H + iy) * s.W + ix) * C;
      for (int64_t c = c0; c < C; ++c) dst[c] = std::max(dst[c], src[c]);
    });
  });
}

}  // namespace

void max_pool(const PoolShape& s, DType dt, const void* in, void* out) {
  if (dt == DType::f32) max_pool_impl(s, static_cast<const float*>(in), static_cast<float*>(out));
  else max_pool_impl(s, static_cast<const uint8_t*>(in), static_cast<uint8_t*>(out));
}

void avg_pool(const PoolShape& s, DType dt, const void* in, QParams qi, void* out, QParams qo) {
  // 256-channel chunks: a global pool of one image is still split (ResNet-50's 2048 channels at
  // batch 1 ran on one thread).
  constexpr int64_t kChunk = 256;
  for_each_output_chunk(s, kChunk, [&](int64_t o, int64_t n, int64_t oy, int64_t ox, int64_t c0, int64_t cn) {
    float acc[kChunk];
    std::fill(acc, acc + cn, 0.f);
    int64_t taps = 0;
    for_each_tap(s, oy, ox, [&](int64_t iy, int64_t ix, int64_t) {
      const int64_t off = ((n * s.H + iy) * s.W + ix) * s.C + c0;
      ++taps;
      if (dt == DType::f32) {
        const float* src = static_cast<const float*>(in) + off;
        for (int64_t c = 0; c < cn; ++c) acc[c] += src[c];
      } else {  // integer sums are exact in float up to 2^24 / 255 taps
        const uint8_t* src = static_cast<const uint8_t*>(in) + off;
        for (int64_t c = 0; c < cn; ++c) acc[c] += float(src[c]);
      }
    });
    const float div = float(s.count_include_pad ? s.KH * s.KW : std::max<int64_t>(taps, 1));
    if (dt == DType::f32) {
      float* dst = static_cast<float*>(out) + o * s.C + c0;
      for (int64_t c = 0; c < cn; ++c) dst[c] = acc[c] / div;
    } else {
      uint8_t* dst = static_cast<uint8_t*>(out) + o * s.C + c0;
      const float inv = 1.f / qo.scale, zp = float(qo.zp), zin = float(qi.zp) * float(taps);
      for (int64_t c = 0; c < cn; ++c) dst[c] = quantize_u8(qi.scale * (acc[c] - zin) / div, inv, zp);
    }
  });
}

float apply_act(ActKind k, float x, float lo, float hi) {
  switch (k) {
    case ActKind::silu: return x / (1.f + std::exp(-x));
    case ActKind::hardswish: return x * std::min(std::max(x + 3.f, 0.f), 6.f) / 6.f;
    case ActKind::sigmoid: return 1.f / (1.f + std::exp(-x));
    case ActKind::clamp: return std::min(std::max(x, lo), hi);
  }
  return x;
}

void act_f32(int64_t n, ActKind k, float lo, float hi, const float* in, float* out) {
  parallel_chunks(n, kGrainBytes / 4, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = apply_act(k, in[i], lo, hi);
  });
}

void lut_u8(int64_t n, const uint8_t* table, const uint8_t* in, uint8_t* out) {
  parallel_chunks(n, kGrainBytes, [&](int64_t i0, int64_t i1) {
    const uint8_t *__restrict t = table, *__restrict src = in;
    uint8_t* __restrict dst = out;
    for (int64_t i = i0; i < i1; ++i) dst[i] = t[src[i]];
  });
}

}  // namespace mixq
