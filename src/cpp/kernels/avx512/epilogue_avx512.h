// AVX-512 epilogues: 64 output columns of a row (four vectors) per step, from the accumulator
// tile to fp32 or requantized u8 (bias, fused residual, GELU, clamp, round half to even, saturate)
// with no scalar pass. Included by ops_impl.h and encoder_ops_impl.h in the avx512 translation
// units only; the same arithmetic as the portable epilogues.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "core/gelu.h"
#include "kernels/avx512/tail_mask_avx512.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// Can the vector epilogue write this output? (s8/s32 outputs and weight zero points take the
// portable path.)
inline bool vector_epilogue_ok(const Epilogue& e) {
  return e.type == OutType::u8 || e.type == OutType::f32;
}

// Stores 16 (masked) fp32 outputs; whole aligned lines bypass the cache when the output
// streams (no read for ownership of lines about to be overwritten).
inline void store16_f32(const Epilogue& e, float* dst, __mmask16 k, __m512 y) {
  if (e.stream_out && k == 0xffff && (reinterpret_cast<uintptr_t>(dst) & 63) == 0) _mm512_stream_ps(dst, y);
  else _mm512_mask_storeu_ps(dst, k, y);
}

// Non-temporal stores are weakly ordered: fence them before the tile counts as written.
inline void end_tile(const Epilogue& e) {
  if (e.stream_out) _mm_sfence();
}

// Adds the residual, applies GELU, clamps and stores V vectors of row m at columns n, n+16, ...
// (masks k; a zero mask skips its vector). Each step runs over all V vectors before the next, so
// their dependency chains (GELU's is ~20 operations deep) overlap (BERT-Large w8a8 at batch 8:
// 0.8 % faster end to end than one vector at a time, same bits).
template <int V>
inline void finish_row(const Epilogue& e, __m512 (&y)[V], int64_t m, int64_t n, const __mmask16 (&k)[V]) {
  if (e.residual_u8) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __m128i r8 = _mm_maskz_loadu_epi8(k[v], e.residual_u8 + m * e.ld_residual + n + 16 * v);
      const __m512 r = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(r8)), _mm512_set1_ps(float(e.residual_zp)));
      y[v] = _mm512_add_ps(y[v], _mm512_mul_ps(_mm512_set1_ps(e.residual_scale), r));
    }
  } else if (e.residual_f32) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      y[v] = _mm512_add_ps(y[v], _mm512_maskz_loadu_ps(k[v], e.residual_f32 + m * e.ld_residual + n + 16 * v));
  }
  if (e.gelu) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) y[v] = gelu16(y[v]);
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    // min / max return their second operand when either is NaN: this order keeps a NaN a NaN.
    y[v] = _mm512_min_ps(_mm512_set1_ps(e.hi), _mm512_max_ps(_mm512_set1_ps(e.lo), y[v]));
    const int64_t off = out_offset(e, m, n + 16 * v);
    if (e.type == OutType::f32) {
      store16_f32(e, static_cast<float*>(e.out) + off, k[v], y[v]);
      continue;
    }
    __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(y[v], _mm512_set1_ps(1.f / e.out_scale)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_add_ps(q, _mm512_set1_ps(float(e.out_zp)));
    q = _mm512_min_ps(_mm512_max_ps(q, _mm512_setzero_ps()), _mm512_set1_ps(255.f));
    _mm_mask_storeu_epi8(static_cast<uint8_t*>(e.out) + off, k[v], _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(q)));
  }
}

// An epilogue over a tile of mr rows and nc columns, 64 columns (a kernel's tile width) per step:
// y16(r, j, k) gives the 16 (masked) values of tile row r at tile column j before finish_row.
template <typename Y16>
inline void epilogue_tile(const Epilogue& e, int64_t m0, int64_t mr, int64_t n0, int64_t nc, Y16 y16) {
  constexpr int V = 4;
  for (int64_t r = 0; r < mr; ++r)
    for (int64_t j = 0; j < nc; j += 16 * V) {
      __m512 y[V];
      __mmask16 k[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        k[v] = tail_mask(nc - j - 16 * v);
        y[v] = y16(r, j + 16 * v, k[v]);
      }
      finish_row<V>(e, y, m0 + r, n0 + j, k);
    }
  end_tile(e);
}

