// Shared by the AVX-512 depthwise kernels (depthwise_avx512.cc: fp32 accumulation, any geometry;
// depthwise_avx512vnni.cc: int8 3x3 on vpdpbusd): the epilogues of a micro-tile, the split into
// tasks, and the per-block epilogue set-up. Everything has internal linkage: each including
// translation unit is compiled with its own ISA flags and must get its own copy.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "ops/depthwise_impl.h"

#define MIXQ_DW_INLINE inline __attribute__((always_inline))

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

// ------------------------------------------------------------------------------------ planning
// A task is (image, band of output rows, group of channel blocks). It walks its output rows in
// order, staging input rows in per-thread slots of [block][padded column][64 bytes] (each kernel
// has its own layout), and computes the blocks of each output row one by one.
struct Plan {
  int64_t wb;            // padded row width in columns
  int64_t ring;          // the input rows one output row spans
  int64_t group_blocks;  // channel blocks per task
  int64_t n_groups;
  int64_t band;          // output rows per task
  int64_t n_bands;
  int64_t tasks() const { return n_groups * n_bands; }
};

// slots: the row slots a task keeps (each group_blocks x wb x 64 bytes).
Plan make_plan(const DwCall& c, int64_t slots) {
  const DwShape& s = c.s;
  const int64_t NB = c.w->c_blocks();
  Plan p;
  p.wb = (c.OW - 1) * s.SW + (s.KW - 1) * s.DW + 1;
  p.ring = (s.KH - 1) * s.DH + 1;
  p.group_blocks = NB;
  p.band = c.OH;
  // A task's row slots stay within a quarter of L2.
  const int64_t budget = std::max<int64_t>(cpu_features().l2_bytes / 4, 128 << 10);
  while (p.group_blocks > 1 && slots * p.group_blocks * p.wb * kDwBlock * 4 > budget)
    p.group_blocks = (p.group_blocks + 1) / 2;
  // Enough tasks for an even finish: split channels first (free), then rows (a band boundary
  // converts the overlapping input rows twice). Groups keep >= 4 blocks: 64 u8 channels = a line.
  const int threads = get_num_threads();
  const int64_t target = threads > 1 ? 4 * int64_t(threads) : 1;
  auto count = [&] { return s.N * ((NB + p.group_blocks - 1) / p.group_blocks) * ((c.OH + p.band - 1) / p.band); };
  while (count() < target) {
    if (p.group_blocks >= 8) p.group_blocks = (p.group_blocks + 1) / 2;
    else if (p.band > 1) p.band = (p.band + 1) / 2;
    else break;
  }
  p.n_groups = (NB + p.group_blocks - 1) / p.group_blocks;
  p.n_bands = (c.OH + p.band - 1) / p.band;
  return p;
}

// The image, the channel blocks [cb0, cb0 + nbk) and the output rows [oh0, oh1) of a task.
struct TaskSpan {
  int64_t n, cb0, nbk, oh0, oh1;
};

MIXQ_DW_INLINE TaskSpan task_span(const DwCall& c, const Plan& p, int64_t task) {
  const int64_t g = task % p.n_groups, b = (task / p.n_groups) % p.n_bands;
  const int64_t cb0 = g * p.group_blocks, oh0 = b * p.band;
  return {task / (p.n_groups * p.n_bands), cb0, std::min(p.group_blocks, c.w->c_blocks() - cb0), oh0,
          std::min(c.OH, oh0 + p.band)};
}

// The real channels of block cb: all 16 but in the last block.
MIXQ_DW_INLINE __mmask16 block_mask(const DwCall& c, int64_t cb) {
  const int64_t NB = c.w->c_blocks(), tail = c.s.C - (NB - 1) * kDwBlock;  // tail: 1..16
  return cb == NB - 1 ? __mmask16((1u << tail) - 1u) : __mmask16(0xFFFF);
}

// Covers output pixels [0, OW) of a row with micro-tiles of T pixels, then one each of 8 (when
// T > 8), 4, 2 and 1 as the rest needs: calls tile(std::integral_constant<int, n>{}, ow) for a
// tile of n pixels at ow.
template <int T, typename Tile>
MIXQ_DW_INLINE void for_each_tile(int64_t OW, Tile tile) {
  int64_t ow = 0;
  for (; ow + T <= OW; ow += T) tile(std::integral_constant<int, T>{}, ow);
  if constexpr (T > 8)
    if (OW - ow >= 8) tile(std::integral_constant<int, 8>{}, ow), ow += 8;
  if (OW - ow >= 4) tile(std::integral_constant<int, 4>{}, ow), ow += 4;
  if (OW - ow >= 2) tile(std::integral_constant<int, 2>{}, ow), ow += 2;
  if (OW - ow >= 1) tile(std::integral_constant<int, 1>{}, ow);
}

// Runs fn(task) for every task of the call. Tasks are handed out from both ends (0, last, 1,
// last-1, ...): with two threads each works through one contiguous half of the tensor, so
// neighbouring tasks (which share cache lines of the output at group boundaries) rarely run at the
// same time, and each core keeps its data.
template <typename Fn>
void for_each_task(const DwCall& c, const Plan& p, Fn fn) {
  const int64_t n_tasks = c.s.N * p.tasks();
  parallel_for(n_tasks, [&](int64_t t, int) { fn(t % 2 == 0 ? t / 2 : n_tasks - 1 - t / 2); });
}

// -------------------------------------------------------------------------- per-block epilogue
// u8 output: requantization constants of a call; the codes of lo and hi bound the one clamp.
struct OutCodes {
  float inv;
  int qlo, qhi;
};

OutCodes out_codes(const DwCall& c) {
  const float inv = 1.f / c.out_scale, zpf = float(c.out_zp);
  auto code = [&](float y) {
    const float v = std::nearbyint(y * inv) + zpf;
    return v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
  };
  return {inv, int(code(c.lo)), int(code(c.hi))};
}

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
