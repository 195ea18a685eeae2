// AVX-512 lookup-table GEMV for 2-bit weights (u2lut, lut_gemv_avx2.h): a 64-byte vector holds 16
// columns x 4 lanes q; a byte shuffle and one dword permute give each 128-bit lane one q, and one
// 64-byte load gives the four lanes their four tables. 8 lookups per unit and panel; the byte sums
// of the four lanes are folded into the AVX2 unit's int16 layout (lanes q0 + q2, q1 + q3).
#include "kernels/avx2/lut_gemv_avx2.h"

namespace mixq {
namespace {

struct LutUnitAvx512 {
  static inline void add(const uint8_t* codes, const uint8_t* tab, LutSums& sums) {
    const __m512i by_q = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);  // lane q: q
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    const __m512i t[2][2] = {
        {_mm512_loadu_si512(tab), _mm512_loadu_si512(tab + 64)},         // low nibble: planes 0, 1
        {_mm512_loadu_si512(tab + 128), _mm512_loadu_si512(tab + 192)}};  // high nibble
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      const __m512i y = _mm512_permutexvar_epi32(perm, _mm512_shuffle_epi8(_mm512_loadu_si512(codes + 64 * half), by_q));
      const __m512i lo = _mm512_and_si512(y, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(y, 4), m0f);
      // Per byte: two lookups, s <= 2 * 63, h <= 2 * 23; lanes q0 + q2 and q1 + q3 added below.
      const __m512i s = _mm512_add_epi8(_mm512_shuffle_epi8(t[0][0], lo), _mm512_shuffle_epi8(t[1][0], hi));
      const __m512i h = _mm512_add_epi8(_mm512_shuffle_epi8(t[0][1], lo), _mm512_shuffle_epi8(t[1][1], hi));
      lut_widen(_mm256_add_epi8(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1)),
                _mm256_add_epi8(_mm512_castsi512_si256(h), _mm512_extracti64x4_epi64(h, 1)), sums.s_all[half],
                sums.s_odd[half], sums.h_all[half], sums.h_odd[half]);
    }
  }
};

}  // namespace

void u8u2f32_lut_gemv_1x256__avx512(int, int np, int64_t k_steps, const uint8_t* a, int64_t, const uint8_t* b,
                                    int64_t b_stride, const LowBitArgs& t, float* c, int64_t, bool accumulate) {
  lut_gemv<LutUnitAvx512>(np, k_steps, a, b, b_stride, t, c, accumulate);
}

}  // namespace mixq
