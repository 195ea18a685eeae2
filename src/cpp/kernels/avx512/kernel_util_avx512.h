// Conversions and the in-place vpdpbusd shared by AVX-512 translation units (internal linkage;
// include only from them).
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

// acc += dot4(a, b) in place. With the intrinsic, GCC 12 gave each accumulator a copy in and out
// of a scratch register around every vpdpbusd in the groupwise loop (24 moves per 12 vpdpbusd): the
// kernel ran at ~0.8x the int8 one; tying the operand in asm keeps each accumulator in its register.
inline __attribute__((always_inline)) void dpbusd_in_place(__m512i& acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

// 16 u8 values -> fp32.
inline __m512 load_u8x16(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

}  // namespace
}  // namespace mixq
