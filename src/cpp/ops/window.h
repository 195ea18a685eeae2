// The taps of a sliding window (pooling, depthwise conv) that fall inside the image.
#pragma once
#include <cstdint>

namespace mixq {

// Calls fn(iy, ix) for each tap (ky, kx) of output pixel (oy, ox) inside the H x W image.
// Shape: any struct with H, W, KH, KW, SH, SW, PH, PW, DH, DW.
template <typename Shape, typename Fn>
inline void for_each_tap(const Shape& s, int64_t oy, int64_t ox, Fn fn) {
  for (int64_t ky = 0; ky < s.KH; ++ky) {
    const int64_t iy = oy * s.SH - s.PH + ky * s.DH;
    if (iy < 0 || iy >= s.H) continue;
    for (int64_t kx = 0; kx < s.KW; ++kx) {
      const int64_t ix = ox * s.SW - s.PW + kx * s.DW;
      if (ix < 0 || ix >= s.W) continue;
      fn(iy, ix, ky * s.KW + kx);
    }
  }
}

}  // namespace mixq
