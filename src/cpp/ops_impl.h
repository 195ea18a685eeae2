// Packing, dynamic quantization and epilogues, written once in plain C++ and compiled in one
// translation unit per ISA (ops_ref.cc, ops_avx2.cc, ops_avx512.cc) so the compiler vectorizes
// each for its instruction set. Everything sits in an anonymous namespace: copies compiled with
// different flags must never be merged by the linker.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "bf16.h"
#include "kernels.h"

namespace mixq {
namespace {

void pack_a_u8c4_impl(int mr, int64_t K, const uint8_t* a, int64_t lda, bool flip_sign, uint8_t* out,
                      int32_t* rowsum) {
  const uint32_t flip4 = flip_sign ? 0x80808080u : 0u;
  const uint8_t flip1 = flip_sign ? 0x80 : 0;
  const int64_t k4_full = K / 4;
  for (int r = 0; r < mr; ++r) {
    const uint8_t* src = a + r * lda;
    uint8_t* dst = out + 4 * r;
    for (int64_t p = 0; p < k4_full; ++p) {
      uint32_t w;
      std::memcpy(&w, src + 4 * p, 4);
      w ^= flip4;
      std::memcpy(dst + p * 4 * mr, &w, 4);
    }
    if (K % 4) {
      uint8_t tail[4] = {0, 0, 0, 0};
      for (int64_t k = 4 * k4_full; k < K; ++k) tail[k - 4 * k4_full] = src[k] ^ flip1;
      std::memcpy(dst + k4_full * 4 * mr, tail, 4);
    }
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += uint8_t(src[k] ^ flip1);
    rowsum[r] = s;
  }
}

void pack_a_f32_impl(int mr, int64_t K, const float* a, int64_t lda, float* out) {
  for (int r = 0; r < mr; ++r) {
    const float* src = a + r * lda;
    for (int64_t k = 0; k < K; ++k) out[k * mr + r] = src[k];
  }
}

void pack_a_bf16c2_impl(int mr, int64_t K, const float* a, int64_t lda, uint16_t* out) {
  const int64_t k2 = (K + 1) / 2;
  for (int r = 0; r < mr; ++r) {
    const float* src = a + r * lda;
    for (int64_t p = 0; p < k2; ++p) {
      out[(p * mr + r) * 2] = float_to_bf16(src[2 * p]);
      out[(p * mr + r) * 2 + 1] = 2 * p + 1 < K ? float_to_bf16(src[2 * p + 1]) : uint16_t(0);
    }
  }
}

bool quantize_rows_u8_impl(int64_t M, int64_t K, const float* x, int64_t ldx, uint8_t* q, int64_t ldq,
                           float* scale, int32_t* zp) {
  constexpr int L = 16;  // lane-wise partial min/max so the loop vectorizes without fast-math
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * ldx;
    float mn[L], mx[L];
    uint32_t bad[L];
    for (int j = 0; j < L; ++j) mn[j] = 0.f, mx[j] = 0.f, bad[j] = 0;
    int64_t k = 0;
    for (; k + L <= K; k += L) {
      for (int j = 0; j < L; ++j) {
        float v = row[k + j];
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        bad[j] |= (bits & 0x7f800000u) == 0x7f800000u;
        mn[j] = v < mn[j] ? v : mn[j];
        mx[j] = v > mx[j] ? v : mx[j];
      }
    }
    for (; k < K; ++k) {
      float v = row[k];
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      bad[0] |= (bits & 0x7f800000u) == 0x7f800000u;
      mn[0] = v < mn[0] ? v : mn[0];
      mx[0] = v > mx[0] ? v : mx[0];
    }
    float lo = 0.f, hi = 0.f;
    uint32_t any_bad = 0;
    for (int j = 0; j < L; ++j) {
      lo = mn[j] < lo ? mn[j] : lo;
      hi = mx[j] > hi ? mx[j] : hi;
      any_bad |= bad[j];
    }
    if (any_bad) return false;
    float s = (hi - lo) / 255.f;
    if (!(s > 0.f) || !std::isfinite(s)) s = s > 0.f ? s : 1.f;
    float inv = 1.f / s;
    float z = std::nearbyint(-lo * inv);
    z = z < 0.f ? 0.f : (z > 255.f ? 255.f : z);
    scale[m] = s;
    zp[m] = int32_t(z);
    uint8_t* qrow = q + m * ldq;
    for (int64_t j = 0; j < K; ++j) {
      float v = std::nearbyint(row[j] * inv) + z;
      v = v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
      qrow[j] = uint8_t(int32_t(v));
    }
  }
  return true;
}

template <typename T>
inline void store_requantized(T* dst, const float* y, int64_t n, float inv_scale, float zp, float qmin,
                              float qmax) {
  for (int64_t j = 0; j < n; ++j) {
    float v = std::nearbyint(y[j] * inv_scale) + zp;
    v = v < qmin ? qmin : (v > qmax ? qmax : v);
    dst[j] = T(int32_t(v));
  }
}

void epilogue_s32_impl(const Epilogue& e, const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mr,
                       int64_t n0, int64_t nc) {
  float y[256];  // one row chunk of float results
  for (int64_t r = 0; r < mr; ++r) {
    const int64_t m = m0 + r;
    const int32_t* arow = acc + r * ldacc;
    const uint32_t azp = e.a_zp ? uint32_t(e.a_zp[m * e.a_zp_stride]) : 0u;
    const uint32_t rs = e.rowsum ? uint32_t(e.rowsum[m]) : 0u;
    const uint32_t kz = uint32_t(e.K) * azp;
    // int32 corrections wrap mod 2^32 (unsigned arithmetic), exactly like the reference.
    for (int64_t c0 = 0; c0 < nc; c0 += 256) {
      const int64_t cn = nc - c0 < 256 ? nc - c0 : 256;
      const int32_t* a = arow + c0;
      const int32_t* cs = e.colsum + n0 + c0;
      int32_t corr[256];
      if (e.b_zp) {
        const int32_t* bz = e.b_zp + n0 + c0;
        for (int64_t j = 0; j < cn; ++j)
          corr[j] = int32_t(uint32_t(a[j]) - azp * uint32_t(cs[j]) - uint32_t(bz[j]) * rs + kz * uint32_t(bz[j]));
      } else {
        for (int64_t j = 0; j < cn; ++j) corr[j] = int32_t(uint32_t(a[j]) - azp * uint32_t(cs[j]));
      }
      if (e.type == OutType::s32) {
        std::memcpy(static_cast<int32_t*>(e.out) + m * e.ldo + n0 + c0, corr, cn * 4);
        continue;
      }
      const float sa = e.a_scale[m * e.a_scale_stride];
      const float* sb = e.b_scale + n0 + c0;
      const float lo = e.lo, hi = e.hi;
      if (e.bias) {
        const float* b = e.bias + n0 + c0;
        for (int64_t j = 0; j < cn; ++j) {
          float v = float(corr[j]) * (sa * sb[j]) + b[j];
          y[j] = v < lo ? lo : (v > hi ? hi : v);
        }
      } else {
        for (int64_t j = 0; j < cn; ++j) {
          float v = float(corr[j]) * (sa * sb[j]);
          y[j] = v < lo ? lo : (v > hi ? hi : v);
        }
      }
      const int64_t off = m * e.ldo + n0 + c0;
      const float inv = 1.f / e.out_scale, zpf = float(e.out_zp);
      switch (e.type) {
        case OutType::f32: std::memcpy(static_cast<float*>(e.out) + off, y, cn * 4); break;
        case OutType::u8: store_requantized(static_cast<uint8_t*>(e.out) + off, y, cn, inv, zpf, 0.f, 255.f); break;
        case OutType::s8: store_requantized(static_cast<int8_t*>(e.out) + off, y, cn, inv, zpf, -128.f, 127.f); break;
        default: break;
      }
    }
  }
}

void epilogue_f32_impl(const Epilogue& e, const float* acc, int64_t ldacc, int64_t m0, int64_t mr, int64_t n0,
                       int64_t nc) {
  const float lo = e.lo, hi = e.hi;
  for (int64_t r = 0; r < mr; ++r) {
    const float* a = acc + r * ldacc;
    float* out = static_cast<float*>(e.out) + (m0 + r) * e.ldo + n0;
    if (e.bias) {
      const float* b = e.bias + n0;
      for (int64_t j = 0; j < nc; ++j) {
        float v = a[j] + b[j];
        out[j] = v < lo ? lo : (v > hi ? hi : v);
      }
    } else {
      for (int64_t j = 0; j < nc; ++j) {
        float v = a[j];
        out[j] = v < lo ? lo : (v > hi ? hi : v);
      }
    }
  }
}

}  // namespace
}  // namespace mixq

// Defines the IsaOps table for the including translation unit.
#define MIXQ_DEFINE_ISA_OPS(name, isa_level)                                                       \
  namespace mixq {                                                                                 \
  const IsaOps name = {#name,                 isa_level,            pack_a_u8c4_impl,              \
                       pack_a_f32_impl,       pack_a_bf16c2_impl,   quantize_rows_u8_impl,         \
                       epilogue_s32_impl,     epilogue_f32_impl};                                  \
  }
