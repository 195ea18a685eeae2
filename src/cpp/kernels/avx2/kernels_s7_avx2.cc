// AVX2 int8 GEMM on narrow weights (kind s7): codes in [-64, 64], u8 activations, exact.
// vpmaddubsw multiplies 32 u8 x s8 byte pairs and adds neighbours into int16 with saturation; with
// |code| <= 64 a pair is at most 2 * 255 * 64 = 32640 < 2^15, so it never saturates and the sum
// is exact. vpmaddwd by ones then adds the pairs (k0+k1, k2+k3) of each column into int32. That is
// 32 multiply-adds per two multiply instructions, twice the exact vpmaddwd path's 16 (kind s8 at
// this level). The driver hands this kernel only weights whose packing found every code in range
// (PackedWeight::narrow_codes); full-range codes would saturate silently.
#include <immintrin.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// MR rows x V chunks of 8 columns (chunk v: panel v / 4, its chunk v % 4). Per row and step, the 4
// activations are one broadcast 32-bit word; B chunks are read as memory operands of vpmaddubsw,
// so 12 accumulators (3 x 32) fit beside the broadcast, a product and the ones.
template <int MR, int V>
void gemm_s7_tile_avx2(int64_t k_steps, const uint8_t* a0, int64_t lda, const int8_t* b0, int64_t b_stride, int32_t* c,
                       int64_t ldc, bool accumulate, int64_t seg_steps, int64_t seg_stride) {
  const __m256i ones = _mm256_set1_epi16(1);
  const auto chunk = [&](int v) { return v / 4 * b_stride + 32 * (v % 4); };
  __m256i acc[MR][V];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[i][v] = _mm256_setzero_si256();
  for_each_k_step(k_steps, seg_steps, seg_stride, [&](int64_t p, int64_t off) {
    const int8_t* bp = b0 + 128 * p;
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256i a4 = _mm256_set1_epi32(load_i32(a0 + i * lda + off));
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + chunk(v)));
        acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(_mm256_maddubs_epi16(a4, x), ones));
      }
    }
  });
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

}  // namespace mixq
