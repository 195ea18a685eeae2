// Portable scalar micro-kernels: the reference every SIMD kernel is tested against, and the path
// that makes mixq run on any CPU.
#include "bf16.h"
#include "kernels.h"

namespace mixq {

void u8s8s32_gemm_4x32c4__ref(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                              int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate) {
  for (int r = 0; r < mr; ++r)
    for (int n = 0; n < 32 * np; ++n) {
      const int8_t* bp = b + (n / 32) * b_stride + (n % 32) * 4;
      uint32_t s = accumulate ? uint32_t(c[r * ldc + n]) : 0u;  // wraps mod 2^32 like the SIMD paths
      for (int64_t k = 0; k < 4 * k_steps; ++k) s += uint32_t(int32_t(a[r * lda + k]) * int32_t(bp[(k / 4) * 128 + k % 4]));
      c[r * ldc + n] = int32_t(s);
    }
}

void f32_gemm_4x32__ref(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const float* b,
                        int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for (int r = 0; r < mr; ++r)
    for (int n = 0; n < 32 * np; ++n) {
      const float* bp = b + (n / 32) * b_stride + n % 32;
      float s = accumulate ? c[r * ldc + n] : 0.f;
      for (int64_t k = 0; k < k_steps; ++k) s += a[r * lda + k] * bp[k * 32];
      c[r * ldc + n] = s;
    }
}

void bf16_gemm_4x32c2__ref(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint16_t* b,
                           int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for (int r = 0; r < mr; ++r)
    for (int n = 0; n < 32 * np; ++n) {
      const uint16_t* bp = b + (n / 32) * b_stride + (n % 32) * 2;
      float s = accumulate ? c[r * ldc + n] : 0.f;
      for (int64_t k = 0; k < 2 * k_steps; ++k) s += bf16_to_float(a[r * lda + k]) * bf16_to_float(bp[(k / 2) * 64 + k % 2]);
      c[r * ldc + n] = s;
    }
}

}  // namespace mixq
