// The lookup-table (T-MAC style) 2-bit GEMV shared by the AVX2 and AVX-512 units (internal
// linkage; include only from them): the table builder, the per-group flush and fold, and the loop
// over k blocks and panels. The units differ only in how they look codes up (LutUnit below).
//
// A u2_x32c4 code byte of column c, lane q (k % 4) in unit u (16 k) holds the codes of
// k = 16u + 4s + q, s = 0..3; its low nibble (s = 0, 1) and high nibble (s = 2, 3) each index a
// 16-entry table of that (u, q, half) T[n] = a0 * (n & 3) + a1 * (n >> 2) <= 1530, built once per
// call from the activations and shared by all columns. A table is stored as two byte planes,
// T & 63 and T >> 6 (<= 23), so vpshufb looks up each and four lookups still fit a byte
// (4 * 63 <= 255): the byte sums widen to int16 once per unit, to int32 once per group or 64 units.
// vpshufb takes one table per 128-bit lane, so the code bytes are first moved so that each lane
// holds one q (a byte shuffle and a dword permute per 32 bytes).
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "core/aligned_buffer.h"
#include "kernels/avx2/kernel_util_avx2.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// Units (16 k) per flush to int32: the int16 sums stay below 2^15 (see lut_flush).
constexpr int64_t kLutFlushUnits = 64;

// u2lut tables for `units` units of 16 activations (layout: kernels.h, kU2LutUnitBytes).
inline void build_u2_lut(const uint8_t* a, int64_t units, uint8_t* lut) {
  // Word n of a table is the pair (a0, a1) times the s8 pair (n & 3, n >> 2) (vpmaddubsw: at most
  // 2 * 255 * 3, no saturation).
  alignas(32) int8_t pat[32];
  for (int n = 0; n < 16; ++n) pat[2 * n] = int8_t(n & 3), pat[2 * n + 1] = int8_t(n >> 2);
  const __m256i pattern = _mm256_load_si256(reinterpret_cast<const __m256i*>(pat));
  __m256i pair[2][4];  // byte shuffles putting (a[8h + q], a[8h + 4 + q]) in every word
  for (int h = 0; h < 2; ++h)
    for (int q = 0; q < 4; ++q) pair[h][q] = _mm256_set1_epi16(int16_t((8 * h + q) | ((8 * h + 4 + q) << 8)));
  const __m256i m63 = _mm256_set1_epi16(63);
  for (int64_t u = 0; u < units; ++u, a += 16, lut += kU2LutUnitBytes) {
    const __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
    for (int h = 0; h < 2; ++h)
      for (int q = 0; q < 4; q += 2) {
        const __m256i t0 = _mm256_maddubs_epi16(_mm256_shuffle_epi8(x, pair[h][q]), pattern);
        const __m256i t1 = _mm256_maddubs_epi16(_mm256_shuffle_epi8(x, pair[h][q + 1]), pattern);
        // packus interleaves 8-entry halves of the two tables; the qword permute restores order.
        const __m256i lo = _mm256_packus_epi16(_mm256_and_si256(t0, m63), _mm256_and_si256(t1, m63));
        const __m256i hi = _mm256_packus_epi16(_mm256_srli_epi16(t0, 6), _mm256_srli_epi16(t1, 6));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lut + 128 * h + 16 * q), _mm256_permute4x64_epi64(lo, 0xD8));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lut + 128 * h + 64 + 16 * q), _mm256_permute4x64_epi64(hi, 0xD8));
      }
  }
}

// int16 sums of one panel over some units: for each half of the panel (columns 0-15, 16-31), lane
// l of each holds columns 16 * half + 0..15 in byte positions, as words of two columns:
//   all: sum of (byte at even position + 256 * byte at odd position), mod 2^16
//   odd: sum of the byte at odd positions
// for the low plane (s) and the high plane (h). Lane 0 and 1 hold different k (lanes of q).
struct LutSums {
  __m256i s_all[2], s_odd[2], h_all[2], h_odd[2];
};

// Byte sums of a unit (s <= 4 * 63, h <= 4 * 23 per byte) into the int16 sums.
// The odd bytes by vpmaddubsw with (0, 1), not a shift: the multiply ports are idle here, the
// shuffle and shift ports are what the lookups use.
inline void lut_widen(__m256i s, __m256i h, __m256i& s_all, __m256i& s_odd, __m256i& h_all, __m256i& h_odd) {
  const __m256i odd = _mm256_set1_epi16(0x0100);
  s_all = _mm256_add_epi16(s_all, s), s_odd = _mm256_add_epi16(s_odd, _mm256_maddubs_epi16(s, odd));
  h_all = _mm256_add_epi16(h_all, h), h_odd = _mm256_add_epi16(h_odd, _mm256_maddubs_epi16(h, odd));
}

