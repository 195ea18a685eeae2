// Packing, dynamic quantization and epilogues, written once in plain C++ and compiled in one
// translation unit per ISA (ops_ref.cc, ops_avx2.cc, ops_avx512.cc) so the compiler vectorizes
// each for its instruction set. Everything sits in an anonymous namespace: copies compiled with
// different flags must never be merged by the linker.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/bf16.h"
#include "core/gelu.h"
#include "core/quantize_u8.h"
#include "kernels/kernels.h"
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define MIXQ_VECTOR_EPILOGUE 1
#include "kernels/avx512/dynamic_quant_avx512.h"
#include "kernels/avx512/epilogue_avx512.h"
#include "kernels/avx512/quantize_planes_avx512.h"
#include "kernels/avx512/unpack_lowbit_avx512.h"
#endif

namespace mixq {
namespace {

void prepare_a_u8_impl(int64_t rows, int64_t K, const uint8_t* a, int64_t lda, bool flip_sign, uint8_t* dst,
                       int64_t ldd) {
  const uint8_t flip = flip_sign ? 0x80 : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = a + r * lda;
    uint8_t* out = dst + r * ldd;
    for (int64_t k = 0; k < K; ++k) out[k] = src[k] ^ flip;
    for (int64_t k = K; k < ldd; ++k) out[k] = 0;
  }
}

void row_sums_u8_impl(int64_t rows, int64_t K, const uint8_t* a, int64_t lda, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = a + r * lda;
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += src[k];
    out[r] = s;
  }
}

// NaN and Inf are the values whose exponent bits are all ones: an integer test, which the compiler
// vectorizes (a float comparison would not be reordered into lanes without fast-math).
bool all_finite_impl(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, sizeof(b));
    bad |= uint32_t((b & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

uint64_t sum_bytes_impl(const uint8_t* p, size_t n) {
  // Four quarters read side by side (more DRAM requests in flight per core, as the decode kernels
  // do), 64 bytes of each per step in 8 independent 8-byte lanes: wide loads on every ISA.
  const size_t quarter = n / 4 / 64 * 64;
  uint64_t lanes[4][8] = {};
  for (size_t i = 0; i < quarter; i += 64)
    for (int q = 0; q < 4; ++q)
      for (int j = 0; j < 8; ++j) {
        uint64_t w;
        std::memcpy(&w, p + q * quarter + i + 8 * j, 8);
        lanes[q][j] += w;
      }
  uint64_t s = 0;
  for (int q = 0; q < 4; ++q)
    for (int j = 0; j < 8; ++j) s += lanes[q][j];
  return s;
}

void group_sums_u8_impl(int64_t rows, int64_t K, const uint8_t* a, int64_t lda, int64_t group, float* out,
                        int64_t ld_out) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = a + r * lda;
    for (int64_t g = 0; g * group < K; ++g) {
      const int64_t end = (g + 1) * group < K ? (g + 1) * group : K;
      int32_t s = 0;
      for (int64_t k = g * group; k < end; ++k) s += src[k];
      out[r * ld_out + g] = float(s);
    }
  }
}

// Low-bit group blocks of one panel (u4_x32c4 / u2_x32c4) -> the layout of the groupwise
// kernels: per group, its k steps of [32][4] s8 codes minus their zero points (exact: |q - z| < 16),
// then the group's 32 scales as fp32.
template <int BITS>
void unpack_lowbit_s8_bits(const uint8_t* blocks, int64_t group_steps, int64_t n_groups, int8_t* dst) {
  constexpr int U = 8 / BITS;
  constexpr uint8_t mask = (1 << BITS) - 1;
  const int64_t code_bytes = group_steps / U * 128;
  for (int64_t g = 0; g < n_groups; ++g) {
    const uint8_t* tail = blocks + code_bytes;  // 32 bf16 scales, then 32 u8 zero points
    uint8_t zb[128];                             // the zero point of each byte's column
    for (int i = 0; i < 128; ++i) zb[i] = tail[64 + i / 4];
    for (int64_t unit = 0; unit < group_steps / U; ++unit) {
      const uint8_t* src = blocks + unit * 128;
      for (int s = 0; s < U; ++s) {
        int8_t* out = dst + (unit * U + s) * 128;
        for (int i = 0; i < 128; ++i) out[i] = int8_t(uint8_t(((src[i] >> (s * BITS)) & mask) - zb[i]));
      }
    }
    float* scales = reinterpret_cast<float*>(dst + group_steps * 128);
    for (int n = 0; n < 32; ++n) {
      uint16_t h;
      std::memcpy(&h, tail + 2 * n, 2);
      scales[n] = bf16_to_float(h);
    }
    blocks += code_bytes + 96;
    dst += group_steps * 128 + 128;
  }
}

