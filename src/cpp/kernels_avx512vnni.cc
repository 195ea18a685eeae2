// AVX-512 VNNI int8 micro-kernel: vpdpbusd (u8 x s8, 4-way dot, non-saturating) on a 12x32 tile:
// 24 zmm accumulators, 2 zmm of B per 4-deep k step, A broadcast 4 bytes per row.
#include <immintrin.h>

#include "kernel_util.h"
#include "kernels.h"
#include "peak.h"

namespace mixq {
namespace {

template <int MR>
void gemm_vnni(int64_t k_steps, const uint8_t* a, const int8_t* b, int32_t* c, int64_t ldc, bool accumulate) {
  __m512i c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_si512();
  for (int64_t p = 0; p < k_steps; ++p) {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi32(load_i32(a + 4 * i));
      c0[i] = _mm512_dpbusd_epi32(c0[i], ai, b0);
      c1[i] = _mm512_dpbusd_epi32(c1[i], ai, b1);
    }
    a += 4 * MR;
    b += 128;
  }
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    int32_t* row = c + i * ldc;
    if (accumulate) {
      c0[i] = _mm512_add_epi32(c0[i], _mm512_loadu_si512(row));
      c1[i] = _mm512_add_epi32(c1[i], _mm512_loadu_si512(row + 16));
    }
    _mm512_storeu_si512(row, c0[i]);
    _mm512_storeu_si512(row + 16, c1[i]);
  }
}

}  // namespace

void u8s8s32_gemm_12x32c4__avx512vnni(int mr, int64_t k_steps, const uint8_t* a, const int8_t* b, int32_t* c,
                                      int64_t ldc, bool accumulate) {
  dispatch_mr<12>(mr, [&](auto MR) { gemm_vnni<MR.value>(k_steps, a, b, c, ldc, accumulate); });
}

// 16 independent vpdpbusd chains: the int8 compute roof of one core.
int64_t peak_loop_int8_avx512vnni(int64_t iters) {
  const __m512i x = _mm512_set1_epi32(0x01010101), y = _mm512_set1_epi32(0x01020304);
  __m512i a0 = _mm512_set1_epi32(0);
  __m512i a1 = _mm512_set1_epi32(1);
  __m512i a2 = _mm512_set1_epi32(2);
  __m512i a3 = _mm512_set1_epi32(3);
  __m512i a4 = _mm512_set1_epi32(4);
  __m512i a5 = _mm512_set1_epi32(5);
  __m512i a6 = _mm512_set1_epi32(6);
  __m512i a7 = _mm512_set1_epi32(7);
  __m512i a8 = _mm512_set1_epi32(8);
  __m512i a9 = _mm512_set1_epi32(9);
  __m512i a10 = _mm512_set1_epi32(10);
  __m512i a11 = _mm512_set1_epi32(11);
  __m512i a12 = _mm512_set1_epi32(12);
  __m512i a13 = _mm512_set1_epi32(13);
  __m512i a14 = _mm512_set1_epi32(14);
  __m512i a15 = _mm512_set1_epi32(15);
  for (int64_t it = 0; it < iters; ++it) {
    a0 = _mm512_dpbusd_epi32(a0, x, y);
    a1 = _mm512_dpbusd_epi32(a1, x, y);
    a2 = _mm512_dpbusd_epi32(a2, x, y);
    a3 = _mm512_dpbusd_epi32(a3, x, y);
    a4 = _mm512_dpbusd_epi32(a4, x, y);
    a5 = _mm512_dpbusd_epi32(a5, x, y);
    a6 = _mm512_dpbusd_epi32(a6, x, y);
    a7 = _mm512_dpbusd_epi32(a7, x, y);
    a8 = _mm512_dpbusd_epi32(a8, x, y);
    a9 = _mm512_dpbusd_epi32(a9, x, y);
    a10 = _mm512_dpbusd_epi32(a10, x, y);
    a11 = _mm512_dpbusd_epi32(a11, x, y);
    a12 = _mm512_dpbusd_epi32(a12, x, y);
    a13 = _mm512_dpbusd_epi32(a13, x, y);
    a14 = _mm512_dpbusd_epi32(a14, x, y);
    a15 = _mm512_dpbusd_epi32(a15, x, y);
  }
  __m512i s = a0;
  s = _mm512_add_epi32(s, a1);
  s = _mm512_add_epi32(s, a2);
  s = _mm512_add_epi32(s, a3);
  s = _mm512_add_epi32(s, a4);
  s = _mm512_add_epi32(s, a5);
  s = _mm512_add_epi32(s, a6);
  s = _mm512_add_epi32(s, a7);
  s = _mm512_add_epi32(s, a8);
  s = _mm512_add_epi32(s, a9);
  s = _mm512_add_epi32(s, a10);
  s = _mm512_add_epi32(s, a11);
  s = _mm512_add_epi32(s, a12);
  s = _mm512_add_epi32(s, a13);
  s = _mm512_add_epi32(s, a14);
  s = _mm512_add_epi32(s, a15);
  return _mm512_reduce_add_epi32(s);
}

}  // namespace mixq
