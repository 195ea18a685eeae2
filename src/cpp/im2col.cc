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
  // One padding tap, filled once.
  uint8_t pad[4096];
  const int64_t pad_bytes = std::min<int64_t>(tap_bytes, sizeof(pad));
  if (elem_bytes == 1) std::memset(pad, int(pad_value & 0xff), size_t(pad_bytes));
  else
    for (int64_t i = 0; i < pad_bytes; i += 4) std::memcpy(pad + i, &pad_value, 4);

  parallel_for(g.N * g.OH, [&](int64_t r, int) {
    const int64_t n = r / g.OH, oy = r % g.OH;
    for (int64_t ox = 0; ox < g.OW; ++ox) {
      uint8_t* row = dst + ((n * g.OH + oy) * g.OW + ox) * row_bytes;
      uint8_t* p = row;
      for (int64_t ky = 0; ky < g.KH; ++ky) {
        const int64_t iy = oy * g.SH - g.PH + ky * g.DH;
        for (int64_t kx = 0; kx < g.KW; ++kx, p += tap_bytes) {
          const int64_t ix = ox * g.SW - g.PW + kx * g.DW;
          if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) {
            for (int64_t off = 0; off < tap_bytes; off += pad_bytes)
              std::memcpy(p + off, pad, size_t(std::min(pad_bytes, tap_bytes - off)));
          } else {
            std::memcpy(p, src + ((n * g.H + iy) * g.W + ix) * ld_in * elem_bytes, size_t(tap_bytes));
          }
        }
      }
      std::memset(row + k_bytes, 0, size_t(row_bytes - k_bytes));
    }
  });
}

}  // namespace mixq
