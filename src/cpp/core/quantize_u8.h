// The one rounding of a float to a u8 code, shared by the plan's operators and the per-ISA
// quantize loops (kernels/ops_impl.h), which must give the same codes.
#pragma once
#include <algorithm>
#include <cstdint>

namespace mixq {

// clamp(nearbyint(y * inv_scale) + zp, 0, 255), as the GEMM epilogue rounds.
inline uint8_t quantize_u8(float y, float inv_scale, float zp) {
  // Round half to even like nearbyint, with adds the compiler vectorizes on any x86-64: adding
  // 1.5 * 2^23 leaves no fraction bits (|v| is clamped well below 2^22 first). std::min/max, not
  // chained ternaries: the compiler maps them to min/max instructions (3x faster loops with AVX2).
  float v = y * inv_scale;
  v = std::min(std::max(v, -1e6f), 1e6f);
  v = (v + 12582912.f) - 12582912.f + zp;
  v = std::min(std::max(v, 0.f), 255.f);
  return uint8_t(int32_t(v));
}

}  // namespace mixq
