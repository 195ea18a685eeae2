// AVX-512 (F/BW/VL/DQ) depthwise convolution, NHWC, int8 and fp32.
//
// Scheme: a task is (image, band of output rows, group of 16-channel blocks). Each input row a
// task needs is converted once into a per-thread ring of fp32 rows laid out [block][column][16]
// and padded left and right, so the micro-kernels have no bounds checks and no masks: up to 16
// output pixels x 16 channels in zmm accumulators, each padded input column loaded once per kernel
// row and fed to every output that uses it (compile-time kernel size and stride for the common
// square kernels, a runtime-geometry kernel for the rest). Rows above and below the image point
// at a pad row. Only the final stores are masked (channel tail).
//
// int8: the rows hold x itself (padding holds zp), and the accumulators start at -zp * sum(w), so
// the result is sum (x - zp) * w with no per-element subtraction. Exactness: every partial sum is
// an integer of magnitude <= 255*128*taps (zp term) + 255*128*taps (products) < 2^24 for up to
// 256 taps, so fp32 FMAs compute the int32 accumulator exactly (larger kernels go to the
// reference, see kDwMaxExactTaps).
//
// GCC 12 reports the _mm512_undefined_* operand inside explicit-rounding intrinsics as
// uninitialized; it is a don't-care operand by design.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "kernels/avx512/depthwise_avx512_common.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// ------------------------------------------------------------------------------- micro-kernels
// rows[kh]: the padded row of kernel row kh at column 0 of this block; w: the block's [taps][16]
// weights; init: the accumulators' start value (int8: -zp * sum of the weights).
// Compile-time T (pixels), KH, KW and stride SW (dilation 1 along W).
template <int T, int KH, int KW, int SW, typename Store>
MIXQ_DW_INLINE void tile_fixed(const float* const* rows, const float* w, __m512 init, int64_t ow, const Store& st) {
  constexpr int NC = (T - 1) * SW + KW;  // input columns the tile reads per kernel row
  __m512 acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = init;
#pragma GCC unroll 7
  for (int kh = 0; kh < KH; ++kh) {
    const float* r = rows[kh] + ow * SW * kDwBlock;
    __m512 wv[KW];
#pragma GCC unroll 7
    for (int kw = 0; kw < KW; ++kw) wv[kw] = _mm512_load_ps(w + (kh * KW + kw) * kDwBlock);
#pragma GCC unroll 64
    for (int c = 0; c < NC; ++c) {
      const __m512 x = in_register(_mm512_load_ps(r + c * kDwBlock));
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const int kw = c - t * SW;
        if (kw >= 0 && kw < KW) acc[t] = _mm512_fmadd_ps(x, wv[kw], acc[t]);
      }
    }
  }
  st.template store<T>(ow, acc);
}

