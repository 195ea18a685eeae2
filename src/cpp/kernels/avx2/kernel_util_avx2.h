// Conversions shared by the AVX2 low-bit translation units (internal linkage; include only from them).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace mixq {
namespace {

// 8 bf16 values -> fp32 (a bf16 is the top half of an fp32).
inline __m256 bf16x8_to_fp32(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }

// A low-bit group's tail (32 bf16 scales, then 32 u8 zero points): for columns [col, col + 8) the
// scales s and s * zero point.
inline void group_scales8(const uint8_t* tail, int col, __m256& scale, __m256& scale_zp) {
  scale = bf16x8_to_fp32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tail + 2 * col)));
  const __m128i z8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tail + 64 + col));
  scale_zp = _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(z8)));
}

}  // namespace
}  // namespace mixq
