// AVX2 micro-kernels for u4 / u2 group-wise weights with u8 activations (W4A8 / W2A8 on CPUs
// without AVX-512), the same contract as the VNNI ones (LowBitArgs): an exact int32 dot product
// per group, folded into the fp32 output tile at the group's end.
//
// Why vpmaddubsw is exact here: it multiplies u8 activations by s8 operands and adds pairs into
// saturating int16. With int8 weights a pair reaches 2 * 255 * 127 > 32767 (why the int8 AVX2
// kernel widens to int16 and uses vpmaddwd), but codes are at most 15 (u4) or 3 (u2): a pair is at
// most 2 * 255 * 15 = 7650, so four of them (four k steps) still fit in int16 (30600) before one
// vpmaddwd by ones widens them to int32. That is 1.25 multiplies per 32 MACs where the int8 kernel
// needs 2: on these CPUs low-bit weights are cheaper to compute with, not only to stream.
//
// Each iteration takes 4 k steps: two 128-byte units of u4 codes (low and high nibbles) or one unit
// of u2 codes (four 2-bit fields). Tiles: MR rows x CH chunks of 8 columns (MR * CH <= 8 int32
// accumulators); the fp32 tile lives in C (L1), updated once per group.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2/kernel_util_avx2.h"
#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// The 4 k steps' codes of 8 columns (chunk ch) at byte offset `unit` of a group block, as 4
// vectors of bytes 0..15 (or 0..3): step s of the iteration in v[s].
template <int BITS>
inline void load_codes(const uint8_t* unit, int ch, __m256i v[4]) {
  const __m256i mask = _mm256_set1_epi8(char((1 << BITS) - 1));
  if constexpr (BITS == 4) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(unit + 32 * ch));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(unit + 128 + 32 * ch));
    v[0] = _mm256_and_si256(x0, mask), v[1] = _mm256_and_si256(_mm256_srli_epi16(x0, 4), mask);
    v[2] = _mm256_and_si256(x1, mask), v[3] = _mm256_and_si256(_mm256_srli_epi16(x1, 4), mask);
  } else {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(unit + 32 * ch));
    v[0] = _mm256_and_si256(x, mask), v[1] = _mm256_and_si256(_mm256_srli_epi16(x, 2), mask);
    v[2] = _mm256_and_si256(_mm256_srli_epi16(x, 4), mask), v[3] = _mm256_and_si256(_mm256_srli_epi16(x, 6), mask);
  }
}

inline __m256i broadcast4(const uint8_t* p) { return _mm256_set1_epi32(load_i32(p)); }

// MR rows x CH chunks of 8 columns, starting at chunk c0, of NP panels side by side (NP > 1 for
// decode: more DRAM streams in flight per core).
template <int BITS, int MR, int NP, int CH>
void lowbit_tile(int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b, int64_t b_stride, int c0,
                 const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  constexpr int U = 8 / BITS, V = NP * CH;  // V: chunks of 8 columns in the tile
  const int64_t G = t.group_steps, codes_bytes = G / U * 128;
  const __m256i ones = _mm256_set1_epi16(1);
  // Chunk v: panel v / CH, chunk c0 + v % CH of it; its 8 columns in C.
  const auto out = [&](int i, int v) { return c + i * ldc + 32 * (v / CH) + 8 * (v % CH); };
  if (!accumulate)
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < V; ++v) _mm256_storeu_ps(out(i, v), _mm256_setzero_ps());
  for (int64_t g0 = 0, g = 0; g0 < k_steps; g0 += G, ++g) {
    const uint8_t* block = b + g * (codes_bytes + 96);  // group g of the first panel
    __m256i acc[MR][V];
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < V; ++v) acc[i][v] = _mm256_setzero_si256();
    const uint8_t* ag = a + 4 * g0;
    // Skips the padding of a partial last group (K = 576 at group 128: 10 % of the steps).
    const int64_t steps = std::min(G, t.valid_steps - g0);
    for (int64_t p = 0; p < steps; p += 4) {
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        __m256i w[4];
        load_codes<BITS>(block + (v / CH) * b_stride + p / U * 128, c0 + v % CH, w);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const uint8_t* ai = ag + i * lda + 4 * p;
          __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(broadcast4(ai), w[0]),
                                       _mm256_maddubs_epi16(broadcast4(ai + 4), w[1]));
          s = _mm256_add_epi16(s, _mm256_add_epi16(_mm256_maddubs_epi16(broadcast4(ai + 8), w[2]),
                                                   _mm256_maddubs_epi16(broadcast4(ai + 12), w[3])));
          acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(s, ones));
        }
      }
    }
    // c += scale * dot - scale * zero_point * rowsum_g: bf16 scales, then u8 zero points.
    for (int v = 0; v < V; ++v) {
      const uint8_t* tail = block + (v / CH) * b_stride + codes_bytes;
      const int col = 8 * (c0 + v % CH);
      __m256 scale, sz;
      group_scales8(tail, col, scale, sz);
      for (int i = 0; i < MR; ++i) {
        __m256 f = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(acc[i][v]), _mm256_loadu_ps(out(i, v)));
        f = _mm256_fnmadd_ps(sz, _mm256_set1_ps(t.rowsum[i * t.ld_rowsum + g]), f);
        _mm256_storeu_ps(out(i, v), f);
      }
    }
  }
}

// One row: two panels side by side (8 accumulators), two rows: a whole panel, 3-4 rows: halves.
template <int BITS>
void lowbit_avx2(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b, int64_t b_stride,
                 const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  int j = 0;
  if (mr == 1)
    for (; j + 2 <= np; j += 2)
      lowbit_tile<BITS, 1, 2, 4>(k_steps, a, lda, b + j * b_stride, b_stride, 0, t, c + 32 * j, ldc, accumulate);
  for (; j < np; ++j) {
    const uint8_t* panel = b + j * b_stride;
    float* cj = c + 32 * j;
    panel_tiles_8acc(mr, [&](auto MR, auto CH, int c0) {
      lowbit_tile<BITS, MR.value, 1, CH.value>(k_steps, a, lda, panel, b_stride, c0, t, cj + 8 * c0, ldc, accumulate);
    });
  }
}

}  // namespace

void u8u4f32_gemm_4x32__avx2(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                             int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  lowbit_avx2<4>(mr, np, k_steps, a, lda, b, b_stride, t, c, ldc, accumulate);
}

void u8u2f32_gemm_4x32__avx2(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                             int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  lowbit_avx2<2>(mr, np, k_steps, a, lda, b, b_stride, t, c, ldc, accumulate);
}

}  // namespace mixq
