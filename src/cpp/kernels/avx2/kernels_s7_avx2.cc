// AVX2 int8 GEMM on narrow weights (kind s7): codes in [-64, 64], u8 activations, exact.
// vpmaddubsw multiplies 32 u8 x s8 byte pairs and adds neighbours into int16 with saturation; with
// |code| <= 64 a pair is at most 2 * 255 * 64 = 32640 < 2^15, so it never saturates and the sum
// is exact. vpmaddwd by ones then adds the pairs (k0+k1, k2+k3) of each column into int32. That is
// 32 multiply-adds per two multiply instructions, twice the exact vpmaddwd path's 16 (kind s8 at
// this level). The driver hands this kernel only weights whose packing found every code in range
// (PackedWeight::narrow_codes); full-range codes would saturate silently.
#include <immintrin.h>

#include <algorithm>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// The products of MR rows x V chunks of 8 columns (chunk v: panel v / 4, its chunk v % 4). Per row
// and step, the 4 activations are one broadcast 32-bit word; B chunks are read as memory operands
// of vpmaddubsw, so 12 accumulators (3 x 32) fit beside the broadcast, a product and the ones.
template <int MR, int V>
inline void s7_products(__m256i (&acc)[MR][V], int64_t k_steps, const uint8_t* a0, int64_t lda, const int8_t* b0,
                        int64_t b_stride, int64_t seg_steps, int64_t seg_stride) {
  const __m256i ones = _mm256_set1_epi16(1);
  const auto chunk = [&](int v) { return v / 4 * b_stride + 32 * (v % 4); };
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[i][v] = _mm256_setzero_si256();
  for_each_k_step(k_steps, seg_steps, seg_stride, [&](int64_t p, int64_t off) {
    const int8_t* bp = b0 + 128 * p;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256i a4 = _mm256_set1_epi32(load_i32(a0 + i * lda + off));
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + chunk(v)));
        acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(_mm256_maddubs_epi16(a4, x), ones));
      }
    }
  });
}

template <int MR, int V>
void gemm_s7_tile_avx2(int64_t k_steps, const uint8_t* a0, int64_t lda, const int8_t* b0, int64_t b_stride, int32_t* c,
                       int64_t ldc, bool accumulate, int64_t seg_steps, int64_t seg_stride) {
  __m256i acc[MR][V];
  s7_products<MR, V>(acc, k_steps, a0, lda, b0, b_stride, seg_steps, seg_stride);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      __m256i* dst = reinterpret_cast<__m256i*>(c + i * ldc + 32 * (v / 4) + 8 * (v % 4));
      __m256i s = acc[i][v];
      if (accumulate) s = _mm256_add_epi32(s, _mm256_loadu_si256(dst));
      _mm256_storeu_si256(dst, s);
    }
}

// The folded epilogue's codes (folded_u8_code, kernels.h) of 8 columns from n, whole chunks only
// (the tile's last partial chunk goes through folded_u8_code itself). Bit for bit the definition:
// one FMA per term in its order, clamp bounds minus the zero point (integers: clamping before
// rounding is exact), round half to even (MXCSR's default), then the zero point.
struct FoldedU8x8 {
  __m256 lo, hi, rs, rz, inv;
  __m256i zp;
  explicit FoldedU8x8(const Epilogue& e) {
    const float zpf = float(e.out_zp), i = 1.f / e.out_scale;
    lo = _mm256_set1_ps(e.q_lo - zpf), hi = _mm256_set1_ps(e.q_hi - zpf);
    rs = _mm256_set1_ps(e.residual_scale * i), rz = _mm256_set1_ps(float(e.residual_zp)), inv = _mm256_set1_ps(i);
    zp = _mm256_set1_epi32(e.out_zp);
  }
};

inline __m256i folded_u8_8(const Epilogue& e, const FoldedU8x8& c, __m256i acc, int64_t m, int64_t n) {
  const __m256i off = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.col_offset + n));
  __m256 y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc, off)), _mm256_loadu_ps(e.col_scale + n),
                             _mm256_loadu_ps(e.col_bias + n));
  if (e.residual_u8) {
    const __m128i r8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(e.residual_u8 + m * e.ld_residual + n));
    y = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(r8)), c.rz), c.rs, y);
  } else if (e.residual_f32) {
    y = _mm256_fmadd_ps(_mm256_loadu_ps(e.residual_f32 + m * e.ld_residual + n), c.inv, y);
  }
  y = _mm256_min_ps(_mm256_max_ps(y, c.lo), c.hi);
  return _mm256_add_epi32(_mm256_cvtps_epi32(y), c.zp);
}

