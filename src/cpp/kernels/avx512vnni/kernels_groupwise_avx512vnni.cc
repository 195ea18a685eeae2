// AVX-512 VNNI groupwise micro-kernel: u8 activations x s8 codes (low-bit weights unpacked once per
// block, zero points already subtracted), an int32 dot product per group by vpdpbusd alone, folded
// into fp32 accumulators with the group's scales at its end. Tile 6x32: 12 int32 + 12 fp32
// accumulators in registers; the np panels of a call run one after another on the same 6 rows,
// which stay in L1. k_steps may end inside the last group (K not a multiple of the group size):
// its padding is skipped, not multiplied.
#include <immintrin.h>

#include "kernels/avx512/kernel_util_avx512.h"
#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

template <int MR>
void gemm_groupwise(int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b, int64_t G, float* c,
                    int64_t ldc, bool accumulate) {
  __m512 f[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 2; ++v) f[i][v] = accumulate ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();
  for (int64_t g0 = 0; g0 < k_steps; g0 += G) {
    __m512i acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    const int64_t steps = G < k_steps - g0 ? G : k_steps - g0;  // a last group cut short at K
    for (int64_t p = 0; p < steps; ++p) {
      const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512i ai = _mm512_set1_epi32(load_i32(a + i * lda));
        dpbusd_in_place(acc[i][0], ai, b0);
        dpbusd_in_place(acc[i][1], ai, b1);
      }
      a += 4;
      b += 128;
    }
    b += (G - steps) * 128;  // at the group's 32 fp32 scales
    const __m512 s0 = _mm512_loadu_ps(b), s1 = _mm512_loadu_ps(b + 64);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      f[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][0]), s0, f[i][0]);
      f[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][1]), s1, f[i][1]);
    }
    b += 128;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 2; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, f[i][v]);
}

}  // namespace

void u8s8f32_groupwise_gemm_6x128c4__avx512vnni(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda,
                                                const int8_t* b, int64_t b_stride, int64_t group_steps, float* c,
                                                int64_t ldc, bool accumulate) {
  for_each_panel<6>(mr, np, [&](auto MR, int j) {
    gemm_groupwise<MR.value>(k_steps, a, lda, b + j * b_stride, group_steps, c + 32 * j, ldc, accumulate);
  });
}

}  // namespace mixq