// The folded epilogue's u8 codes (folded_u8_code, kernels.h), bit for bit. The clamp bounds minus
// the zero point are integers and rounding is monotonic, so clamping before or after rounding
// agrees. Two ways to the codes of y:
//  - folded_u8_codes16 (one vector): clamp in float (a NaN y takes the low bound: max returns
//    it), round, + zero point, as int32 lanes;
//  - folded_rounded16 + folded_u8_line (two or four vectors, a row's 32 or 64 columns): round
//    min(y, 2^16) to int32 (a NaN y, and any y below -2^31, gives INT_MIN), saturating packs to
//    int16, + zero point (saturating), saturating pack to u8, clamp to [q_lo, q_hi] on the bytes.
//    Saturation only moves values the clamp takes to q_lo or q_hi anyway, and a NaN lands on q_lo.
//    Per vector that is one to two operations fewer than the clamp in float.
struct FoldedU8 {
  __m512 lo, hi, rs, rz, inv, cap;
  __m512i zp, zp16, qlo8, qhi8;
  explicit FoldedU8(const Epilogue& e) {
    const float zpf = float(e.out_zp), i = 1.f / e.out_scale;
    lo = _mm512_set1_ps(e.q_lo - zpf), hi = _mm512_set1_ps(e.q_hi - zpf);
    rs = _mm512_set1_ps(e.residual_scale * i), rz = _mm512_set1_ps(float(e.residual_zp)), inv = _mm512_set1_ps(i);
    cap = _mm512_set1_ps(65536.f);
    zp = _mm512_set1_epi32(e.out_zp), zp16 = _mm512_set1_epi16(int16_t(std::clamp(e.out_zp, -32768, 32767)));
    qlo8 = _mm512_set1_epi8(char(uint8_t(e.q_lo))), qhi8 = _mm512_set1_epi8(char(uint8_t(e.q_hi)));
  }
};

// The folded epilogue's column terms of 16 columns from n (k masks the columns past the tile's).
struct FoldedColumns16 {
  __m512i off;
  __m512 scale, bias;
};
inline FoldedColumns16 folded_columns16(const Epilogue& e, int64_t n, __mmask16 k) {
  return {_mm512_maskz_loadu_epi32(k, e.col_offset + n), _mm512_maskz_loadu_ps(k, e.col_scale + n),
          _mm512_maskz_loadu_ps(k, e.col_bias + n)};
}

// The residual a folded epilogue adds: none, u8 codes or fp32 values (Epilogue::residual_*).
enum class ResidualKind { none, u8, f32 };

// y of 16 accumulators acc with their column terms t, plus the residual's 16 values at res (of
// kind R; k masks its loads), in output-code units before the zero point. Offset = false
// (Epilogue::zero_offsets: every column offset is 0) skips the subtraction.
template <ResidualKind R, bool Offset = true>
inline __m512 folded_y16(const FoldedU8& c, __m512i acc, const FoldedColumns16& t, const void* res, __mmask16 k) {
  if constexpr (Offset) acc = _mm512_sub_epi32(acc, t.off);
  __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), t.scale, t.bias);
  if constexpr (R == ResidualKind::u8) {
    const __m128i r8 = _mm_maskz_loadu_epi8(k, res);
    y = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(r8)), c.rz), c.rs, y);
  } else if constexpr (R == ResidualKind::f32) {
    y = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, res), c.inv, y);
  }
  return y;
}

// Codes of one vector of y, as int32 lanes.
inline __m512i folded_u8_codes16(const FoldedU8& c, __m512 y) {
  y = _mm512_min_ps(_mm512_max_ps(y, c.lo), c.hi);
  return _mm512_add_epi32(_mm512_cvt_roundps_epi32(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), c.zp);
}

