// AVX2 lookup-table GEMV for 2-bit weights (u2lut, lut_gemv_avx2.h) and the u2lut table builder.
// A unit of a panel (128 bytes: 32 columns x 4 lanes q x 4 codes) is 4 vectors of 8 columns; a
// byte shuffle groups each 128-bit lane's bytes by q and a dword permute plus qword unpacks make
// vectors of 16 columns whose lane 0 holds q = 0 (or 2) and lane 1 q = 1 (or 3), so one 32-byte
// load gives each lane its own table. 16 lookups (2 nibbles x 2 planes x 2 vectors x 2 halves)
// replace the 16 vpmaddubsw + 4 vpmaddwd of the u2 kernel.
#include "kernels/avx2/lut_gemv_avx2.h"

namespace mixq {
namespace {

struct LutUnitAvx2 {
  static inline void add(const uint8_t* codes, const uint8_t* tab, LutSums& sums) {
    const __m256i by_q = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9,
                                          13, 2, 6, 10, 14, 3, 7, 11, 15);
    // Lane 0: q0 of both lanes, q2 of both; lane 1: q1, q3.
    const __m256i perm = _mm256_setr_epi32(0, 4, 2, 6, 1, 5, 3, 7);
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    __m256i p[4];
    for (int i = 0; i < 4; ++i)
      p[i] = _mm256_permutevar8x32_epi32(
          _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * i)), by_q), perm);
    const auto table = [&](int h, int plane, int qpair) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tab + 128 * h + 64 * plane + 32 * qpair));
    };
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      const __m256i y[2] = {_mm256_unpacklo_epi64(p[2 * half], p[2 * half + 1]),   // q0 | q1
                            _mm256_unpackhi_epi64(p[2 * half], p[2 * half + 1])};  // q2 | q3
      __m256i s = _mm256_setzero_si256(), h = _mm256_setzero_si256();
#pragma GCC unroll 2
      for (int qp = 0; qp < 2; ++qp) {
        const __m256i lo = _mm256_and_si256(y[qp], m0f), hi = _mm256_and_si256(_mm256_srli_epi16(y[qp], 4), m0f);
        s = _mm256_add_epi8(s, _mm256_add_epi8(_mm256_shuffle_epi8(table(0, 0, qp), lo),
                                               _mm256_shuffle_epi8(table(1, 0, qp), hi)));
        h = _mm256_add_epi8(h, _mm256_add_epi8(_mm256_shuffle_epi8(table(0, 1, qp), lo),
                                               _mm256_shuffle_epi8(table(1, 1, qp), hi)));
      }
      lut_widen(s, h, sums.s_all[half], sums.s_odd[half], sums.h_all[half], sums.h_odd[half]);
    }
  }
};

}  // namespace

void u2lut_tables__avx2(const uint8_t* a, int64_t units, uint8_t* lut) { build_u2_lut(a, units, lut); }

void u8u2f32_lut_gemv_1x256__avx2(int, int np, int64_t k_steps, const uint8_t* a, int64_t, const uint8_t* b,
                                  int64_t b_stride, const LowBitArgs& t, float* c, int64_t, bool accumulate) {
  lut_gemv<LutUnitAvx2>(np, k_steps, a, b, b_stride, t, c, accumulate);
}

}  // namespace mixq
