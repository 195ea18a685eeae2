// int8 3x3 depthwise convolution on vpdpbusd (AVX-512 VNNI), NHWC, stride 1 or 2 along W.
//
// vpdpbusd adds four u8 x s8 products into each int32 lane. Here a lane is a channel, and its four
// bytes are four consecutive input rows of one input column. A task builds a "column-quad" row per
// 16-channel block,
//   V[j] = for each channel c: (x[ih][j][c], x[ih+1][j][c], x[ih+2][j][c], x[ih+3][j][c]),
// over the padded columns j, and an output pixel is then three vpdpbusd, one per kernel column kw:
// against (w[0][kw][c], w[1][kw][c], w[2][kw][c], 0) for output row oh (ih = oh * SH - PH), and at
// stride 1 against the same bytes one row later, (0, w[0][kw][c], w[1][kw][c], w[2][kw][c]), for
// row oh + 1. So one V serves two output rows at stride 1: the interleave that builds it is about
// as much work as the row's products. Three instructions per pixel where the fp32 path of
// depthwise_avx512.cc needs nine FMAs and a u8 -> fp32 conversion of every input row. Each V
// column is loaded once per micro-tile and fed to every output pixel that uses it. At stride 2 in
// both directions the bytes are two rows by two columns instead (row pairs, build4_pairs), four
// vpdpbusd per pixel, and each pair of input rows is interleaved once.
//
// As in depthwise_avx512.cc, padding holds x = zp and the accumulators start at -zp * sum(w), so
// the result is sum (x - zp) * w. The int32 sums are exact, and so is their conversion to float
// (|acc| <= 9 * 255 * 128 < 2^24): results equal the fp32-accumulating path and the reference bit
// for bit, through the same epilogues (depthwise_avx512_common.h).
//
// GCC 12 reports the _mm512_undefined_* operand inside explicit-rounding intrinsics as
// uninitialized; it is a don't-care operand by design.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <utility>

#include "kernels/avx512/depthwise_avx512_common.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

constexpr int64_t kQuadBytes = 64;  // one V column of a block: 16 channels x 4 bytes

// ------------------------------------------------------------------------------- building V
// The 16 channels of one input column (16 bytes), or the pad value outside the image.
struct RowSource {
  const uint8_t* row;  // pixel 0 of input row ih at the block's first channel; nullptr: a pad row
  int64_t W, ld;
  __mmask16 mask;      // the block's real channels (the rest load as 0: their weights are 0)
  __m128i pad;

  MIXQ_DW_INLINE __m128i column(int64_t iw) const {
    return row && iw >= 0 && iw < W ? _mm_maskz_loadu_epi8(mask, row + iw * ld) : pad;
  }
  // Columns iw, iw + S, iw + 2S, iw + 3S (S = 1 or 2), one per 128-bit lane.
  template <int S = 1>
  MIXQ_DW_INLINE __m512i columns4(int64_t iw) const {
    if (row && iw >= 0 && iw + 3 * S < W && mask == 0xFFFF) {  // inside the image: plain loads
      const uint8_t* p = row + iw * ld;
      __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + S * ld)), 1);
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * S * ld)), 2);
      return _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 3 * S * ld)), 3);
    }
    __m512i v = _mm512_castsi128_si512(column(iw));
    v = _mm512_inserti32x4(v, column(iw + S), 1);
    v = _mm512_inserti32x4(v, column(iw + 2 * S), 2);
    return _mm512_inserti32x4(v, column(iw + 3 * S), 3);
  }
};

