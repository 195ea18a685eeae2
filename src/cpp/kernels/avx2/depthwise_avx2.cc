// AVX2 + FMA depthwise convolution, NHWC, int8 and fp32: the scheme of the AVX-512 kernels
// (avx512/depthwise_avx512.cc) on 8-channel ymm vectors, for CPUs with AVX2 but not AVX-512 (AMD
// Zen 1-3, most Intel client cores).
//
// A task (image, band of output rows, group of 16-channel blocks: kernels/depthwise_tasks.h)
// converts each input row it needs once into a per-thread ring of fp32 rows laid out
// [8-channel slice][padded column][8], so the micro-kernels read contiguous 32-byte columns with no
// bounds checks and no masks: up to 8 (int8) or 6 (fp32) output pixels x 8 channels in ymm
// accumulators, each input column loaded once per kernel row and fed to every output that uses it
// (compile-time kernel size and stride for square 3x3, 5x5 and 7x7 kernels, a runtime-geometry
// kernel for the rest). The packed weights are the AVX-512 layout, [16-channel block][tap][16]:
// slice s reads half s % 2 of block s / 2. Only the loads of the input's and the stores of the
// output's last slice handle a channel tail.
//
// int8 is exact for the reason given in depthwise_avx512.cc: the rows hold x itself (padding holds
// zp), the accumulators start at -zp * sum(w), and every partial sum is an integer below 2^24 in
// magnitude for up to kDwMaxExactTaps taps (more go to the reference). The epilogue then performs
// the reference's float steps in the same order, so u8 codes and float outputs equal it bit for bit.
#include <immintrin.h>

#include <cstring>

#include "kernels/depthwise_tasks.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

constexpr int64_t kLanes = 8;  // channels per ymm: a slice
// Output pixels per micro-tile, every geometry, chosen by timing MobileNetV2's depthwise layers on
// Zen 4 (MIXQ_ISA=avx2): int8 8 (its u8 epilogue packs 4 pixels at a time: 6 was 1-3 % slower),
// fp32 6 (2-4 % faster than 8). 10 and 12 made GCC spill accumulators and were no faster.
template <bool kInt8>
constexpr int kTile = kInt8 ? 8 : 6;

// Keeps a value in a register as computed, so -ffp-contract cannot fuse a product into the add
// that follows it.
MIXQ_DW_INLINE __m256 in_register(__m256 v) {
  asm("" : "+x"(v));
  return v;
}

// ----------------------------------------------------------------------------------- epilogues
// They take a micro-tile's T accumulators (T output pixels of one slice) and compute, per channel,
// the reference's y = float(acc) * mult + bias with its two roundings (in_register on the product).

// Stores the real channels of one pixel: all 8, or the slice's tail.
struct SliceTail {
  int nc;        // real channels: 1..8
  __m256i mask;  // lanes [0, nc) set, for the fp32 masked store
};

template <bool kMult>
struct StoreF32 {
  __m256 mult, bias, lo, hi;
  SliceTail tail;
  float* out;  // pixel 0 of the row, at this slice's first channel
  int64_t ld;
  template <int T>
  MIXQ_DW_INLINE void store(int64_t ow, const __m256 (&acc)[T]) const {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      __m256 y = kMult ? in_register(_mm256_mul_ps(acc[t], mult)) : acc[t];
      y = _mm256_add_ps(y, bias);
      // NaN propagates, as in the reference: maxps and minps return their second operand then.
      y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
      float* p = out + (ow + t) * ld;
      if (tail.nc == kLanes) _mm256_storeu_ps(p, y);
      else _mm256_maskstore_ps(p, tail.mask, y);
    }
  }
};

// u8: code = clamp(nearbyint(clamp(y, lo, hi) / out_scale) + zp, 0, 255), computed as in the
// AVX-512 epilogue: clamp(nearbyint(y / out_scale) + zp, q(lo), q(hi)) (requantization is
// monotonic). Four pixels share one integer pipeline: cvtps2dq (nearbyint in the MXCSR mode,
// round-half-even by default, like the reference's nearbyint; the AVX-512 epilogue's explicit
// rounding would take a vroundps more per vector here, 3-5 % of the int8 time), saturating packs
// to int16 (+ zp, saturating) and to u8, the [q(lo), q(hi)] clamp on bytes, and a dword permute
// that puts pixel i's 8 bytes in qword i. v is capped at 2^16 first so a large positive value
// cannot convert to INT_MIN; values below -2^31 convert to INT_MIN and saturate to code 0 like any
// negative one. (A NaN y, possible only with a NaN mult or bias, gives q(lo).)
struct StoreU8 {
  __m256 mult, bias, inv, cap;
  __m256i zp16, qlo8, qhi8, gather;
  int nc;        // real channels of the slice: 1..8
  uint8_t* out;  // pixel 0 of the row, at this slice's first channel
  int64_t ld;

