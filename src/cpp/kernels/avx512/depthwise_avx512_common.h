// Shared by the AVX-512 depthwise kernels (depthwise_avx512.cc: fp32 accumulation, any geometry;
// depthwise_avx512vnni.cc: int8 3x3 on vpdpbusd): the epilogues of a micro-tile and the per-block
// epilogue set-up, on top of the ISA-neutral tasks and row staging (kernels/depthwise_tasks.h).
// Everything has internal linkage: each including translation unit is compiled with its own ISA
// flags and must get its own copy.
#pragma once
#include <immintrin.h>

#include "kernels/depthwise_tasks.h"

namespace mixq {
namespace {

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// ----------------------------------------------------------------------------------- epilogues
// They take a micro-tile's T accumulators (T output pixels of one 16-channel block). The product
// and the bias use the explicit-rounding forms so the compiler cannot contract them into an FMA:
// results then equal the reference bit for bit (y = float(acc) * mult + bias, two roundings).

template <bool kMult>
struct StoreF32 {
  __m512 mult, bias, lo, hi;
  __mmask16 mask;
  float* out;  // pixel 0 of the row, at this block's first channel
  int64_t ld;
  template <int T>
  MIXQ_DW_INLINE void store(int64_t ow, const __m512 (&acc)[T]) const {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      __m512 y = kMult ? _mm512_mul_round_ps(acc[t], mult, kRound) : acc[t];
      y = _mm512_add_round_ps(y, bias, kRound);
      y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));  // NaN propagates, as in the reference
      _mm512_mask_storeu_ps(out + (ow + t) * ld, mask, y);
    }
  }
};

// u8: code = clamp(nearbyint(clamp(y, lo, hi) / out_scale) + zp, 0, 255). Requantization is
// monotonic, so that equals clamp(nearbyint(y / out_scale) + zp, q(lo), q(hi)) with q the same
// formula applied once to lo and hi. Four pixels go through one integer pipeline: cvt with
// round-to-nearest-even, saturating packs to int16 (+ zp, saturating) and to u8, the [q(lo), q(hi)]
// clamp on bytes, and a dword permute that gathers each pixel's 16 bytes into one 128-bit lane.
// Saturation stands in for the clamps: v is capped at 2^16 first so a large positive value cannot
// convert to INT_MIN. (A NaN y, possible only with a NaN mult or bias, gives q(lo) rather than 0.)
struct StoreU8 {
  __m512 mult, bias, inv, cap;
  __m512i zp16, qlo8, qhi8, gather;
  __mmask16 mask;
  bool full;     // all 16 channels of the block are real: plain 16-byte stores
  uint8_t* out;  // pixel 0 of the row, at this block's first channel
  int64_t ld;

  MIXQ_DW_INLINE __m512i code32(__m512 acc) const {
    const __m512 y = _mm512_add_round_ps(_mm512_mul_round_ps(acc, mult, kRound), bias, kRound);
    const __m512 v = _mm512_min_ps(cap, _mm512_mul_ps(y, inv));  // below -2^31 converts to INT_MIN: fine
    return _mm512_cvt_roundps_epi32(v, kRound);
  }
  template <int I>
  MIXQ_DW_INLINE void put(int64_t ow, __m512i bytes) const {
    const __m128i lane = _mm512_extracti32x4_epi32(bytes, I);
    uint8_t* p = out + (ow + I) * ld;
    if (full) _mm_storeu_si128(reinterpret_cast<__m128i*>(p), lane);
    else _mm_mask_storeu_epi8(p, mask, lane);
  }
  // Pixels [ow, ow + N) from the first N (<= 4) of acc.
  template <int N>
  MIXQ_DW_INLINE void store4(int64_t ow, const __m512* acc) const {
    __m512i r[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) r[i] = i < N ? code32(acc[i]) : _mm512_setzero_si512();
    const __m512i ab = _mm512_adds_epi16(_mm512_packs_epi32(r[0], r[1]), zp16);
    const __m512i cd = _mm512_adds_epi16(_mm512_packs_epi32(r[2], r[3]), zp16);
    __m512i u = _mm512_packus_epi16(ab, cd);  // lane k: channels 4k..4k+3 of pixels 0, 1, 2, 3
    u = _mm512_min_epu8(qhi8, _mm512_max_epu8(qlo8, u));
    u = _mm512_permutexvar_epi32(gather, u);  // lane i: the 16 channels of pixel i
    put<0>(ow, u);
    if (N > 1) put<1>(ow, u);
    if (N > 2) put<2>(ow, u);
    if (N > 3) put<3>(ow, u);
  }
  template <int T>
  MIXQ_DW_INLINE void store(int64_t ow, const __m512 (&acc)[T]) const {
    if constexpr (T >= 4) {
#pragma GCC unroll 4
      for (int g = 0; g < T / 4; ++g) store4<4>(ow + 4 * g, acc + 4 * g);
    } else {
      store4<T>(ow, acc);
    }
  }
};

// Keeps a loaded vector in a register: otherwise the compiler folds the load into every FMA that
// uses it, reading a column up to KW times.
MIXQ_DW_INLINE __m512 in_register(__m512 v) {
  asm("" : "+v"(v));
  return v;
}
MIXQ_DW_INLINE __m512i in_register(__m512i v) {
  asm("" : "+v"(v));
  return v;
}

// The real channels of block cb: all 16 but in the last block.
MIXQ_DW_INLINE __mmask16 block_mask(const DwCall& c, int64_t cb) {
  const int64_t NB = c.w->c_blocks(), tail = c.s.C - (NB - 1) * kDwBlock;  // tail: 1..16
  return cb == NB - 1 ? __mmask16((1u << tail) - 1u) : __mmask16(0xFFFF);
}

// -------------------------------------------------------------------------- per-block epilogue
// Calls fn(store) with the epilogue of channel block cb for the output row starting at pixel
// out_pix (StoreU8, or StoreF32 with or without the per-channel multiplier).
template <typename Fn>
MIXQ_DW_INLINE void with_block_store(const DwCall& c, const OutCodes& q, int64_t cb, int64_t out_pix, Fn fn) {
  const int64_t ch0 = cb * kDwBlock;
  const __mmask16 mask = block_mask(c, cb);
  const __m512 mult = c.mult ? _mm512_maskz_loadu_ps(mask, c.mult + ch0) : _mm512_set1_ps(1.f);
  const __m512 bias = c.bias ? _mm512_maskz_loadu_ps(mask, c.bias + ch0) : _mm512_setzero_ps();
  const int64_t out_off = out_pix * c.ld_out + ch0;
  if (c.out_u8) {
    const __m512i gather = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    fn(StoreU8{mult, bias, _mm512_set1_ps(q.inv), _mm512_set1_ps(65536.f), _mm512_set1_epi16(int16_t(c.out_zp)),
               _mm512_set1_epi8(char(q.qlo)), _mm512_set1_epi8(char(q.qhi)), gather, mask, mask == 0xFFFF,
               c.out_u8 + out_off, c.ld_out});
    return;
  }
  const __m512 lo = _mm512_set1_ps(c.lo), hi = _mm512_set1_ps(c.hi);
  float* out = c.out_f32 + out_off;
  if (c.mult) fn(StoreF32<true>{mult, bias, lo, hi, mask, out, c.ld_out});
  else fn(StoreF32<false>{mult, bias, lo, hi, mask, out, c.ld_out});
}

}  // namespace
}  // namespace mixq