// A 4 x 4 transpose of 128-bit lanes: lane L of dst[i] is lane i of b[L].
MIXQ_DW_INLINE void transpose_lanes(const __m512i (&b)[4], __m512i (&dst)[4]) {
  const __m512i t0 = _mm512_shuffle_i32x4(b[0], b[1], 0x44), t1 = _mm512_shuffle_i32x4(b[2], b[3], 0x44);
  const __m512i t2 = _mm512_shuffle_i32x4(b[0], b[1], 0xEE), t3 = _mm512_shuffle_i32x4(b[2], b[3], 0xEE);
  dst[0] = _mm512_shuffle_i32x4(t0, t1, 0x88), dst[1] = _mm512_shuffle_i32x4(t0, t1, 0xDD);
  dst[2] = _mm512_shuffle_i32x4(t2, t3, 0x88), dst[3] = _mm512_shuffle_i32x4(t2, t3, 0xDD);
}

// The quads of bytes (a, b, c, d) of each channel: per 128-bit lane, q[0] holds those of its
// channels 0-3, q[1] 4-7, q[2] 8-11 and q[3] 12-15 (byte and word interleaves).
MIXQ_DW_INLINE void interleave_quads(__m512i a, __m512i b, __m512i c, __m512i d, __m512i (&q)[4]) {
  const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
  const __m512i cd_lo = _mm512_unpacklo_epi8(c, d), cd_hi = _mm512_unpackhi_epi8(c, d);
  q[0] = _mm512_unpacklo_epi16(ab_lo, cd_lo), q[1] = _mm512_unpackhi_epi16(ab_lo, cd_lo);
  q[2] = _mm512_unpacklo_epi16(ab_hi, cd_hi), q[3] = _mm512_unpackhi_epi16(ab_hi, cd_hi);
}

// Quads whose 128-bit lanes are four columns -> four columns of 64 bytes each.
MIXQ_DW_INLINE void store_columns4(const __m512i (&q)[4], __m512i* dst) {
  __m512i col[4];
  transpose_lanes(q, col);
  for (int i = 0; i < 4; ++i) _mm512_store_si512(dst + i, col[i]);
}

// V[j .. j+3] of one block from the four input rows' columns iw = j - PW .. j - PW + 3. Byte
// interleaves give, per 128-bit lane (= column), the quads of channels 0-3, 4-7, 8-11 and 12-15
// in four registers; a 4 x 4 transpose of 128-bit lanes makes each column's 64 bytes contiguous.
MIXQ_DW_INLINE void build4(const RowSource (&src)[4], int64_t iw, __m512i* dst) {
  __m512i q[4];
  interleave_quads(src[0].columns4(iw), src[1].columns4(iw), src[2].columns4(iw), src[3].columns4(iw), q);
  store_columns4(q, dst);
}

// Stride 2 in both directions: V of a row pair. Column j of it holds, per channel, the pair's
// two rows at input columns 2j - PW and 2j + 1 - PW: (ra[2j-PW], rb[2j-PW], ra[2j+1-PW],
// rb[2j+1-PW]). Output pixel ow reads columns ow (kernel columns 0 and 1) and ow + 1 (its first
// input column is kernel column 2), so a column serves two pixels, and the pair of input rows
// 2oh + 2 - PH, 2oh + 3 - PH serves output rows oh (kernel row 2) and oh + 1 (kernel rows 0 and 1):
// each V is built once, where rows of column quads were built from every second column, one per
// output row. V[j .. j+3] from src[0], src[1] (the pair's rows).
MIXQ_DW_INLINE void build4_pairs(const RowSource (&src)[2], int64_t iw, __m512i* dst) {
  __m512i q[4];
  interleave_quads(src[0].columns4<2>(iw), src[1].columns4<2>(iw), src[0].columns4<2>(iw + 1),
                   src[1].columns4<2>(iw + 1), q);
  store_columns4(q, dst);
}