  MIXQ_DW_INLINE __m256i code32(__m256 acc) const {
    const __m256 y = _mm256_add_ps(in_register(_mm256_mul_ps(acc, mult)), bias);
    return _mm256_cvtps_epi32(_mm256_min_ps(cap, _mm256_mul_ps(y, inv)));
  }
  // Pixel ow + i from qword `half` of two pixels' codes.
  template <int half>
  MIXQ_DW_INLINE void put(int64_t ow, int i, __m128i two) const {
    uint8_t* p = out + (ow + i) * ld;
    // Through memcpy (one vpextrq / vmovq store): a double* store of the high half would be a
    // misaligned typed access (UBSan).
    const int64_t q = _mm_extract_epi64(two, half);
    std::memcpy(p, &q, size_t(nc == kLanes ? 8 : nc));
  }
  // Pixels [ow, ow + N) from the first N (<= 4) of acc.
  template <int N>
  MIXQ_DW_INLINE void store4(int64_t ow, const __m256* acc) const {
    __m256i r[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) r[i] = i < N ? code32(acc[i]) : _mm256_setzero_si256();
    const __m256i ab = _mm256_adds_epi16(_mm256_packs_epi32(r[0], r[1]), zp16);
    const __m256i cd = _mm256_adds_epi16(_mm256_packs_epi32(r[2], r[3]), zp16);
    __m256i u = _mm256_packus_epi16(ab, cd);  // dword k: channels 0-3 (k < 4) or 4-7 of pixel k % 4
    u = _mm256_min_epu8(qhi8, _mm256_max_epu8(qlo8, u));
    u = _mm256_permutevar8x32_epi32(u, gather);  // qword i: the 8 channels of pixel i
    const __m128i p01 = _mm256_castsi256_si128(u), p23 = _mm256_extracti128_si256(u, 1);
    put<0>(ow, 0, p01);
    if (N > 1) put<1>(ow, 1, p01);
    if (N > 2) put<0>(ow, 2, p23);
    if (N > 3) put<1>(ow, 3, p23);
  }
  template <int T>
  MIXQ_DW_INLINE void store(int64_t ow, const __m256 (&acc)[T]) const {
    if constexpr (T >= 4) {
#pragma GCC unroll 4
      for (int g = 0; g < T / 4; ++g) store4<4>(ow + 4 * g, acc + 4 * g);
      if constexpr (T % 4 != 0) store4<T % 4>(ow + T / 4 * 4, acc + T / 4 * 4);
    } else {
      store4<T>(ow, acc);
    }
  }
};

// The real channels of slice `slice` (global index): all 8 but in the last one.
MIXQ_DW_INLINE SliceTail slice_tail(const DwCall& c, int64_t slice) {
  const int nc = int(std::min<int64_t>(kLanes, c.s.C - slice * kLanes));
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return {nc, _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), lanes)};
}

// Calls fn(store) with the epilogue of slice `slice` for the output row starting at pixel out_pix
// (StoreU8, or StoreF32 with or without the per-channel multiplier).
template <typename Fn>
MIXQ_DW_INLINE void with_slice_store(const DwCall& c, const OutCodes& q, int64_t slice, int64_t out_pix, Fn fn) {
  const int64_t ch0 = slice * kLanes;
  const SliceTail tail = slice_tail(c, slice);
  // Channels past C read as 0 (masked loads): mult and bias are per-channel arrays of exactly C.
  const __m256 mult = c.mult ? _mm256_maskload_ps(c.mult + ch0, tail.mask) : _mm256_set1_ps(1.f);
  const __m256 bias = c.bias ? _mm256_maskload_ps(c.bias + ch0, tail.mask) : _mm256_setzero_ps();
  const int64_t out_off = out_pix * c.ld_out + ch0;
  if (c.out_u8) {
    const __m256i gather = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    fn(StoreU8{mult, bias, _mm256_set1_ps(q.inv), _mm256_set1_ps(65536.f), _mm256_set1_epi16(int16_t(c.out_zp)),
               _mm256_set1_epi8(char(q.qlo)), _mm256_set1_epi8(char(q.qhi)), gather, tail.nc, c.out_u8 + out_off,
               c.ld_out});
    return;
  }
  const __m256 lo = _mm256_set1_ps(c.lo), hi = _mm256_set1_ps(c.hi);
  float* out = c.out_f32 + out_off;
  if (c.mult) fn(StoreF32<true>{mult, bias, lo, hi, tail, out, c.ld_out});
  else fn(StoreF32<false>{mult, bias, lo, hi, tail, out, c.ld_out});
}