// round(min(y, 2^16)) as int32 lanes; min(cap, y) returns y when y is NaN (it rounds to INT_MIN).
// Capped = false (Epilogue::y_bounded: no y reaches 2^31) rounds y as it is.
template <bool Capped = true>
inline __m512i folded_rounded16(const FoldedU8& c, __m512 y) {
  if constexpr (Capped) y = _mm512_min_ps(c.cap, y);
  return _mm512_cvt_roundps_epi32(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// y of row m at columns n.. of e's residual.
inline __m512 folded_y16(const Epilogue& e, const FoldedU8& c, __m512i acc, const FoldedColumns16& t, int64_t m,
                         int64_t n, __mmask16 k) {
  if (e.residual_u8) return folded_y16<ResidualKind::u8>(c, acc, t, e.residual_u8 + m * e.ld_residual + n, k);
  if (e.residual_f32) return folded_y16<ResidualKind::f32>(c, acc, t, e.residual_f32 + m * e.ld_residual + n, k);
  return folded_y16<ResidualKind::none>(c, acc, t, nullptr, k);
}

// The codes (in column order) of V = 2 or 4 vectors of rounded values: 32 or 64 bytes. Clamp =
// false when q_lo <= 0 and q_hi >= 255: the saturating pack to u8 is then the whole clamp.
template <int V, bool Clamp = true>
inline __m512i folded_u8_line(const FoldedU8& c, const __m512i (&r)[V]) {
  static_assert(V == 2 || V == 4);
  // packs_epi32 then packus_epi16 leave dword 4l + i holding columns 4l..4l+3 of vector i.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m512i ab = _mm512_adds_epi16(_mm512_packs_epi32(r[0], r[1]), c.zp16);
  __m512i cd = ab;  // V = 2: a don't-care half
  if constexpr (V == 4) cd = _mm512_adds_epi16(_mm512_packs_epi32(r[2], r[3]), c.zp16);
  __m512i bytes = _mm512_packus_epi16(ab, cd);
  if constexpr (Clamp) bytes = _mm512_min_epu8(c.qhi8, _mm512_max_epu8(c.qlo8, bytes));
  return _mm512_permutexvar_epi32(order, bytes);
}

// Stores the first cols (1..64) bytes of a line.
inline void store_u8_line(uint8_t* dst, __m512i line, int64_t cols) {
  if (cols >= 64) _mm512_storeu_si512(dst, line);
  else _mm512_mask_storeu_epi8(dst, (uint64_t(1) << cols) - 1, line);
}

// u8 outputs of the folded epilogue, 64 columns at a time: the column terms loaded once for all
// rows of the tile, one store per row. Returns the columns it wrote (a multiple of 64).
inline int64_t epilogue_s32_folded_u8_lines(const Epilogue& e, const int32_t* acc, int64_t ldacc, int64_t m0,
                                            int64_t mr, int64_t n0, int64_t nc) {
  if (e.col_block) return 0;
  const FoldedU8 c(e);
  int64_t j = 0;
  for (; j + 64 <= nc; j += 64) {
    const int64_t n = n0 + j;
    FoldedColumns16 t[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) t[v] = folded_columns16(e, n + 16 * v, 0xffff);
    for (int64_t r = 0; r < mr; ++r) {
      __m512i q[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v)
        q[v] = folded_rounded16(c, folded_y16(e, c, _mm512_loadu_si512(acc + r * ldacc + j + 16 * v), t[v], m0 + r,
                                              n + 16 * v, 0xffff));
      store_u8_line(static_cast<uint8_t*>(e.out) + (m0 + r) * e.ldo + n, folded_u8_line<4>(c, q), 64);
    }
  }
  return j;
}

// Static activations: the per-column affine folded by gemm_s8 (Epilogue::col_scale), one FMA per
// 16 outputs before rounding.
inline void epilogue_s32_folded_avx512(const Epilogue& e, const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mr,
                                       int64_t n0, int64_t nc) {
  const bool u8 = e.type == OutType::u8;
  if (u8) {
    const int64_t done = epilogue_s32_folded_u8_lines(e, acc, ldacc, m0, mr, n0, nc);
    acc += done, n0 += done, nc -= done;
  }
  const float inv = u8 ? 1.f / e.out_scale : 1.f;
  const __m512 qlo = _mm512_set1_ps(e.q_lo), qhi = _mm512_set1_ps(e.q_hi), zp = _mm512_set1_ps(float(e.out_zp));
  const __m512 rs = _mm512_set1_ps(e.residual_scale * inv), rz = _mm512_set1_ps(float(e.residual_zp));
  for (int64_t r = 0; r < mr; ++r) {
    const int64_t m = m0 + r;
    const int32_t* a = acc + r * ldacc;
    for (int64_t j = 0; j < nc; j += 16) {
      const __mmask16 k = tail_mask(nc - j);
      const int64_t n = n0 + j;
      const __m512i v = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(k, a + j), _mm512_maskz_loadu_epi32(k, e.col_offset + n));
      __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_maskz_loadu_ps(k, e.col_scale + n),
                                 _mm512_maskz_loadu_ps(k, e.col_bias + n));
      if (e.residual_u8) {
        const __m128i r8 = _mm_maskz_loadu_epi8(k, e.residual_u8 + m * e.ld_residual + n);
        y = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(r8)), rz), rs, y);
      } else if (e.residual_f32) {
        y = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, e.residual_f32 + m * e.ld_residual + n), _mm512_set1_ps(inv), y);
      }
      const int64_t off = out_offset(e, m, n);
      if (!u8) {
        store16_f32(e, static_cast<float*>(e.out) + off, k, _mm512_min_ps(qhi, _mm512_max_ps(qlo, y)));
        continue;
      }
      y = _mm512_add_ps(_mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
      y = _mm512_min_ps(_mm512_max_ps(y, qlo), qhi);
      _mm_mask_storeu_epi8(static_cast<uint8_t*>(e.out) + off, k, _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(y)));
    }
  }
  end_tile(e);
}