void unpack_lowbit_s8_impl(int bits, const uint8_t* blocks, int64_t group_steps, int64_t n_groups, int8_t* dst) {
#ifdef MIXQ_VECTOR_EPILOGUE
  if (bits == 4) return unpack_lowbit_s8_avx512<4>(blocks, group_steps, n_groups, dst);
  return unpack_lowbit_s8_avx512<2>(blocks, group_steps, n_groups, dst);
#endif
  if (bits == 4)
    unpack_lowbit_s8_bits<4>(blocks, group_steps, n_groups, dst);
  else
    unpack_lowbit_s8_bits<2>(blocks, group_steps, n_groups, dst);
}

void prepare_a_bf16_impl(int64_t rows, int64_t K, const float* a, int64_t lda, uint16_t* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = a + r * lda;
    uint16_t* out = dst + r * ldd;
    for (int64_t k = 0; k < K; ++k) out[k] = float_to_bf16(src[k]);
    for (int64_t k = K; k < ldd; ++k) out[k] = 0;
  }
}

// lo = min(0, row), hi = max(0, row) of row[k] * mult[k] (mult may be null); false if any value
// is Inf or NaN. Lane-wise partial results in whole 16-value steps, so the loop vectorizes
// without fast-math where it can (portable and AVX2 builds; AVX-512 builds use row_range_avx512).
[[maybe_unused]] bool row_range(const float* row, int64_t K, const float* mult, float& lo, float& hi) {
  constexpr int L = 16;
  float mn[L], mx[L];
  uint32_t bad[L];
  for (int j = 0; j < L; ++j) mn[j] = 0.f, mx[j] = 0.f, bad[j] = 0;
  auto take = [&](int j, int64_t k) {
    const float v = mult ? row[k] * mult[k] : row[k];
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    bad[j] |= (bits & 0x7f800000u) == 0x7f800000u;
    mn[j] = v < mn[j] ? v : mn[j];
    mx[j] = v > mx[j] ? v : mx[j];
  };
  int64_t k = 0;
  for (; k + L <= K; k += L)
    for (int j = 0; j < L; ++j) take(j, k + j);
  for (; k < K; ++k) take(0, k);
  uint32_t any_bad = 0;
  for (int j = 0; j < L; ++j) {
    lo = mn[j] < lo ? mn[j] : lo;
    hi = mx[j] > hi ? mx[j] : hi;
    any_bad |= bad[j];
  }
  return any_bad == 0;
}

bool quantize_rows_u8_impl(int64_t M, int64_t K, const float* x, int64_t ldx, uint8_t* q, int64_t ldq,
                           float* scale, int32_t* zp, const float* col_mult) {
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * ldx;
    float lo = 0.f, hi = 0.f;
#ifdef MIXQ_VECTOR_EPILOGUE
    if (!row_range_avx512(row, K, col_mult, lo, hi)) return false;
#else
    if (!row_range(row, K, col_mult, lo, hi)) return false;
#endif
    float s = (hi - lo) / 255.f;
    if (!(s > 0.f) || !std::isfinite(s)) s = s > 0.f ? s : 1.f;
    float inv = 1.f / s;
    float z = std::nearbyint(-lo * inv);
    z = z < 0.f ? 0.f : (z > 255.f ? 255.f : z);
    scale[m] = s;
    zp[m] = int32_t(z);
    uint8_t* qrow = q + m * ldq;
#ifdef MIXQ_VECTOR_EPILOGUE
    quantize_row_avx512(row, K, col_mult, inv, z, qrow);
#else
    for (int64_t j = 0; j < K; ++j) {
      float v = std::nearbyint((col_mult ? row[j] * col_mult[j] : row[j]) * inv) + z;
      v = v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
      qrow[j] = uint8_t(int32_t(v));
    }
#endif
    for (int64_t j = K; j < ldq; ++j) qrow[j] = 0;
  }
  return true;
}

