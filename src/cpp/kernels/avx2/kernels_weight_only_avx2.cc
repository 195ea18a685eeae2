// AVX2 weight-only low-bit micro-kernels (W4A32 / W2A32) for CPUs without AVX-512: fp32
// activations times u4/u2 codes converted to fp32 in registers. Per group the kernel sums
// a * code in fp32 and folds scale and zero point once at the group's end:
//   c += scale * sum(a * code) - scale * zero_point * sum(a)
// (one conversion and one FMA per 8 codes instead of a dequantization FMA more; the zero point's
// term rounds like any other fp32 sum: within the tests' 1e-5 of sum |a| |w|).
// Tiles: MR rows x CH chunks of 8 columns (MR * CH <= 8 accumulators), one panel at a time.
// W4A16 / W2A16 (bf16 activations, no AVX512-BF16 here): the call's bf16 rows are widened to fp32
// (exact) and the same kernel runs on them.
#include <immintrin.h>

#include <vector>

#include "kernels/avx2/kernel_util_avx2.h"
#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

inline float sum_floats(const float* x, int64_t n) {  // n is a multiple of 8 (whole groups)
  __m256 s = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + i));
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

template <int BITS, int MR, int CH>
void weight_only_tile(int64_t k_steps, const float* a, int64_t lda, const uint8_t* panel, int c0, int64_t G,
                      float* c, int64_t ldc, bool accumulate) {
  constexpr int U = 8 / BITS;
  const __m256i mask = _mm256_set1_epi32((1 << BITS) - 1);
  const int64_t codes_bytes = G / U * 128;
  if (!accumulate)
    for (int i = 0; i < MR; ++i)
      for (int ch = 0; ch < CH; ++ch) _mm256_storeu_ps(c + i * ldc + 8 * ch, _mm256_setzero_ps());
  const uint8_t* block = panel;
  for (int64_t g0 = 0; g0 < k_steps; g0 += G, block += codes_bytes + 96) {
    __m256 acc[MR][CH];
    for (int i = 0; i < MR; ++i)
      for (int ch = 0; ch < CH; ++ch) acc[i][ch] = _mm256_setzero_ps();
    const float* ag = a + 4 * g0;
    for (int64_t p = 0; p < G; p += U) {
      const uint8_t* unit = block + p / U * 128;
#pragma GCC unroll 4
      for (int ch = 0; ch < CH; ++ch) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(unit + 32 * (c0 + ch)));
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u)
#pragma GCC unroll 4
          for (int t = 0; t < 4; ++t) {  // k = 4 * (p + u) + t: byte t of each column, bits of step u
            const __m256 w = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(x, 8 * t + BITS * u), mask));
#pragma GCC unroll 4
            for (int i = 0; i < MR; ++i)
              acc[i][ch] = _mm256_fmadd_ps(_mm256_broadcast_ss(ag + i * lda + 4 * (p + u) + t), w, acc[i][ch]);
          }
      }
    }
    float row_sum[MR];
    for (int i = 0; i < MR; ++i) row_sum[i] = sum_floats(ag + i * lda, 4 * G);
    for (int ch = 0; ch < CH; ++ch) {
      const int col = 8 * (c0 + ch);
      __m256 scale, sz;
      group_scales8(block + codes_bytes, col, scale, sz);
      for (int i = 0; i < MR; ++i) {
        float* ci = c + i * ldc + 8 * ch;
        __m256 f = _mm256_fmadd_ps(scale, acc[i][ch], _mm256_loadu_ps(ci));
        _mm256_storeu_ps(ci, _mm256_fnmadd_ps(sz, _mm256_set1_ps(row_sum[i]), f));
      }
    }
  }
}

template <int BITS>
void weight_only_avx2(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const uint8_t* b,
                      int64_t b_stride, int64_t G, float* c, int64_t ldc, bool accumulate) {
  for (int j = 0; j < np; ++j) {
    const uint8_t* panel = b + j * b_stride;
    float* cj = c + 32 * j;
    panel_tiles_8acc(mr, [&](auto MR, auto CH, int c0) {
      weight_only_tile<BITS, MR.value, CH.value>(k_steps, a, lda, panel, c0, G, cj + 8 * c0, ldc, accumulate);
    });
  }
}

template <int BITS>
void weight_only_bf16_avx2(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint8_t* b,
                           int64_t b_stride, int64_t G, float* c, int64_t ldc, bool accumulate) {
  thread_local std::vector<float> rows;  // the call's rows in fp32, reused across calls
  const int64_t k = 4 * k_steps;         // a multiple of 16 (whole groups)
  rows.resize(size_t(mr * k));
  for (int r = 0; r < mr; ++r)
    for (int64_t i = 0; i < k; i += 8) {
      _mm256_storeu_ps(rows.data() + r * k + i, bf16x8_to_fp32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + r * lda + i))));
    }
  weight_only_avx2<BITS>(mr, np, k_steps, rows.data(), k, b, b_stride, G, c, ldc, accumulate);
}

}  // namespace

void bf16u4f32_gemm_4x32__avx2(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint8_t* b,
                               int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  weight_only_bf16_avx2<4>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate);
}

void bf16u2f32_gemm_4x32__avx2(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint8_t* b,
                               int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  weight_only_bf16_avx2<2>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate);
}

void f32u4f32_gemm_4x32__avx2(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const uint8_t* b,
                              int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  weight_only_avx2<4>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate);
}

void f32u2f32_gemm_4x32__avx2(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const uint8_t* b,
                              int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  weight_only_avx2<2>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate);
}

}  // namespace mixq