// ------------------------------------------------------------------------------- micro-kernels
// rows[kh]: the padded row of kernel row kh at column 0 of this slice; w: the slice's weights,
// tap t at w + t * kDwBlock; init: the accumulators' start value (int8: -zp * sum of the weights).
// Compile-time T (pixels), KH, KW and stride SW (dilation 1 along W).
template <int T, int KH, int KW, int SW, typename Store>
MIXQ_DW_INLINE void tile_fixed(const float* const* rows, const float* w, __m256 init, int64_t ow, const Store& st) {
  constexpr int NC = (T - 1) * SW + KW;  // input columns the tile reads per kernel row
  __m256 acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = init;
#pragma GCC unroll 7
  for (int kh = 0; kh < KH; ++kh) {
    const float* r = rows[kh] + ow * SW * kLanes;
    __m256 wv[KW];
#pragma GCC unroll 7
    for (int kw = 0; kw < KW; ++kw) wv[kw] = _mm256_load_ps(w + (kh * KW + kw) * kDwBlock);
#pragma GCC unroll 64
    for (int c = 0; c < NC; ++c) {
      const __m256 x = _mm256_load_ps(r + c * kLanes);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const int kw = c - t * SW;
        if (kw >= 0 && kw < KW) acc[t] = _mm256_fmadd_ps(x, wv[kw], acc[t]);
      }
    }
  }
  st.template store<T>(ow, acc);
}

// Any geometry (runtime kernel size, stride, dilation).
template <int T, typename Store>
MIXQ_DW_INLINE void tile_generic(const float* const* rows, int64_t KH, int64_t KW, int64_t SW, int64_t DW,
                                 const float* w, __m256 init, int64_t ow, const Store& st) {
  __m256 acc[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = init;
  const int64_t step = SW * kLanes;
  for (int64_t kh = 0; kh < KH; ++kh) {
    for (int64_t kw = 0; kw < KW; ++kw) {
      const __m256 wv = _mm256_load_ps(w + (kh * KW + kw) * kDwBlock);
      const float* p = rows[kh] + (ow * SW + kw * DW) * kLanes;
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[t] = _mm256_fmadd_ps(_mm256_load_ps(p + t * step), wv, acc[t]);
    }
  }
  st.template store<T>(ow, acc);
}

// One output row of one slice: tiles of T pixels, then 4, 2, 1 for the rest. The store is copied
// into a local so its constants stay in registers (u8 stores may alias any memory).
template <int T, int K, int SW, typename Store>
void row_fixed(const float* const* rows, const float* w, __m256 init, int64_t OW, const Store& store) {
  const Store st = store;
  for_each_tile<T>(OW, [&](auto n, int64_t ow) { tile_fixed<n.value, K, K, SW>(rows, w, init, ow, st); });
}

template <int T, typename Store>
void row_generic(const float* const* rows, int64_t KH, int64_t KW, int64_t SW, int64_t DW, const float* w,
                 __m256 init, int64_t OW, const Store& store) {
  const Store st = store;
  for_each_tile<T>(OW, [&](auto n, int64_t ow) { tile_generic<n.value>(rows, KH, KW, SW, DW, w, init, ow, st); });
}

// Square 3x3, 5x5, 7x7 kernels with stride 1 or 2 along W and no dilation along W get the
// compile-time micro-kernels; everything else the generic one.
template <int T, typename Store>
void compute_row(const DwShape& s, const float* const* rows, const float* w, __m256 init, int64_t OW,
                 const Store& st) {
  if (s.KH == s.KW && s.DW == 1 && (s.SW == 1 || s.SW == 2)) {
    const bool s1 = s.SW == 1;
    switch (s.KW) {
      case 3: return s1 ? row_fixed<T, 3, 1>(rows, w, init, OW, st) : row_fixed<T, 3, 2>(rows, w, init, OW, st);
      case 5: return s1 ? row_fixed<T, 5, 1>(rows, w, init, OW, st) : row_fixed<T, 5, 2>(rows, w, init, OW, st);
      case 7: return s1 ? row_fixed<T, 7, 1>(rows, w, init, OW, st) : row_fixed<T, 7, 2>(rows, w, init, OW, st);
      default: break;
    }
  }
  row_generic<T>(rows, s.KH, s.KW, s.SW, s.DW, w, init, OW, st);
}

// -------------------------------------------------------------------------------------- tasks
// One slice of one input pixel as fp32: all 8 channels, or the first nc (the rest 0) without
// reading past them (they may be the end of the tensor).
MIXQ_DW_INLINE __m256 load_slice(const uint8_t* p, const SliceTail& tail) {
  __m128i bytes;
  if (tail.nc == kLanes) {
    bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  } else {
    int64_t q = 0;
    std::memcpy(&q, p, size_t(tail.nc));
    bytes = _mm_cvtsi64_si128(q);
  }
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}
MIXQ_DW_INLINE __m256 load_slice(const float* p, const SliceTail& tail) {
  return tail.nc == kLanes ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail.mask);
}