// ------------------------------------------------------------------------------ micro-kernels
// v: V at the tile's first input column; w[kw]: the block's quads of kernel column kw.
template <int T, int SW, typename Store>
MIXQ_DW_INLINE void tile(const __m512i* v, const __m512i (&w)[3], __m512i init, int64_t ow, const Store& st) {
  constexpr int NC = (T - 1) * SW + 3;  // V columns the tile reads
  __m512i acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = init;
#pragma GCC unroll 64
  for (int c = 0; c < NC; ++c) {
    const __m512i x = in_register(_mm512_load_si512(v + c));
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const int kw = c - t * SW;
      if (kw >= 0 && kw < 3) acc[t] = _mm512_dpbusd_epi32(acc[t], x, w[kw]);
    }
  }
  __m512 y[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) y[t] = _mm512_cvtepi32_ps(acc[t]);
  st.template store<T>(ow, y);
}

// One output row of one block: tiles of 16 pixels (stride 1; 8 for stride 2), then 8, 4, 2, 1.
template <int SW, typename Store>
void row(const __m512i* v, const __m512i (&w)[3], __m512i init, int64_t OW, const Store& store) {
  const Store st = store;  // a local copy: its constants stay in registers
  for_each_tile<SW == 1 ? 16 : 8>(OW, [&](auto n, int64_t ow) { tile<n.value, SW>(v + ow * SW, w, init, ow, st); });
}

// A tile of T output pixels at stride 2 from the pair rows va (kernel rows 0, 1) and vb (kernel row
// 2), both at the tile's first pixel: w[0], w[1] against va's columns ow and ow + 1, w[2], w[3]
// against vb's (pair_weights).
template <int T, typename Store>
MIXQ_DW_INLINE void tile_pairs(const __m512i* va, const __m512i* vb, const __m512i (&w)[4], __m512i init, int64_t ow,
                               const Store& st) {
  __m512i acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = init;
#pragma GCC unroll 17
  for (int c = 0; c <= T; ++c) {
    const __m512i xa = in_register(_mm512_load_si512(va + c)), xb = in_register(_mm512_load_si512(vb + c));
    if (c < T) acc[c] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[c], xa, w[0]), xb, w[2]);
    if (c > 0) acc[c - 1] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[c - 1], xa, w[1]), xb, w[3]);
  }
  __m512 y[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) y[t] = _mm512_cvtepi32_ps(acc[t]);
  st.template store<T>(ow, y);
}

// The four weight vectors of a block for pair rows, from its quads q[kw] = (w[0][kw], w[1][kw],
// w[2][kw], 0) per channel: (w00, w10, w01, w11), (w02, w12, 0, 0), (w20, 0, w21, 0), (w22, 0, 0, 0).
MIXQ_DW_INLINE void pair_weights(const __m512i (&q)[3], __m512i (&w)[4]) {
  const __m512i lo16 = _mm512_set1_epi32(0xFFFF), lo8 = _mm512_set1_epi32(0xFF);
  w[0] = _mm512_or_si512(_mm512_and_si512(q[0], lo16), _mm512_slli_epi32(q[1], 16));
  w[1] = _mm512_and_si512(q[2], lo16);
  w[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(q[0], 16), lo8),
                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(q[1], 16), lo8), 16));
  w[3] = _mm512_and_si512(_mm512_srli_epi32(q[2], 16), lo8);
}

// ------------------------------------------------------------------------ 64-channel super-blocks
// With u8 outputs (at stride 1, and 2 both ways), four whole blocks in a row (64 channels) go
// together. Then an input row's column is one 64-byte load, and the byte interleaves alone (no
// 128-bit lane transpose) give a V column as four registers: register i holds, in lane L, the
// quads of channels 16L + 4i .. 16L + 4i + 3. The weights, the accumulators' start and the
// epilogue constants take the same channel order, and the saturating packs of a pixel's four
// accumulators put its 64 codes back in channel order: one 64-byte store per pixel instead of
// four 16-byte ones and a permute. The codes are StoreU8's, operation for operation.
constexpr int kSuper = 4;  // blocks per super-block

