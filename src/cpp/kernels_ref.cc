// Portable scalar micro-kernels: the reference every SIMD kernel is tested against, and the path
// that makes mixq run on any CPU.
#include "bf16.h"
#include "kernels.h"

namespace mixq {

void u8s8s32_gemm_4x32c4__ref(int mr, int64_t k_steps, const uint8_t* a, const int8_t* b, int32_t* c,
                              int64_t ldc, bool accumulate) {
  for (int r = 0; r < mr; ++r) {
    for (int n = 0; n < 32; ++n) {
      uint32_t s = accumulate ? uint32_t(c[r * ldc + n]) : 0u;  // wraps mod 2^32 like the SIMD paths
      for (int64_t p = 0; p < k_steps; ++p)
        for (int t = 0; t < 4; ++t)
          s += uint32_t(int32_t(a[(p * mr + r) * 4 + t]) * int32_t(b[(p * 32 + n) * 4 + t]));
      c[r * ldc + n] = int32_t(s);
    }
  }
}

void f32_gemm_4x32__ref(int mr, int64_t k_steps, const float* a, const float* b, float* c, int64_t ldc,
                        bool accumulate) {
  for (int r = 0; r < mr; ++r) {
    for (int n = 0; n < 32; ++n) {
      float s = accumulate ? c[r * ldc + n] : 0.f;
      for (int64_t k = 0; k < k_steps; ++k) s += a[k * mr + r] * b[k * 32 + n];
      c[r * ldc + n] = s;
    }
  }
}

void bf16_gemm_4x32c2__ref(int mr, int64_t k_steps, const uint16_t* a, const uint16_t* b, float* c,
                           int64_t ldc, bool accumulate) {
  for (int r = 0; r < mr; ++r) {
    for (int n = 0; n < 32; ++n) {
      float s = accumulate ? c[r * ldc + n] : 0.f;
      for (int64_t p = 0; p < k_steps; ++p)
        for (int t = 0; t < 2; ++t)
          s += bf16_to_float(a[(p * mr + r) * 2 + t]) * bf16_to_float(b[(p * 32 + n) * 2 + t]);
      c[r * ldc + n] = s;
    }
  }
}

}  // namespace mixq
