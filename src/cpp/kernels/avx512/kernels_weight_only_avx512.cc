// AVX-512 weight-only low-bit micro-kernel (W4A32 / W2A32): fp32 activations, u4/u2 codes
// dequantized in registers to scale * (code - zero point) and multiplied with FMA. For layers
// whose activations do not tolerate int8; the W4A8 path is faster where they do.
#include <immintrin.h>

#include "kernels/avx512/kernel_util_avx512.h"
#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

template <int BITS, int MR>
void gemm_weight_only(int64_t k_steps, const float* a, int64_t lda, const uint8_t* b, int64_t G, float* c,
                      int64_t ldc, bool accumulate) {
  constexpr int U = 8 / BITS;
  const __m512i mask = _mm512_set1_epi32((1 << BITS) - 1);
  const int64_t codes_bytes = G / U * 128;
  __m512 acc[MR][2];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 2; ++v) acc[i][v] = accumulate ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();
  for (int64_t g0 = 0; g0 < k_steps; g0 += G) {
    // The group's scales and zero points follow its codes.
    const uint8_t* tail = b + codes_bytes;
    const __m512 s0 = load_bf16x16(tail), s1 = load_bf16x16(tail + 32);
    const __m512 z0 = _mm512_mul_ps(s0, load_u8x16(tail + 64)), z1 = _mm512_mul_ps(s1, load_u8x16(tail + 80));
    for (int64_t p = 0; p < G; p += U) {
      const __m512i x0 = _mm512_loadu_si512(b), x1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u)
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) {  // k = 4 * (p + u) + t: byte t of each column, bits of step u
          const int shift = 8 * t + BITS * u;
          const __m512 w0 = _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(x0, shift), mask)), s0, z0);
          const __m512 w1 = _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(x1, shift), mask)), s1, z1);
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i * lda + 4 * u + t]);
            acc[i][0] = _mm512_fmadd_ps(ai, w0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, w1, acc[i][1]);
          }
        }
      a += 4 * U;
      b += 128;
    }
    b += 96;
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 2; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);
}

}  // namespace

void f32u4f32_gemm_4x32__avx512(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const uint8_t* b,
                                int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  for_each_panel<4>(mr, np, [&](auto MR, int j) {
    gemm_weight_only<4, MR.value>(k_steps, a, lda, b + j * b_stride, group_steps, c + 32 * j, ldc, accumulate);
  });
}

void f32u2f32_gemm_4x32__avx512(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const uint8_t* b,
                                int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  for_each_panel<4>(mr, np, [&](auto MR, int j) {
    gemm_weight_only<2, MR.value>(k_steps, a, lda, b + j * b_stride, group_steps, c + 32 * j, ldc, accumulate);
  });
}

}  // namespace mixq