// V[j] (4 registers each) for j in [0, cols): byte r of channel c's quad is input row[r] (nullptr:
// a pad row) at column j * S + off[r], the pad value outside the image. Stride 1: four rows at
// off = -PW; stride 2 both ways (pair rows, as build4_pairs): rows (a, b, a, b) at columns 2j - PW
// and 2j + 1 - PW.
template <int S>
MIXQ_DW_INLINE void build_super(const uint8_t* const (&row)[4], const int64_t (&off)[4], int64_t W, int64_t ld,
                                int64_t cols, __m512i pad, __m512i* dst) {
  for (int64_t j = 0; j < cols; ++j) {
    __m512i x[4];
    for (int r = 0; r < 4; ++r) {
      const int64_t iw = j * S + off[r];
      x[r] = row[r] && iw >= 0 && iw < W ? _mm512_loadu_si512(row[r] + iw * ld) : pad;
    }
    __m512i q[4];
    interleave_quads(x[0], x[1], x[2], x[3], q);
    for (int i = 0; i < 4; ++i) _mm512_store_si512(dst + 4 * j + i, q[i]);
  }
}

// A super-block's constants in super-block order: weight quads per kernel column, the
// accumulators' start, and the u8 epilogue's multiplier and bias (StoreU8's).
struct SuperBlock {
  __m512i w[3][4], init[4];
  __m512 mult[4], bias[4];
};

MIXQ_DW_INLINE void load_super(const DwCall& c, int64_t cb, __m512i zp, SuperBlock& sb) {
  const __m512i* wq = c.w->quads.as<__m512i>() + cb * 3;
  for (int kw = 0; kw < 3; ++kw) {
    const __m512i b[4] = {wq[kw], wq[3 + kw], wq[6 + kw], wq[9 + kw]};
    transpose_lanes(b, sb.w[kw]);  // lane L of register i: block L's lane i
  }
  for (int i = 0; i < 4; ++i) {
    __m512i zw = _mm512_setzero_si512();
    for (int kw = 0; kw < 3; ++kw) zw = _mm512_dpbusd_epi32(zw, zp, sb.w[kw][i]);
    sb.init[i] = _mm512_sub_epi32(_mm512_setzero_si512(), zw);
  }
  const auto per_channel = [&](const float* v, float none, __m512(&dst)[4]) {
    __m512i b[4], o[4];
    for (int L = 0; L < 4; ++L)
      b[L] = v ? _mm512_loadu_si512(v + (cb + L) * kDwBlock) : _mm512_castps_si512(_mm512_set1_ps(none));
    transpose_lanes(b, o);
    for (int i = 0; i < 4; ++i) dst[i] = _mm512_castsi512_ps(o[i]);
  };
  per_channel(c.mult, 1.f, sb.mult);
  per_channel(c.bias, 0.f, sb.bias);
}

// The u8 epilogue of a super-block: StoreU8's operations, on a pixel's four accumulators.
struct SuperStoreU8 {
  const SuperBlock* sb;
  __m512 inv, cap;
  __m512i zp16, qlo8, qhi8;
  uint8_t* out;  // pixel 0 of the row, at the super-block's first channel
  int64_t ld;

  // Code of group i's accumulator before the zero point (int32 lanes, saturated later). Plain
  // (DwCall::v_bounded: no y / out_scale reaches 2^31) converts without StoreU8's cap.
  template <bool Plain>
  MIXQ_DW_INLINE __m512i code32(__m512i acc, int i) const {
    const __m512 y =
        _mm512_add_round_ps(_mm512_mul_round_ps(_mm512_cvtepi32_ps(acc), sb->mult[i], kRound), sb->bias[i], kRound);
    __m512 v = _mm512_mul_ps(y, inv);
    if constexpr (!Plain) v = _mm512_min_ps(cap, v);
    return _mm512_cvt_roundps_epi32(v, kRound);
  }
  // The int16 codes of groups (2k, 2k + 1) from their code32.
  MIXQ_DW_INLINE __m512i codes16(__m512i a, __m512i b) const {
    return _mm512_adds_epi16(_mm512_packs_epi32(a, b), zp16);
  }
  // Pixel ow's 64 codes from codes16 of groups (0, 1) and (2, 3). Plain (also the clamp codes
  // are 0 and 255): the saturating pack is the whole clamp.
  template <bool Plain>
  MIXQ_DW_INLINE void put(int64_t ow, __m512i lo, __m512i hi) const {
    __m512i u = _mm512_packus_epi16(lo, hi);
    if constexpr (!Plain) u = _mm512_min_epu8(qhi8, _mm512_max_epu8(qlo8, u));
    _mm512_storeu_si512(out + ow * ld, u);
  }
};