void quantize_planes_u8_impl(const float* src, int64_t plane, int64_t C, int64_t W, float inv_scale, float zp,
                             uint8_t* out) {
#ifdef MIXQ_VECTOR_EPILOGUE
  int64_t x = quantize_planes_u8_avx512(src, plane, C, W, inv_scale, zp, out);
#else
  int64_t x = 0;
#endif
  if (C == 1) {  // a plain run: the compiler vectorizes this loop
    for (; x < W; ++x) out[x] = quantize_u8(src[x], inv_scale, zp);
    return;
  }
  // Each plane's pixels quantized with contiguous (vectorized) loads into a small buffer, then the
  // bytes interleaved: quantizing straight into the interleaved output reads the planes strided.
  constexpr int64_t kChunk = 256;
  uint8_t codes[kChunk * 4];
  for (; x < W; x += kChunk) {
    const int64_t n = std::min(kChunk, W - x);
    for (int64_t c0 = 0; c0 < C; c0 += 4) {
      const int64_t cn = std::min<int64_t>(4, C - c0);
      for (int64_t c = 0; c < cn; ++c)
        for (int64_t i = 0; i < n; ++i) codes[c * kChunk + i] = quantize_u8(src[(c0 + c) * plane + x + i], inv_scale, zp);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < cn; ++c) out[(x + i) * C + c0 + c] = codes[c * kChunk + i];
    }
  }
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

// Writes one output row of float results chunk by chunk: straight into a float output, or through
// a small buffer that is then requantized to u8/s8. fill(c0, cn, y) computes columns [c0, c0+cn)
// before the residual and the clamp, which are applied here.
template <typename Fill>
inline void write_float_row(const Epilogue& e, int64_t m, int64_t n0, int64_t nc, Fill fill) {
  float tmp[256];
  const float lo = e.lo, hi = e.hi;
  for (int64_t c0 = 0, cn = 0; c0 < nc; c0 += cn) {
    cn = nc - c0 < 256 ? nc - c0 : 256;
    if (e.col_block) cn = std::min(cn, e.col_block - (n0 + c0) % e.col_block);  // chunks stay in one block
    const int64_t off = out_offset(e, m, n0 + c0);
    float* y = e.type == OutType::f32 ? static_cast<float*>(e.out) + off : tmp;
    fill(c0, cn, y);
    if (e.residual_u8) {
      const uint8_t* res = e.residual_u8 + m * e.ld_residual + n0 + c0;
      const float rs = e.residual_scale, rz = float(e.residual_zp);
      for (int64_t j = 0; j < cn; ++j) y[j] += rs * (float(res[j]) - rz);
    } else if (e.residual_f32) {
      const float* res = e.residual_f32 + m * e.ld_residual + n0 + c0;
      for (int64_t j = 0; j < cn; ++j) y[j] += res[j];
    }
    if (e.gelu)
      for (int64_t j = 0; j < cn; ++j) y[j] = gelu_scalar(y[j]);
    for (int64_t j = 0; j < cn; ++j) y[j] = y[j] < lo ? lo : (y[j] > hi ? hi : y[j]);
    const float inv = 1.f / e.out_scale, zpf = float(e.out_zp);
    if (e.type == OutType::u8)
      store_requantized(static_cast<uint8_t*>(e.out) + off, y, cn, inv, zpf, 0.f, 255.f);
    else if (e.type == OutType::s8)
      store_requantized(static_cast<int8_t*>(e.out) + off, y, cn, inv, zpf, -128.f, 127.f);
  }
}

// Zero-point corrected accumulator: acc - azp*colsum - bzp*rowsum + K*azp*bzp, wrapping mod 2^32
// (unsigned arithmetic) exactly like the reference.
inline int32_t corrected(int32_t acc, uint32_t azp, int32_t colsum, const int32_t* bzp, int64_t j, uint32_t rs,
                         uint32_t kz) {
  uint32_t v = uint32_t(acc) - azp * uint32_t(colsum);
  if (bzp) v += kz * uint32_t(bzp[j]) - uint32_t(bzp[j]) * rs;
  return int32_t(v);
}