// Converts input row (n, ih), slices [sl0, sl0 + nsl), into a ring slot [nsl][wb][8]: columns
// [j0, j1) of the slot hold input columns [j0 - PW, j1 - PW); channels past C become 0.
// in: the input tensor (u8 or fp32), held in a local: the vector stores may alias the call's fields.
template <typename In>
void convert_row(const DwCall& c, const In* in, int64_t n, int64_t ih, int64_t sl0, int64_t nsl,
                 const SliceTail& last, int64_t wb, int64_t j0, int64_t j1, float* slot) {
  const DwShape& s = c.s;
  const SliceTail full{int(kLanes), _mm256_set1_epi32(-1)};
  const int64_t ld_in = c.ld_in, sub = wb * kLanes;
  const In* src = in + ((n * s.H + ih) * s.W + (j0 - s.PW)) * ld_in + sl0 * kLanes;
  for (int64_t j = j0; j < j1; ++j, src += ld_in) {
    float* dst = slot + j * kLanes;
    for (int64_t k = 0; k + 1 < nsl; ++k) _mm256_store_ps(dst + k * sub, load_slice(src + k * kLanes, full));
    _mm256_store_ps(dst + (nsl - 1) * sub, load_slice(src + (nsl - 1) * kLanes, last));
  }
}

thread_local AlignedBuffer t_inits;  // per slice of a task: its accumulators' start value

template <bool kInt8>
void run_task(const DwCall& c, const Plan& p, int64_t task) {
  const DwShape& s = c.s;
  const int64_t taps = c.w->taps();
  const auto [n, cb0, nbk, oh0, oh1] = task_span(c, p, task);
  // The task's slices: two per 16-channel block, but none past the last channel.
  const int64_t sl0 = cb0 * kDwBlock / kLanes;
  const int64_t nsl = (std::min(s.C, (cb0 + nbk) * kDwBlock) - sl0 * kLanes + kLanes - 1) / kLanes;
  const SliceTail last = slice_tail(c, sl0 + nsl - 1);
  const auto weights = [&](int64_t slice) { return c.w->block(slice / 2) + (slice % 2) * kLanes; };
  // Start values, once per task rather than per output row (small rows pay for every set-up):
  // int8 -zp * sum over taps of the weights (exact: an integer below 2^24), fp32 0.
  t_inits.resize(size_t(nsl) * sizeof(__m256));
  __m256* inits = t_inits.as<__m256>();
  for (int64_t k = 0; k < nsl; ++k) {
    __m256 wsum = _mm256_setzero_ps();
    if (kInt8)
      for (int64_t t = 0; t < taps; ++t) wsum = _mm256_add_ps(wsum, _mm256_load_ps(weights(sl0 + k) + t * kDwBlock));
    inits[k] = kInt8 ? _mm256_mul_ps(wsum, _mm256_set1_ps(-float(c.in_zp))) : _mm256_setzero_ps();
  }
  // What padding holds: int8 rows store x itself, so padding is x = zp ((zp - zp) * w = 0).
  RowRing ring(s, p, nsl, kLanes, kInt8 ? float(c.in_zp) : 0.f);
  const auto convert = [&](int64_t ih, float* slot) {
    if constexpr (kInt8) convert_row(c, c.in_u8, n, ih, sl0, nsl, last, p.wb, ring.j0(), ring.j1(), slot);
    else convert_row(c, c.in_f32, n, ih, sl0, nsl, last, p.wb, ring.j0(), ring.j1(), slot);
  };
  const OutCodes q = out_codes(c);

  for (int64_t oh = oh0; oh < oh1; ++oh) {
    ring.select(oh, convert);
    const int64_t out_pix = (n * c.OH + oh) * c.OW;
    for (int64_t k = 0; k < nsl; ++k) {
      const float* const* rows = ring.rows(k);
      const float* w = weights(sl0 + k);
      const __m256 init = inits[k];
      with_slice_store(c, q, sl0 + k, out_pix,
                       [&](const auto& st) { compute_row<kTile<kInt8>>(s, rows, w, init, c.OW, st); });
    }
  }
}

template <bool kInt8>
void dwconv_avx2(const DwCall& c) {
  const Plan p = make_plan(c, (c.s.KH - 1) * c.s.DH + 2);  // the ring and a pad row
  for_each_task(c, p, [&](int64_t task) { run_task<kInt8>(c, p, task); });
}

}  // namespace

void u8s8_dwconv_c8x8__avx2(const DwCall& c) { dwconv_avx2<true>(c); }
void f32_dwconv_c8x6__avx2(const DwCall& c) { dwconv_avx2<false>(c); }

}  // namespace mixq
