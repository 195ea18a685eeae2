// The int8 compute roof of one core with I8MM: 16 independent usmmla chains (32 MACs each).
#include <arm_neon.h>

#include "kernels/kernels.h"

namespace mixq {

int64_t peak_int8__i8mm(int64_t iters) {
  uint8x16_t x = vdupq_n_u8(1);
  int8x16_t y = vdupq_n_s8(2);
  __asm__("" : "+w"(x), "+w"(y));  // opaque operands: the compiler must not fold the chains
  int32x4_t acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = vdupq_n_s32(i);  // distinct: identical chains would merge
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = vusmmlaq_s32(acc[i], x, y);
  }
  int32x4_t s = acc[0];
  for (int i = 1; i < 16; ++i) s = vaddq_s32(s, acc[i]);
  return int64_t(vaddvq_s32(s));
}

}  // namespace mixq