// T output pixels of a super-block, one group at a time (so only T accumulators are live):
// products(i, acc) adds group i's products to acc[T], which start at the zero-point term.
template <int T, bool Plain, typename Products>
MIXQ_DW_INLINE void super_tile(const SuperBlock& sb, const SuperStoreU8& st, int64_t ow, Products products) {
  __m512i h[2][T];
#pragma GCC unroll 2
  for (int half = 0; half < 2; ++half) {
    __m512i r[2][T];
#pragma GCC unroll 2
    for (int k = 0; k < 2; ++k) {
      const int i = 2 * half + k;
      __m512i acc[T];
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[t] = sb.init[i];
      products(i, acc);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) r[k][t] = st.code32<Plain>(acc[t], i);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) h[half][t] = st.codes16(r[0][t], r[1][t]);
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) st.put<Plain>(ow + t, h[0][t], h[1][t]);
}

// T output pixels at stride 1 from V at the tile's first column, with the row's weights w.
template <int T, bool Plain>
MIXQ_DW_INLINE void tile_super(const __m512i* v, const __m512i (&w)[3][4], const SuperBlock& sb, int64_t ow,
                               const SuperStoreU8& st) {
  super_tile<T, Plain>(sb, st, ow, [&](int i, __m512i(&acc)[T]) {
#pragma GCC unroll 16
    for (int col = 0; col < T + 2; ++col) {
      const __m512i x = in_register(_mm512_load_si512(v + 4 * col + i));
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int kw = col - t;
        if (kw >= 0 && kw < 3) acc[t] = _mm512_dpbusd_epi32(acc[t], x, w[kw][i]);
      }
    }
  });
}

// One output row of a super-block.
template <bool Plain>
MIXQ_DW_INLINE void row_super(const __m512i* v, const __m512i (&w)[3][4], const SuperBlock& sb, int64_t OW,
                              const SuperStoreU8& st) {
  for_each_tile<4>(OW, [&](auto n, int64_t ow) { tile_super<n.value, Plain>(v + 4 * ow, w, sb, ow, st); });
}

// T output pixels of a super-block at stride 2 from pair rows va and vb (tile_pairs' scheme), with
// w[j][i] = pair_weights of group i.
template <int T, bool Plain>
MIXQ_DW_INLINE void tile_pairs_super(const __m512i* va, const __m512i* vb, const __m512i (&w)[4][4],
                                     const SuperBlock& sb, int64_t ow, const SuperStoreU8& st) {
  super_tile<T, Plain>(sb, st, ow, [&](int i, __m512i(&acc)[T]) {
#pragma GCC unroll 16
    for (int col = 0; col <= T; ++col) {
      const __m512i xa = in_register(_mm512_load_si512(va + 4 * col + i));
      const __m512i xb = in_register(_mm512_load_si512(vb + 4 * col + i));
      if (col < T) acc[col] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[col], xa, w[0][i]), xb, w[2][i]);
      if (col > 0) acc[col - 1] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[col - 1], xa, w[1][i]), xb, w[3][i]);
    }
  });
}

// ---------------------------------------------------------------------------------------- tasks
thread_local AlignedBuffer t_quads;  // V of every block of the task's group: [block][column][64]
thread_local AlignedBuffer t_supers;  // the task's SuperBlocks