void epilogue_s32_impl(const Epilogue& e, const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mr,
                       int64_t n0, int64_t nc) {
#ifdef MIXQ_VECTOR_EPILOGUE
  if (vector_epilogue_ok(e) && !e.b_zp) return epilogue_s32_avx512(e, acc, ldacc, m0, mr, n0, nc);
#endif
  const int32_t* cs = e.colsum + n0;
  const int32_t* bz = e.b_zp ? e.b_zp + n0 : nullptr;
  const float* sb = e.b_scale + n0;
  const float* bias = e.bias ? e.bias + n0 : nullptr;
  for (int64_t r = 0; r < mr; ++r) {
    const int64_t m = m0 + r;
    const int32_t* a = acc + r * ldacc;
    const uint32_t azp = e.a_zp ? uint32_t(e.a_zp[m * e.a_zp_stride]) : 0u;
    const uint32_t rs = e.rowsum ? uint32_t(e.rowsum[m]) : 0u;
    const uint32_t kz = uint32_t(e.K) * azp;
    const int64_t off = m * e.ldo + n0;
    if (e.type == OutType::s32) {
      int32_t* out = static_cast<int32_t*>(e.out) + off;
      if (bz)
        for (int64_t j = 0; j < nc; ++j) out[j] = corrected(a[j], azp, cs[j], bz, j, rs, kz);
      else
        for (int64_t j = 0; j < nc; ++j) out[j] = corrected(a[j], azp, cs[j], nullptr, j, rs, kz);
      continue;
    }
    const float sa = e.a_scale[m * e.a_scale_stride];
    write_float_row(e, m, n0, nc, [&](int64_t c0, int64_t cn, float* y) {
      if (bz)
        for (int64_t j = c0; j < c0 + cn; ++j)
          y[j - c0] = float(corrected(a[j], azp, cs[j], bz, j, rs, kz)) * (sa * sb[j]) + (bias ? bias[j] : 0.f);
      else if (bias)  // symmetric weights (the common case): a branch-free loop the compiler vectorizes
        for (int64_t j = c0; j < c0 + cn; ++j)
          y[j - c0] = float(int32_t(uint32_t(a[j]) - azp * uint32_t(cs[j]))) * (sa * sb[j]) + bias[j];
      else
        for (int64_t j = c0; j < c0 + cn; ++j)
          y[j - c0] = float(int32_t(uint32_t(a[j]) - azp * uint32_t(cs[j]))) * (sa * sb[j]);
    });
  }
}

void epilogue_lowbit_impl(const Epilogue& e, const float* acc, int64_t ldacc, int64_t m0, int64_t mr, int64_t n0,
                          int64_t nc) {
#ifdef MIXQ_VECTOR_EPILOGUE
  if (vector_epilogue_ok(e)) return epilogue_lowbit_avx512(e, acc, ldacc, m0, mr, n0, nc);
#endif
  const float* ws = e.wsum + n0;
  const float* bias = e.bias ? e.bias + n0 : nullptr;
  for (int64_t r = 0; r < mr; ++r) {
    const int64_t m = m0 + r;
    const float* a = acc + r * ldacc;
    const float sa = e.a_scale[m * e.a_scale_stride], za = float(e.a_zp[m * e.a_zp_stride]);
    write_float_row(e, m, n0, nc, [&](int64_t c0, int64_t cn, float* y) {
      for (int64_t j = c0; j < c0 + cn; ++j) y[j - c0] = sa * (a[j] - za * ws[j]) + (bias ? bias[j] : 0.f);
    });
  }
}

void epilogue_f32_impl(const Epilogue& e, const float* acc, int64_t ldacc, int64_t m0, int64_t mr, int64_t n0,
                       int64_t nc) {
#ifdef MIXQ_VECTOR_EPILOGUE
  if (vector_epilogue_ok(e)) return epilogue_f32_avx512(e, acc, ldacc, m0, mr, n0, nc);
#endif
  const float* bias = e.bias ? e.bias + n0 : nullptr;
  for (int64_t r = 0; r < mr; ++r) {
    const float* a = acc + r * ldacc;
    write_float_row(e, m0 + r, n0, nc, [&](int64_t c0, int64_t cn, float* y) {
      for (int64_t j = c0; j < c0 + cn; ++j) y[j - c0] = a[j] + (bias ? bias[j] : 0.f);
    });
  }
}

}  // namespace
}  // namespace mixq

// Defines the IsaOps table for the including translation unit.
#define MIXQ_DEFINE_ISA_OPS(name, isa_level)                                                       \
  namespace mixq {                                                                                 \
  const IsaOps name = {#name,                 isa_level,             prepare_a_u8_impl,            \
                       row_sums_u8_impl,      prepare_a_bf16_impl,   group_sums_u8_impl,           \
                       quantize_rows_u8_impl, epilogue_s32_impl,     epilogue_lowbit_impl,         \
                       epilogue_f32_impl,     sum_bytes_impl,        unpack_lowbit_s8_impl,        \
                       quantize_planes_u8_impl, all_finite_impl};                                  \
  }
