#include "im2col.h"

#include <algorithm>
#include <cstring>

#include "parallel.h"

namespace mixq {

void im2col(const ConvGeometry& g, int64_t elem_bytes, const void* in, int64_t ld_in, int64_t c0, int64_t cg,
            uint32_t pad_value, void* out, int64_t ld_out) {
  const int64_t row_bytes = ld_out * elem_bytes, tap_bytes = cg * elem_bytes;
  const int64_t k_bytes = g.KH * g.KW * tap_bytes;
  const uint8_t* src = static_cast<const uint8_t*>(in) + c0 * elem_bytes;
  uint8_t* dst = static_cast<uint8_t*>(out);
  // Padding values, filled once (a whole number of elements).
  uint8_t pad[4096];
  const int64_t pad_bytes = sizeof(pad);
  if (elem_bytes == 1) std::memset(pad, int(pad_value & 0xff), size_t(pad_bytes));
  else
    for (int64_t i = 0; i < pad_bytes; i += 4) std::memcpy(pad + i, &pad_value, 4);

  auto fill_pad = [&](uint8_t* p, int64_t bytes) {
    for (int64_t off = 0; off < bytes; off += pad_bytes) std::memcpy(p + off, pad, size_t(std::min(pad_bytes, bytes - off)));
  };
  // With dilation 1 and whole pixels (no channel slice), the in-image taps of a kernel row are
  // contiguous in the input: one copy per kernel row instead of one per tap.
  const bool contiguous_row = g.DW == 1 && ld_in == cg;
  parallel_for(g.N * g.OH, [&](int64_t r, int) {
    const int64_t n = r / g.OH, oy = r % g.OH;
    for (int64_t ox = 0; ox < g.OW; ++ox) {
      uint8_t* row = dst + ((n * g.OH + oy) * g.OW + ox) * row_bytes;
      uint8_t* p = row;
      const int64_t ix0 = ox * g.SW - g.PW;
      for (int64_t ky = 0; ky < g.KH; ++ky, p += g.KW * tap_bytes) {
        const int64_t iy = oy * g.SH - g.PH + ky * g.DH;
        if (iy < 0 || iy >= g.H) {
          fill_pad(p, g.KW * tap_bytes);
          continue;
        }
        const uint8_t* line = src + (n * g.H + iy) * g.W * ld_in * elem_bytes;
        if (contiguous_row) {
          // taps [k0, k1) are inside the image
          const int64_t k0 = std::min<int64_t>(g.KW, std::max<int64_t>(0, -ix0));
          const int64_t k1 = std::max<int64_t>(k0, std::min<int64_t>(g.KW, g.W - ix0));
          fill_pad(p, k0 * tap_bytes);
          std::memcpy(p + k0 * tap_bytes, line + (ix0 + k0) * tap_bytes, size_t((k1 - k0) * tap_bytes));
          fill_pad(p + k1 * tap_bytes, (g.KW - k1) * tap_bytes);
          continue;
        }
        for (int64_t kx = 0; kx < g.KW; ++kx) {
          const int64_t ix = ix0 + kx * g.DW;
          if (ix < 0 || ix >= g.W) fill_pad(p + kx * tap_bytes, tap_bytes);
          else std::memcpy(p + kx * tap_bytes, line + ix * ld_in * elem_bytes, size_t(tap_bytes));
        }
      }
      std::memset(row + k_bytes, 0, size_t(row_bytes - k_bytes));
    }
  });
}

}  // namespace mixq
