// AVX-512 unpacking of low-bit group blocks into the groupwise kernels' s8 layout (see
// unpack_lowbit_s8_bits in ops_impl.h for the layout; this is the same function, hand-vectorized:
// the compiler's version of the byte shifts and the per-column zero points ran 3x slower).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx512/kernel_util_avx512.h"

namespace mixq {
namespace {

// 16 u8 zero points -> each repeated over the 4 bytes of its column in the [32][4] layout.
inline __m512i column_bytes_x16(const uint8_t* p) {
  return _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
                            _mm512_set1_epi32(0x01010101));
}

template <int BITS>
void unpack_lowbit_s8_avx512(const uint8_t* blocks, int64_t group_steps, int64_t n_groups, int8_t* dst) {
  constexpr int U = 8 / BITS;
  const __m512i mask = _mm512_set1_epi8(char((1 << BITS) - 1));
  const int64_t code_bytes = group_steps / U * 128;
  for (int64_t g = 0; g < n_groups; ++g) {
    const uint8_t* tail = blocks + code_bytes;  // 32 bf16 scales, then 32 u8 zero points
    const __m512i z0 = column_bytes_x16(tail + 64), z1 = column_bytes_x16(tail + 80);
    for (int64_t unit = 0; unit < group_steps / U; ++unit) {
      const __m512i x0 = _mm512_loadu_si512(blocks + unit * 128), x1 = _mm512_loadu_si512(blocks + unit * 128 + 64);
#pragma GCC unroll 4
      for (int s = 0; s < U; ++s) {
        int8_t* out = dst + (unit * U + s) * 128;
        _mm512_storeu_si512(out, _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(x0, s * BITS), mask), z0));
        _mm512_storeu_si512(out + 64, _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(x1, s * BITS), mask), z1));
      }
    }
    float* scales = reinterpret_cast<float*>(dst + group_steps * 128);
    _mm512_storeu_ps(scales, load_bf16x16(tail));
    _mm512_storeu_ps(scales + 16, load_bf16x16(tail + 32));
    blocks += code_bytes + 96;
    dst += group_steps * 128 + 128;
  }
}

}  // namespace
}  // namespace mixq
