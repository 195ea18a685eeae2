// Conversions shared by AVX-512 translation units (internal linkage; include only from them).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace mixq {
namespace {

// 16 bf16 values -> fp32 (a bf16 is the top half of an fp32).
inline __m512 load_bf16x16(const uint8_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// 16 u8 values -> fp32.
inline __m512 load_u8x16(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

}  // namespace
}  // namespace mixq
