// The int8 compute roof of one Armv8.2 core: 16 independent udot chains.
#include <arm_neon.h>

#include "kernels/kernels.h"

namespace mixq {

int64_t peak_int8__dotprod(int64_t iters) {
  uint8x16_t x = vdupq_n_u8(1), y = vdupq_n_u8(2);
  __asm__("" : "+w"(x), "+w"(y));  // opaque operands: the compiler must not fold the chains
  uint32x4_t acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = vdupq_n_u32(uint32_t(i));  // distinct: identical chains would merge
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = vdotq_u32(acc[i], x, y);
  }
  uint32x4_t s = acc[0];
  for (int i = 1; i < 16; ++i) s = vaddq_u32(s, acc[i]);
  return int64_t(vaddvq_u32(s));
}

}  // namespace mixq
