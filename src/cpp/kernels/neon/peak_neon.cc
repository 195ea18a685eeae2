// The fp32 compute roof of one aarch64 core: 16 independent fmla chains.
#include <arm_neon.h>

#include "kernels/kernels.h"

namespace mixq {

int64_t peak_fp32__neon(int64_t iters) {
  float32x4_t x = vdupq_n_f32(1.0000001f), y = vdupq_n_f32(0.9999999f);
  __asm__("" : "+w"(x), "+w"(y));  // opaque operands: the compiler must not fold the chains
  float32x4_t acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = vdupq_n_f32(float(i));  // distinct: identical chains would merge
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = vfmaq_f32(acc[i], x, y);
  }
  float32x4_t s = acc[0];
  for (int i = 1; i < 16; ++i) s = vaddq_f32(s, acc[i]);
  return int64_t(vaddvq_f32(s));
}

}  // namespace mixq