// Block cb's weight quads, (w[0][kw], w[1][kw], w[2][kw], 0) per channel for kw = 0, 1, 2.
MIXQ_DW_INLINE void load_quads(const DwCall& c, int64_t cb, __m512i (&w)[3]) {
  const __m512i* wq = c.w->quads.as<__m512i>() + cb * 3;
  for (int kw = 0; kw < 3; ++kw) w[kw] = _mm512_load_si512(wq + kw);
}

// The accumulators' start, -zp * the sum of the block's weights: vpdpbusd against zp in every byte
// sums zp * w per lane.
MIXQ_DW_INLINE __m512i zero_point_init(__m512i zp, const __m512i (&w)[3]) {
  __m512i zw = _mm512_setzero_si512();
  for (int kw = 0; kw < 3; ++kw) zw = _mm512_dpbusd_epi32(zw, zp, w[kw]);
  return _mm512_sub_epi32(_mm512_setzero_si512(), zw);
}

// The RowSource of input row ih (a pad row outside the image) of image n at block cb.
MIXQ_DW_INLINE RowSource row_source(const DwCall& c, int64_t n, int64_t ih, int64_t cb, __m128i pad) {
  const DwShape& s = c.s;
  const bool inside = ih >= 0 && ih < s.H;
  return {inside ? c.in_u8 + (n * s.H + ih) * s.W * c.ld_in + cb * kDwBlock : nullptr, s.W, c.ld_in, block_mask(c, cb),
          pad};
}

// Input row ih of image n at block cb's first channel; nullptr outside the image (a pad row).
MIXQ_DW_INLINE const uint8_t* input_row(const DwCall& c, int64_t n, int64_t ih, int64_t cb) {
  return ih >= 0 && ih < c.s.H ? c.in_u8 + (n * c.s.H + ih) * c.s.W * c.ld_in + cb * kDwBlock : nullptr;
}

// A task's super-blocks: its first blocks in fours, as long as all four are whole (u8 outputs
// only; nbk = 0 for none). The rest of its blocks go one by one.
struct Supers {
  int64_t count;
  const SuperBlock* blocks;
  SuperStoreU8 store;
  bool plain;  // the epilogue needs no cap (DwCall::v_bounded) and no clamp (codes 0 and 255)
  // The epilogue of super-block k4 (at block cb) for the output row that starts at pixel out_pix.
  MIXQ_DW_INLINE SuperStoreU8 row_store(const DwCall& c, int64_t k4, int64_t cb, int64_t out_pix) const {
    SuperStoreU8 st = store;
    st.sb = blocks + k4;
    st.out = c.out_u8 + out_pix * c.ld_out + cb * kDwBlock;
    return st;
  }
};

Supers task_supers(const DwCall& c, int64_t cb0, int64_t nbk, __m512i zp, const OutCodes& q) {
  const int64_t whole = std::min(nbk, c.s.C / kDwBlock - cb0);
  const int64_t count = c.out_u8 ? std::max<int64_t>(whole, 0) / kSuper : 0;
  t_supers.resize(size_t(count) * sizeof(SuperBlock));
  SuperBlock* blocks = t_supers.as<SuperBlock>();
  for (int64_t k4 = 0; k4 < count; ++k4) load_super(c, cb0 + kSuper * k4, zp, blocks[k4]);
  return {count, blocks,
          {nullptr, _mm512_set1_ps(q.inv), _mm512_set1_ps(65536.f), _mm512_set1_epi16(int16_t(c.out_zp)),
           _mm512_set1_epi8(char(q.qlo)), _mm512_set1_epi8(char(q.qhi)), nullptr, c.ld_out},
          c.v_bounded && q.qlo == 0 && q.qhi == 255};
}