// Any geometry (runtime kernel size, stride, dilation).
template <int T, typename Store>
MIXQ_DW_INLINE void tile_generic(const float* const* rows, int64_t KH, int64_t KW, int64_t SW, int64_t DW,
                                 const float* w, __m512 init, int64_t ow, const Store& st) {
  __m512 acc[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = init;
  const int64_t step = SW * kDwBlock;
  for (int64_t kh = 0; kh < KH; ++kh) {
    for (int64_t kw = 0; kw < KW; ++kw) {
      const __m512 wv = _mm512_load_ps(w + (kh * KW + kw) * kDwBlock);
      const float* p = rows[kh] + (ow * SW + kw * DW) * kDwBlock;
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(_mm512_load_ps(p + t * step), wv, acc[t]);
    }
  }
  st.template store<T>(ow, acc);
}

// One output row of one channel block: tiles of 16 pixels (stride 1; 8 for stride 2, whose tiles
// read twice the columns), then 8, 4, 2, 1 for the rest. The store is copied into a local so its
// constants stay in registers (u8 stores may alias any memory).
template <int K, int SW, typename Store>
void row_fixed(const float* const* rows, const float* w, __m512 init, int64_t OW, const Store& store) {
  const Store st = store;
  for_each_tile<SW == 1 ? 16 : 8>(OW, [&](auto n, int64_t ow) { tile_fixed<n.value, K, K, SW>(rows, w, init, ow, st); });
}

template <typename Store>
void row_generic(const float* const* rows, int64_t KH, int64_t KW, int64_t SW, int64_t DW, const float* w,
                 __m512 init, int64_t OW, const Store& store) {
  const Store st = store;
  for_each_tile<8>(OW, [&](auto n, int64_t ow) { tile_generic<n.value>(rows, KH, KW, SW, DW, w, init, ow, st); });
}

// Square 3x3, 5x5, 7x7 kernels with stride 1 or 2 along W and no dilation along W get the
// compile-time micro-kernels; everything else the generic one.
template <typename Store>
void compute_row(const DwShape& s, const float* const* rows, const float* w, __m512 init, int64_t OW,
                 const Store& st) {
  if (s.KH == s.KW && s.DW == 1 && (s.SW == 1 || s.SW == 2)) {
    const bool s1 = s.SW == 1;
    switch (s.KW) {
      case 3: return s1 ? row_fixed<3, 1>(rows, w, init, OW, st) : row_fixed<3, 2>(rows, w, init, OW, st);
      case 5: return s1 ? row_fixed<5, 1>(rows, w, init, OW, st) : row_fixed<5, 2>(rows, w, init, OW, st);
      case 7: return s1 ? row_fixed<7, 1>(rows, w, init, OW, st) : row_fixed<7, 2>(rows, w, init, OW, st);
      default: break;
    }
  }
  row_generic(rows, s.KH, s.KW, s.SW, s.DW, w, init, OW, st);
}

// -------------------------------------------------------------------------------------- tasks
// Converts input row (n, ih), blocks [cb0, cb0 + nbk), into a ring slot [nbk][wb][16]: columns
// [j0, j1) of the slot hold input columns [j0 - PW, j1 - PW); channels past C become 0.
template <bool kInt8>
void convert_row(const DwCall& c, int64_t n, int64_t ih, int64_t cb0, int64_t nbk, __mmask16 last_mask, int64_t wb,
                 int64_t j0, int64_t j1, float* slot) {
  const DwShape& s = c.s;
  const int64_t pix0 = (n * s.H + ih) * s.W + (j0 - s.PW);
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t off = (pix0 + j - j0) * c.ld_in + cb0 * kDwBlock;
    float* dst = slot + j * kDwBlock;
    for (int64_t b = 0; b < nbk; ++b) {
      const __mmask16 m = b == nbk - 1 ? last_mask : __mmask16(0xFFFF);
      __m512 v;
      if constexpr (kInt8)
        v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, c.in_u8 + off + b * kDwBlock)));
      else
        v = _mm512_maskz_loadu_ps(m, c.in_f32 + off + b * kDwBlock);
      _mm512_store_ps(dst + b * wb * kDwBlock, v);
    }
  }
}

template <bool kInt8>
void run_task(const DwCall& c, const Plan& p, int64_t task) {
  const DwShape& s = c.s;
  const int64_t taps = c.w->taps();
  const auto [n, cb0, nbk, oh0, oh1] = task_span(c, p, task);
  const __mmask16 last_mask = block_mask(c, cb0 + nbk - 1);
  // What padding holds: int8 rows store x itself, so padding is x = zp ((zp - zp) * w = 0).
  RowRing ring(s, p, nbk, kDwBlock, kInt8 ? float(c.in_zp) : 0.f);
  const auto convert = [&](int64_t ih, float* slot) {
    convert_row<kInt8>(c, n, ih, cb0, nbk, last_mask, p.wb, ring.j0(), ring.j1(), slot);
  };
  const OutCodes q = out_codes(c);

  for (int64_t oh = oh0; oh < oh1; ++oh) {
    ring.select(oh, convert);
    const int64_t out_pix = (n * c.OH + oh) * c.OW;
    for (int64_t k = 0; k < nbk; ++k) {
      const int64_t cb = cb0 + k;
      const float* const* rows = ring.rows(k);
      const float* w = c.w->block(cb);
      __m512 init = _mm512_setzero_ps();
      if (kInt8) {  // -zp * sum over taps of the weights (exact: an integer below 2^24)
        __m512 wsum = _mm512_setzero_ps();
        for (int64_t t = 0; t < taps; ++t) wsum = _mm512_add_ps(wsum, _mm512_load_ps(w + t * kDwBlock));
        init = _mm512_mul_ps(wsum, _mm512_set1_ps(-float(c.in_zp)));
      }
      with_block_store(c, q, cb, out_pix, [&](const auto& st) { compute_row(s, rows, w, init, c.OW, st); });
    }
  }
}

template <bool INT8>
void dwconv_avx512(const DwCall& c) {
  const Plan p = make_plan(c, (c.s.KH - 1) * c.s.DH + 2);  // the ring and a pad row
  for_each_task(c, p, [&](int64_t task) { run_task<INT8>(c, p, task); });
}

}  // namespace

void u8s8_dwconv_c16x8__avx512(const DwCall& c) { dwconv_avx512<true>(c); }
void f32_dwconv_c16x8__avx512(const DwCall& c) { dwconv_avx512<false>(c); }

}  // namespace mixq