// The same products finished in registers: u8 codes of rows m.., columns n..n+cols.
template <int MR, int V>
void gemm_s7_u8_avx2(int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b, int64_t b_stride,
                     int64_t seg_steps, int64_t seg_stride, int cols, const Epilogue& e, int64_t m, int64_t n) {
  __m256i acc[MR][V];
  s7_products<MR, V>(acc, k_steps, a, lda, b, b_stride, seg_steps, seg_stride);
  const FoldedU8x8 c(e);
  // packus_epi32 then packus_epi16 of chunks (0, 1) and (2, 3) leave dword d of the result holding
  // columns 4 * order[d] .. + 3.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const int whole = cols / 8;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    uint8_t* dst = static_cast<uint8_t*>(e.out) + (m + i) * e.ldo + n;
    __m256i q[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v)
      if (v < whole) q[v] = folded_u8_8(e, c, acc[i][v], m + i, n + 8 * v);
#pragma GCC unroll 2
    for (int g = 0; g + 4 <= V; g += 4)
      if (whole >= g + 4) {
        const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(q[g], q[g + 1]), _mm256_packus_epi32(q[g + 2], q[g + 3]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8 * g), _mm256_permutevar8x32_epi32(bytes, order));
      }
    // Chunks left over (a 16-column layer, a ragged tail): 8 codes a chunk, then the last columns.
    for (int v = whole / 4 * 4; v < whole; ++v) {
      const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(q[v]), _mm256_extracti128_si256(q[v], 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 8 * v), _mm_packus_epi16(w, w));
    }
    if (whole < V && 8 * whole < cols) {
      alignas(32) int32_t tail[8];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v)
        if (v == whole) _mm256_store_si256(reinterpret_cast<__m256i*>(tail), acc[i][v]);
      for (int j = 8 * whole; j < cols; ++j) dst[j] = folded_u8_code(e, tail[j - 8 * whole], m + i, n + j);
    }
  }
}

}  // namespace

// One row: two panels side by side (decode); 2-3 rows: the whole panel; a 16-column layer (cols <=
// 16 on one panel): only its live half.
void u8s7s32_gemm_3x32c4__avx2(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                               int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                               int64_t seg_stride, int cols) {
  int j = 0;
  if (mr == 1)
    for (; j + 2 <= np; j += 2)
      gemm_s7_tile_avx2<1, 8>(k_steps, a, lda, b + j * b_stride, b_stride, c + 32 * j, ldc, accumulate, seg_steps,
                              seg_stride);
  for (; j < np; ++j) {
    const bool half = np == 1 && cols <= 16;
    dispatch_mr<3>(mr, [&](auto MR) {
      if (half)
        gemm_s7_tile_avx2<MR.value, 2>(k_steps, a, lda, b + j * b_stride, b_stride, c + 32 * j, ldc, accumulate,
                                       seg_steps, seg_stride);
      else
        gemm_s7_tile_avx2<MR.value, 4>(k_steps, a, lda, b + j * b_stride, b_stride, c + 32 * j, ldc, accumulate,
                                       seg_steps, seg_stride);
    });
  }
}


// The same tiles, requantized to u8 in registers (kind s7q).
void u8s7u8_gemm_3x32c4__avx2(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                              int64_t b_stride, int64_t seg_steps, int64_t seg_stride, int cols, const Epilogue& e,
                              int64_t m, int64_t n) {
  int j = 0;
  if (mr == 1)
    for (; j + 2 <= np && cols > 32 * (j + 1); j += 2)
      gemm_s7_u8_avx2<1, 8>(k_steps, a, lda, b + j * b_stride, b_stride, seg_steps, seg_stride,
                            std::min(cols - 32 * j, 64), e, m, n + 32 * j);
  for (; j < np && cols > 32 * j; ++j) {
    const int cj = std::min(cols - 32 * j, 32);
    // A 16-column tile takes 6 rows: its 12 accumulators, as 3 x 32 (mr_narrow; ResNet-20 w7a8 at
    // batch 64 under MIXQ_ISA=avx2 on a Zen 4: its 16-channel convs 0.88x the time of 3-row tiles).
    if (cj <= 16) {
      dispatch_mr<6>(mr, [&](auto MR) {
        gemm_s7_u8_avx2<MR.value, 2>(k_steps, a, lda, b + j * b_stride, b_stride, seg_steps, seg_stride, cj, e, m,
                                     n + 32 * j);
      });
      continue;
    }
    dispatch_mr<3>(mr, [&](auto MR) {
      gemm_s7_u8_avx2<MR.value, 4>(k_steps, a, lda, b + j * b_stride, b_stride, seg_steps, seg_stride, cj, e, m,
                                   n + 32 * j);
    });
  }
}

}  // namespace mixq
