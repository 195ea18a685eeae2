// AVX-512 quantization of float planes to interleaved u8 pixels (IsaOps::quantize_planes_u8) for
// C = 1, 3 and 4, the channel counts of image inputs. Included by ops_impl.h in the avx512
// translation units only.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace mixq {
namespace {

// 16 codes as quantize_u8 rounds finite inputs: the magic-number add there is round half to even.
inline __m512i quantize16_u8(const float* p, __m512 inv, __m512 zp) {
  __m512 v = _mm512_mul_ps(_mm512_loadu_ps(p), inv);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-1e6f)), _mm512_set1_ps(1e6f));
  v = _mm512_add_ps(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(255.f));
  return _mm512_cvttps_epi32(v);
}

// Returns the pixels written (a multiple of 16; 0 for other channel counts): the caller finishes.
inline int64_t quantize_planes_u8_avx512(const float* src, int64_t plane, int64_t C, int64_t W, float inv_scale,
                                         float zp_f, uint8_t* out) {
  if (C != 1 && C != 3 && C != 4) return 0;
  const __m512 inv = _mm512_set1_ps(inv_scale), zp = _mm512_set1_ps(zp_f);
  // C = 3: each 128-bit lane's four pixels (words) to 12 bytes, then the lanes' 12-byte runs together.
  const __m512i drop_top = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1));
  const __m512i runs = _mm512_setr_epi32(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 15, 15, 15);
  int64_t x = 0;
  for (; x + 16 <= W; x += 16) {
    const __m512i q0 = quantize16_u8(src + x, inv, zp);
    if (C == 1) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + x), _mm512_cvtepi32_epi8(q0));
      continue;
    }
    __m512i px = _mm512_or_si512(q0, _mm512_slli_epi32(quantize16_u8(src + plane + x, inv, zp), 8));
    px = _mm512_or_si512(px, _mm512_slli_epi32(quantize16_u8(src + 2 * plane + x, inv, zp), 16));
    if (C == 4) {
      px = _mm512_or_si512(px, _mm512_slli_epi32(quantize16_u8(src + 3 * plane + x, inv, zp), 24));
      _mm512_storeu_si512(out + 4 * x, px);
      continue;
    }
    px = _mm512_permutexvar_epi32(runs, _mm512_shuffle_epi8(px, drop_top));
    _mm512_mask_storeu_epi8(out + 3 * x, (__mmask64(1) << 48) - 1, px);
  }
  return x;
}

}  // namespace
}  // namespace mixq
