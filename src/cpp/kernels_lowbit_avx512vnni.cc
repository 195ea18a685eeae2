// AVX-512 VNNI micro-kernels for u4 / u2 group-wise weights: codes are unpacked in registers
// (shift + mask, 8/bits k steps per loaded byte), multiplied with vpdpbusd into int32 group
// accumulators, and folded into fp32 accumulators at each group end (see LowBitArgs).
// Tile 6x32: 12 int32 + 12 fp32 accumulators stay in registers.
#include <immintrin.h>

#include "kernel_util.h"
#include "kernels.h"

namespace mixq {
namespace {

template <int BITS, int MR>
void gemm_lowbit(int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b, const LowBitArgs& t,
                 const float* scale, const float* scale_zp, float* c, int64_t ldc, bool accumulate) {
  constexpr int U = 8 / BITS;  // k steps per unit of 128 bytes
  const __m512i mask = _mm512_set1_epi8(char((1 << BITS) - 1));
  __m512 f[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 2; ++v) f[i][v] = accumulate ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();
  const int64_t G = t.group_steps;
  for (int64_t g0 = 0, g = 0; g0 < k_steps; g0 += G, ++g) {
    __m512i acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    for (int64_t p = 0; p < G; p += U) {
      const __m512i x0 = _mm512_loadu_si512(b), x1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) {
        const __m512i b0 = _mm512_and_si512(_mm512_srli_epi16(x0, u * BITS), mask);
        const __m512i b1 = _mm512_and_si512(_mm512_srli_epi16(x1, u * BITS), mask);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
          const __m512i ai = _mm512_set1_epi32(load_i32(a + i * lda + 4 * u));
          acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], ai, b0);
          acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], ai, b1);
        }
      }
      a += 4 * U;
      b += 128;
    }
    const float* s = scale + g * t.ld_scale;
    const float* sz = scale_zp + g * t.ld_scale;
    const __m512 s0 = _mm512_loadu_ps(s), s1 = _mm512_loadu_ps(s + 16);
    const __m512 z0 = _mm512_loadu_ps(sz), z1 = _mm512_loadu_ps(sz + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 rs = _mm512_set1_ps(t.rowsum[i * t.ld_rowsum + g]);
      f[i][0] = _mm512_fnmadd_ps(z0, rs, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][0]), s0, f[i][0]));
      f[i][1] = _mm512_fnmadd_ps(z1, rs, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][1]), s1, f[i][1]));
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(c + i * ldc, f[i][0]);
    _mm512_storeu_ps(c + i * ldc + 16, f[i][1]);
  }
}

template <int BITS>
void gemm_lowbit_panels(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                        int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  for_each_panel<6>(mr, np, [&](auto MR, int j) {
    gemm_lowbit<BITS, MR.value>(k_steps, a, lda, b + j * b_stride, t, t.scale + 32 * j, t.scale_zp + 32 * j,
                                c + 32 * j, ldc, accumulate);
  });
}

}  // namespace

void u8u4f32_gemm_6x32__avx512vnni(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                                   int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  gemm_lowbit_panels<4>(mr, np, k_steps, a, lda, b, b_stride, t, c, ldc, accumulate);
}

void u8u2f32_gemm_6x32__avx512vnni(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                                   int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  gemm_lowbit_panels<2>(mr, np, k_steps, a, lda, b, b_stride, t, c, ldc, accumulate);
}

}  // namespace mixq