void run_task(const DwCall& c, const Plan& p, int64_t task) {
  const DwShape& s = c.s;
  const auto [n, cb0, nbk, oh0, oh1] = task_span(c, p, task);
  const int64_t wb4 = (p.wb + 3) / 4 * 4;  // V columns, built 4 at a time
  const __m128i pad = _mm_set1_epi8(char(c.in_zp));
  const __m512i zp = _mm512_set1_epi8(char(c.in_zp));
  t_quads.resize(size_t(nbk * wb4 * kQuadBytes));
  __m512i* quads = t_quads.as<__m512i>();
  const OutCodes q = out_codes(c);

  const Supers supers = task_supers(c, cb0, s.SW == 1 && s.SH == 1 ? nbk : 0, zp, q);
  for (int64_t oh = oh0; oh < oh1;) {
    const int rows = s.SH == 1 && oh + 1 < oh1 ? 2 : 1;  // output rows this V serves
    for (int64_t k4 = 0; k4 < supers.count; ++k4) {
      const int64_t cb = cb0 + kSuper * k4;
      const uint8_t* src[4];
      for (int r = 0; r < 4; ++r) src[r] = input_row(c, n, oh - s.PH + r, cb);
      __m512i* v = quads + kSuper * k4 * wb4;
      const int64_t off[4] = {-s.PW, -s.PW, -s.PW, -s.PW};
      build_super<1>(src, off, s.W, c.ld_in, p.wb, zp, v);  // zp: the pad value in every byte
      const SuperBlock& sb = supers.blocks[k4];
      for (int r = 0; r < rows; ++r) {
        __m512i w[3][4];
        for (int kw = 0; kw < 3; ++kw)
          for (int i = 0; i < 4; ++i) w[kw][i] = r == 1 ? _mm512_slli_epi32(sb.w[kw][i], 8) : sb.w[kw][i];
        const SuperStoreU8 st = supers.row_store(c, k4, cb, (n * c.OH + oh + r) * c.OW);
        if (supers.plain) row_super<true>(v, w, sb, c.OW, st);
        else row_super<false>(v, w, sb, c.OW, st);
      }
    }
    for (int64_t k = kSuper * supers.count; k < nbk; ++k) {
      RowSource src[4];
      for (int r = 0; r < 4; ++r) src[r] = row_source(c, n, oh * s.SH - s.PH + r, cb0 + k, pad);
      __m512i* v = quads + k * wb4;
      for (int64_t j = 0; j < wb4; j += 4) build4(src, j - s.PW, v + j);
    }
    for (int64_t k = kSuper * supers.count; k < nbk; ++k) {
      const int64_t cb = cb0 + k;
      __m512i w[3];
      load_quads(c, cb, w);
      const __m512i init = zero_point_init(zp, w);
      const __m512i* v = quads + k * wb4;
      for (int r = 0; r < rows; ++r) {
        // Row oh + 1 reads V one byte later: its weights move up a byte (the fourth is 0).
        if (r == 1)
          for (int kw = 0; kw < 3; ++kw) w[kw] = _mm512_slli_epi32(w[kw], 8);
        with_block_store(c, q, cb, (n * c.OH + oh + r) * c.OW, [&](const auto& st) {
          if (s.SW == 1) row<1>(v, w, init, c.OW, st);
          else row<2>(v, w, init, c.OW, st);
        });
      }
    }
    oh += rows;
  }
}