// 16 (masked) int8 accumulators with symmetric weights, as floats before the bias:
// (acc - a_zp * colsum) * (a_scale * b_scale). Also the attention scores' arithmetic
// (EncoderOps::scores_softmax_u8), so the two give the same bits.
inline __m512 dequant16_s32(__mmask16 k, const int32_t* acc, __m512i azp, const int32_t* colsum, __m512 sa,
                            const float* b_scale) {
  const __m512i v = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(k, acc), _mm512_mullo_epi32(azp, _mm512_maskz_loadu_epi32(k, colsum)));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(sa, _mm512_maskz_loadu_ps(k, b_scale)));
}

// int8 accumulators with symmetric weights: y = (acc - a_zp * colsum) * a_scale * b_scale + bias.
inline void epilogue_s32_avx512(const Epilogue& e, const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mr,
                                int64_t n0, int64_t nc) {
  if (e.col_scale) return epilogue_s32_folded_avx512(e, acc, ldacc, m0, mr, n0, nc);
  epilogue_tile(e, m0, mr, n0, nc, [&](int64_t r, int64_t j, __mmask16 k) {
    const int64_t m = m0 + r, n = n0 + j;
    const __m512i azp = _mm512_set1_epi32(e.a_zp ? e.a_zp[m * e.a_zp_stride] : 0);
    const __m512 y = dequant16_s32(k, acc + r * ldacc + j, azp, e.colsum + n, _mm512_set1_ps(e.a_scale[m * e.a_scale_stride]),
                                   e.b_scale + n);
    return e.bias ? _mm512_add_ps(y, _mm512_maskz_loadu_ps(k, e.bias + n)) : y;
  });
}

// Low-bit float accumulators: y = a_scale * (acc - a_zp * wsum) + bias.
inline void epilogue_lowbit_avx512(const Epilogue& e, const float* acc, int64_t ldacc, int64_t m0, int64_t mr,
                                   int64_t n0, int64_t nc) {
  epilogue_tile(e, m0, mr, n0, nc, [&](int64_t r, int64_t j, __mmask16 k) {
    const int64_t m = m0 + r, n = n0 + j;
    const __m512 za = _mm512_set1_ps(float(e.a_zp[m * e.a_zp_stride]));
    const __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, acc + r * ldacc + j), _mm512_mul_ps(za, _mm512_maskz_loadu_ps(k, e.wsum + n)));
    const __m512 y = _mm512_mul_ps(_mm512_set1_ps(e.a_scale[m * e.a_scale_stride]), t);
    return e.bias ? _mm512_add_ps(y, _mm512_maskz_loadu_ps(k, e.bias + n)) : y;
  });
}

// Float accumulators: y = acc + bias.
inline void epilogue_f32_avx512(const Epilogue& e, const float* acc, int64_t ldacc, int64_t m0, int64_t mr,
                                int64_t n0, int64_t nc) {
  epilogue_tile(e, m0, mr, n0, nc, [&](int64_t r, int64_t j, __mmask16 k) {
    const __m512 y = _mm512_maskz_loadu_ps(k, acc + r * ldacc + j);
    return e.bias ? _mm512_add_ps(y, _mm512_maskz_loadu_ps(k, e.bias + n0 + j)) : y;
  });
}

}  // namespace
}  // namespace mixq
