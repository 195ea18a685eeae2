// AVX-512 VNNI micro-kernels for u4 / u2 group-wise weights: codes are unpacked in registers
// (shift + mask, 8/bits k steps per loaded byte), multiplied with vpdpbusd into int32 group
// accumulators, and folded into fp32 accumulators at each group end (see LowBitArgs).
// Tile 6x32 (12 int32 + 12 fp32 accumulators in registers), 4 panels of 32 columns per call
// (measured faster than one: the 6 activation rows stay in L1 across them); for decode (1-2 rows)
// the 4 panels stream side by side (2-bit codes for one row: gemm_u2_decode, fewer ops per byte).
// Codes and the bf16 scales that follow each group's codes come from one sequential stream (GEMV
// runs at DRAM bandwidth).
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx512/kernel_util_avx512.h"
#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// At a group's end, b is at the group's 32 bf16 scales, then 32 u8 zero points (per panel): the
// scales s of columns [16 v, 16 v + 16) of the call (panel v / 2) and z = scale * zero point.
inline void group_scales(const uint8_t* b, int64_t b_stride, int v, __m512& s, __m512& z) {
  const uint8_t* tail = b + (v / 2) * b_stride + (v % 2) * 32;
  s = load_bf16x16(tail);
  z = _mm512_mul_ps(s, load_u8x16(tail + 64 - (v % 2) * 16));
}

// MR rows x NP panels of 32 columns. NP > 1 only for few rows (decode): several panels stream
// side by side, which keeps more DRAM requests in flight per core.
template <int BITS, int MR, int NP>
void gemm_lowbit(int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b, int64_t b_stride,
                 const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  constexpr int U = 8 / BITS, V = 2 * NP;  // U: k steps per unit of 128 bytes; V: zmm of columns
  const __m512i mask = _mm512_set1_epi8(char((1 << BITS) - 1));
  __m512 f[MR][V];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) f[i][v] = accumulate ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();
  const int64_t G = t.group_steps;
  for (int64_t g0 = 0, g = 0; g0 < k_steps; g0 += G, ++g) {
    __m512i acc[MR][V];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[i][v] = _mm512_setzero_si512();
    for (int64_t p = 0; p < G; p += U) {
      __m512i x[V];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) x[v] = _mm512_loadu_si512(b + (v / 2) * b_stride + (v % 2) * 64);
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) {
        __m512i ai[MR];
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) ai[i] = _mm512_set1_epi32(load_i32(a + i * lda + 4 * u));
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) {
          const __m512i bu = _mm512_and_si512(_mm512_srli_epi16(x[v], u * BITS), mask);
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], ai[i], bu);
        }
      }
      a += 4 * U;
      b += 128;
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      __m512 s, z;
      group_scales(b, b_stride, v, s, z);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512 rs = _mm512_set1_ps(t.rowsum[i * t.ld_rowsum + g]);
        f[i][v] = _mm512_fnmadd_ps(z, rs, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][v]), s, f[i][v]));
      }
    }
    b += 96;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, f[i][v]);
}

// 2-bit decode of one row: a code byte holds 4 k steps at bits 0, 2, 4, 6. One shift serves two
// of them: with y = x >> 2, steps 0 and 1 are x & 3 and y & 3; steps 2 and 3 are x & 0x30 and
// y & 0x30, which is 16 * code, summed in a second accumulator that is divided by 16 (exactly) at
// the group's end (int32 holds it for groups up to 350 000 k). 9 vector ops per 64 bytes of codes
// instead of 12; W2 GEMV from DRAM at 4096 and 11008 x 4096 3-6 % faster (interleaved A/B). The
// fp32 sums live in c (touched once per group), which leaves the registers to the 2 * V
// accumulators. Not inlined: inside the dispatcher GCC 12 spilled the accumulators to the stack.
// (For 2 rows the same scheme, 2 panels wide to fit the registers, measured 6 % slower than
// gemm_lowbit, which stays.)
template <int NP>
__attribute__((noinline)) void gemm_u2_decode(int64_t k_steps, const uint8_t* a, const uint8_t* b, int64_t b_stride,
                                              const LowBitArgs& t, float* c, bool accumulate) {
  constexpr int V = 2 * NP;
  const __m512i m_lo = _mm512_set1_epi8(0x03), m_hi = _mm512_set1_epi8(0x30);
  if (!accumulate)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(c + 16 * v, _mm512_setzero_ps());
  const int64_t G = t.group_steps;
  for (int64_t g0 = 0, g = 0; g0 < k_steps; g0 += G, ++g) {
    __m512i lo[V], hi[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) lo[v] = hi[v] = _mm512_setzero_si512();
    for (int64_t p = 0; p < G; p += 4) {
      __m512i ai[4];
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) ai[u] = _mm512_set1_epi32(load_i32(a + 4 * u));
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        const __m512i x = _mm512_loadu_si512(b + (v / 2) * b_stride + (v % 2) * 64);
        const __m512i y = _mm512_srli_epi16(x, 2);
        dpbusd_in_place(lo[v], ai[0], _mm512_and_si512(x, m_lo));
        dpbusd_in_place(lo[v], ai[1], _mm512_and_si512(y, m_lo));
        dpbusd_in_place(hi[v], ai[2], _mm512_and_si512(x, m_hi));
        dpbusd_in_place(hi[v], ai[3], _mm512_and_si512(y, m_hi));
      }
      a += 16;
      b += 128;
    }
    const __m512 rs = _mm512_set1_ps(t.rowsum[g]);
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      __m512 s, z;
      group_scales(b, b_stride, v, s, z);
      const __m512i acc = _mm512_add_epi32(lo[v], _mm512_srai_epi32(hi[v], 4));
      float* dst = c + 16 * v;
      _mm512_storeu_ps(dst, _mm512_fnmadd_ps(z, rs, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, _mm512_loadu_ps(dst))));
    }
    b += 96;
  }
}

template <int BITS>
void gemm_lowbit_panels(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                        int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  if constexpr (BITS == 2) {
    if (mr == 1) {  // decode of one row: up to 4 panels at once
      for (int j = 0; j < np; j += 4)
        dispatch_mr<4>(std::min(4, np - j), [&](auto NP) {
          gemm_u2_decode<NP.value>(k_steps, a, b + j * b_stride, b_stride, t, c + 32 * j, accumulate);
        });
      return;
    }
  }
  if (mr <= 2) {  // decode: up to 4 panels at once
    for (int j = 0; j < np; j += 4) {
      const uint8_t* bj = b + j * b_stride;
      float* cj = c + 32 * j;
      dispatch_mr<2>(mr, [&](auto MR) {
        dispatch_mr<4>(std::min(4, np - j), [&](auto NP) {
          gemm_lowbit<BITS, MR.value, NP.value>(k_steps, a, lda, bj, b_stride, t, cj, ldc, accumulate);
        });
      });
    }
    return;
  }
  for_each_panel<6>(mr, np, [&](auto MR, int j) {
    gemm_lowbit<BITS, MR.value, 1>(k_steps, a, lda, b + j * b_stride, b_stride, t, c + 32 * j, ldc, accumulate);
  });
}

}  // namespace

void u8u4f32_gemm_6x128__avx512vnni(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                                   int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  gemm_lowbit_panels<4>(mr, np, k_steps, a, lda, b, b_stride, t, c, ldc, accumulate);
}

void u8u2f32_gemm_6x128__avx512vnni(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                                   int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  gemm_lowbit_panels<2>(mr, np, k_steps, a, lda, b, b_stride, t, c, ldc, accumulate);
}

}  // namespace mixq