// Stride 2 both ways: pair rows (build4_pairs), two per task's block, swapped from row to row.
void run_task_pairs(const DwCall& c, const Plan& p, int64_t task) {
  const DwShape& s = c.s;
  const auto [n, cb0, nbk, oh0, oh1] = task_span(c, p, task);
  const int64_t wp4 = (c.OW + 1 + 3) / 4 * 4;  // pair columns, built 4 at a time
  const __m128i pad = _mm_set1_epi8(char(c.in_zp));
  const __m512i zp = _mm512_set1_epi8(char(c.in_zp));
  t_quads.resize(size_t(2 * nbk * wp4 * kQuadBytes));
  __m512i* va = t_quads.as<__m512i>();  // kernel rows 0 and 1 of output row oh
  __m512i* vb = va + nbk * wp4;         // kernel row 2 (and the next output row's 0 and 1)
  const OutCodes q = out_codes(c);
  const Supers supers = task_supers(c, cb0, nbk, zp, q);
  const auto build = [&](__m512i* dst, int64_t ih) {
    for (int64_t k4 = 0; k4 < supers.count; ++k4) {
      const int64_t cb = cb0 + kSuper * k4;
      const uint8_t* a = input_row(c, n, ih, cb);
      const uint8_t* b = input_row(c, n, ih + 1, cb);
      const uint8_t* src[4] = {a, b, a, b};
      const int64_t off[4] = {-s.PW, -s.PW, 1 - s.PW, 1 - s.PW};
      build_super<2>(src, off, s.W, c.ld_in, c.OW + 1, zp, dst + kSuper * k4 * wp4);
    }
    for (int64_t k = kSuper * supers.count; k < nbk; ++k) {
      const RowSource src[2] = {row_source(c, n, ih, cb0 + k, pad), row_source(c, n, ih + 1, cb0 + k, pad)};
      for (int64_t j = 0; j < wp4; j += 4) build4_pairs(src, 2 * j - s.PW, dst + k * wp4 + j);
    }
  };
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const int64_t ih = 2 * oh - s.PH;
    if (oh == oh0) build(va, ih);
    else std::swap(va, vb);
    build(vb, ih + 2);
    for (int64_t k4 = 0; k4 < supers.count; ++k4) {
      const SuperBlock& sb = supers.blocks[k4];
      __m512i w[4][4];
      for (int i = 0; i < 4; ++i) {
        const __m512i q3[3] = {sb.w[0][i], sb.w[1][i], sb.w[2][i]};
        __m512i pw[4];
        pair_weights(q3, pw);
        for (int j = 0; j < 4; ++j) w[j][i] = pw[j];
      }
      const int64_t cb = cb0 + kSuper * k4;
      const __m512i *a = va + kSuper * k4 * wp4, *b = vb + kSuper * k4 * wp4;
      const SuperStoreU8 st = supers.row_store(c, k4, cb, (n * c.OH + oh) * c.OW);
      const auto row = [&](auto plain) {
        for_each_tile<4>(c.OW, [&](auto t, int64_t ow) {
          tile_pairs_super<t.value, plain.value>(a + 4 * ow, b + 4 * ow, w, sb, ow, st);
        });
      };
      if (supers.plain) row(std::true_type{});
      else row(std::false_type{});
    }
    for (int64_t k = kSuper * supers.count; k < nbk; ++k) {
      const int64_t cb = cb0 + k;
      __m512i w3[3];
      load_quads(c, cb, w3);
      __m512i w[4];
      pair_weights(w3, w);
      const __m512i init = zero_point_init(zp, w3);
      const __m512i *a = va + k * wp4, *b = vb + k * wp4;
      with_block_store(c, q, cb, (n * c.OH + oh) * c.OW, [&](const auto& st) {
        const auto store = st;  // a local copy: its constants stay in registers
        for_each_tile<16>(c.OW, [&](auto t, int64_t ow) { tile_pairs<t.value>(a + ow, b + ow, w, init, ow, store); });
      });
    }
  }
}

}  // namespace

void u8s8_dwconv3x3_c16x16__avx512vnni(const DwCall& c) {
  const Plan p = make_plan(c, 1);  // one row of V per task (the row-pair path: two of half the width)
  if (c.s.SH == 2 && c.s.SW == 2) for_each_task(c, p, [&](int64_t task) { run_task_pairs(c, p, task); });
  else for_each_task(c, p, [&](int64_t task) { run_task(c, p, task); });
}

}  // namespace mixq
