// AVX-512 BF16 weight-only low-bit micro-kernel (W4A16 / W2A16): bf16 activations, u4/u2 codes
// turned into bf16 values of (code - zero point) in registers, vdpbf16ps into fp32 per group, then
// the group's scales (so the weights are exact; only the activations are rounded to bf16).
//
// The codes of a [32][4] unit are read 8 columns at a time and widened to 16-bit words: word 4j+t
// is column j, k offset t. vdpbf16ps pairs words (2q, 2q+1) of each 32-bit lane, so lane 2j+p of
// a vector holds column j's k offsets 2p, 2p+1, and the activations are broadcast 4 bf16 (64 bits)
// at a time to match. Each column's two lanes are summed when the tile is stored.
#include <immintrin.h>

#include "core/bf16.h"
#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

// bf16 of the 5-bit two's complement value of each index (code - zero point lies in [-15, 15]).
struct SignedNibbleTable {
  uint16_t v[32];
  SignedNibbleTable() {
    for (int i = 0; i < 32; ++i) v[i] = float_to_bf16(float(i < 16 ? i : i - 32));
  }
};

// 8 u8 values -> each repeated in the 4 words of its 64-bit lane.
inline __m512i words_x4(const uint8_t* p) {
  const __m512i q = _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m512i q2 = _mm512_or_si512(q, _mm512_slli_epi64(q, 16));
  return _mm512_or_si512(q2, _mm512_slli_epi64(q2, 32));
}

// 8 bf16 scales -> fp32, each in the 2 lanes of its 64-bit lane.
inline __m512 scales_x2(const uint8_t* p) {
  const __m512i h = _mm512_cvtepu16_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_slli_epi64(h, 16), _mm512_slli_epi64(h, 48)));
}

template <int MR>
inline void zero_tile(__m512 (&t)[MR][4]) {
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) t[i][v] = _mm512_setzero_ps();
}

template <int BITS, int MR>
void gemm_w_bf16(int64_t k_steps, const uint16_t* a, int64_t lda, const uint8_t* b, int64_t G, float* c,
                 int64_t ldc, bool accumulate) {
  constexpr int U = 8 / BITS;
  static const SignedNibbleTable kTable;
  const __m512i table = _mm512_loadu_si512(kTable.v), mask = _mm512_set1_epi16((1 << BITS) - 1);
  const int64_t code_bytes = G / U * 128;
  __m512 f[MR][4], acc[MR][4];
  zero_tile<MR>(f);
  for (int64_t g0 = 0; g0 < k_steps; g0 += G) {
    const uint8_t* tail = b + code_bytes;  // 32 bf16 scales, then 32 u8 zero points
    __m512i zw[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) zw[v] = words_x4(tail + 64 + 8 * v);
    zero_tile<MR>(acc);
    for (int64_t p = 0; p < G; p += U) {
      __m512i ai[MR][U];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int s = 0; s < U; ++s) {
          int64_t four;
          std::memcpy(&four, a + i * lda + 4 * s, 8);
          ai[i][s] = _mm512_set1_epi64(four);
        }
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        const __m512i x = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 * v)));
#pragma GCC unroll 4
        for (int s = 0; s < U; ++s) {
          const __m512i code = _mm512_and_si512(_mm512_srli_epi16(x, s * BITS), mask);
          const __m512bh w = as_bh(_mm512_permutexvar_epi16(_mm512_sub_epi16(code, zw[v]), table));
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], as_bh(ai[i][s]), w);
        }
      }
      a += 4 * U;
      b += 128;
    }
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      const __m512 s = scales_x2(tail + 16 * v);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) f[i][v] = _mm512_fmadd_ps(acc[i][v], s, f[i][v]);
    }
    b = tail + 96;
  }
  // Lanes (2j, 2j+1) of vectors (2h, 2h+1) -> columns 16h + j and 16h + 8 + j.
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      float* dst = c + i * ldc + 16 * h;
      __m512 y = _mm512_add_ps(_mm512_permutex2var_ps(f[i][2 * h], even, f[i][2 * h + 1]),
                               _mm512_permutex2var_ps(f[i][2 * h], odd, f[i][2 * h + 1]));
      if (accumulate) y = _mm512_add_ps(y, _mm512_loadu_ps(dst));
      _mm512_storeu_ps(dst, y);
    }
}

}  // namespace

void bf16u4f32_gemm_2x32__avx512bf16(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda,
                                     const uint8_t* b, int64_t b_stride, int64_t group_steps, float* c, int64_t ldc,
                                     bool accumulate) {
  for_each_panel<2>(mr, np, [&](auto MR, int j) {
    gemm_w_bf16<4, MR.value>(k_steps, a, lda, b + j * b_stride, group_steps, c + 32 * j, ldc, accumulate);
  });
}

void bf16u2f32_gemm_2x32__avx512bf16(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda,
                                     const uint8_t* b, int64_t b_stride, int64_t group_steps, float* c, int64_t ldc,
                                     bool accumulate) {
  for_each_panel<2>(mr, np, [&](auto MR, int j) {
    gemm_w_bf16<2, MR.value>(k_steps, a, lda, b + j * b_stride, group_steps, c + 32 * j, ldc, accumulate);
  });
}

}  // namespace mixq