// The int32 dot products of the panel's 32 columns, in 4 vectors of 8. Bounds at 64 units: a word
// of the lane sums holds at most 2 * 64 * 252 = 32256 (low plane) and 11776 (high plane), so the
// even-position sum all - 256 * odd is exact and vpmaddwd by (1, 64) sees no int16 overflow.
inline void lut_flush(const LutSums& t, __m256i r[4]) {
  const auto lanes = [](__m256i x0, __m256i x1) {  // lane 0: half 0 summed over its lanes; lane 1: half 1
    return _mm256_add_epi16(_mm256_permute2x128_si256(x0, x1, 0x20), _mm256_permute2x128_si256(x0, x1, 0x31));
  };
  const __m256i sa = lanes(t.s_all[0], t.s_all[1]), so = lanes(t.s_odd[0], t.s_odd[1]);
  const __m256i ha = lanes(t.h_all[0], t.h_all[1]), ho = lanes(t.h_odd[0], t.h_odd[1]);
  const __m256i se = _mm256_sub_epi16(sa, _mm256_slli_epi16(so, 8)), he = _mm256_sub_epi16(ha, _mm256_slli_epi16(ho, 8));
  const __m256i k = _mm256_set1_epi32(0x00400001);  // (1, 64): low plane + 64 * high plane
  const __m256i ev_lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(se, he), k);  // columns 0, 2, 4, 6 (+16)
  const __m256i ev_hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(se, he), k);  // 8, 10, 12, 14
  const __m256i od_lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(so, ho), k);  // 1, 3, 5, 7
  const __m256i od_hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(so, ho), k);  // 9, 11, 13, 15
  const __m256i r0 = _mm256_unpacklo_epi32(ev_lo, od_lo), r1 = _mm256_unpackhi_epi32(ev_lo, od_lo);
  const __m256i r2 = _mm256_unpacklo_epi32(ev_hi, od_hi), r3 = _mm256_unpackhi_epi32(ev_hi, od_hi);
  r[0] = _mm256_permute2x128_si256(r0, r1, 0x20), r[1] = _mm256_permute2x128_si256(r2, r3, 0x20);
  r[2] = _mm256_permute2x128_si256(r0, r1, 0x31), r[3] = _mm256_permute2x128_si256(r2, r3, 0x31);
}

// GEMV of one row over np panels. Unit::add(codes, tables, sums) adds one unit of one panel. The
// tables of a block of units (<= 16 KiB) stay in L1 while every panel sweeps them; each panel's
// fp32 outputs (in c) take the group fold exactly as the u2 kernels do it (bit-identical output).
template <typename Unit>
void lut_gemv(int np, int64_t k_steps, const uint8_t* a, const uint8_t* b, int64_t b_stride, const LowBitArgs& t,
              float* c, bool accumulate) {
  const int64_t units = k_steps / 4, gu = t.group_steps / 4, block_bytes = gu * 128 + 96;
  const uint8_t* lut = t.lut;
  thread_local AlignedBuffer own, part;
  if (!lut) {
    own.resize(size_t(units * kU2LutUnitBytes));
    build_u2_lut(a, units, own.as<uint8_t>());
    lut = own.as<uint8_t>();
  }
  if (!accumulate)
    for (int j = 0; j < 4 * np; ++j) _mm256_storeu_ps(c + 8 * j, _mm256_setzero_ps());
  // A block is whole groups of at most 64 units, or 64 units of a longer group (partial int32 sums
  // in `part` between blocks).
  const int64_t span = gu <= kLutFlushUnits ? kLutFlushUnits / gu * gu : kLutFlushUnits;
  if (gu > kLutFlushUnits) part.resize(size_t(np) * 32 * sizeof(int32_t));
  for (int64_t u0 = 0; u0 < units; u0 += span) {
    const int64_t u1 = std::min(units, u0 + span);
    for (int j = 0; j < np; ++j) {
      const uint8_t* panel = b + j * b_stride;
      float* cj = c + 32 * j;
      int32_t* pj = gu > kLutFlushUnits ? part.as<int32_t>() + 32 * j : nullptr;
      for (int64_t u = u0; u < u1;) {
        const int64_t g = u / gu, first = u == g * gu, end = std::min((g + 1) * gu, u1), last = end == (g + 1) * gu;
        LutSums sums;
        for (int h = 0; h < 2; ++h)
          sums.s_all[h] = sums.s_odd[h] = sums.h_all[h] = sums.h_odd[h] = _mm256_setzero_si256();
        for (; u < end; ++u) Unit::add(panel + g * block_bytes + (u - g * gu) * 128, lut + u * kU2LutUnitBytes, sums);
        __m256i r[4];
        lut_flush(sums, r);
        if (!first)
          for (int v = 0; v < 4; ++v)
            r[v] = _mm256_add_epi32(r[v], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pj + 8 * v)));
        if (!last) {
          for (int v = 0; v < 4; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(pj + 8 * v), r[v]);
          continue;
        }
        // c += scale * dot - scale * zero_point * rowsum_g, as u8u2f32_gemm_4x32__avx2.
        const uint8_t* tail = panel + g * block_bytes + gu * 128;
        const __m256 rs = _mm256_set1_ps(t.rowsum[g]);
        for (int v = 0; v < 4; ++v) {
          __m256 scale, sz;
          group_scales8(tail, 8 * v, scale, sz);
          __m256 f = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(r[v]), _mm256_loadu_ps(cj + 8 * v));
          _mm256_storeu_ps(cj + 8 * v, _mm256_fnmadd_ps(sz, rs, f));
        }
      }
    }
  }
}

}  // namespace
}  // namespace mixq
