#include "im2col.h"

#include <algorithm>
#include <cstring>

#include "parallel.h"

namespace mixq {
namespace {

// Short copies (a few channels per tap) as fixed-size moves: a memcpy call per tap of 3-16 bytes
// costs more than the bytes it moves.
inline void copy_bytes(uint8_t* d, const uint8_t* s, int64_t n) {
  if (n >= 64) {
    std::memcpy(d, s, size_t(n));
  } else if (n >= 16) {
    for (int64_t i = 0; i + 16 <= n; i += 16) std::memcpy(d + i, s + i, 16);
    std::memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(d, s, 8);
    std::memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(d, s, 4);
    std::memcpy(d + n - 4, s + n - 4, 4);
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
  }
}

}  // namespace

void im2col(const ConvGeometry& g, int64_t elem_bytes, const void* in, int64_t ld_in, int64_t c0, int64_t cg,
            uint32_t pad_value, int64_t p0, int64_t p1, void* out, int64_t ld_out) {
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
    for (int64_t off = 0; off < bytes; off += pad_bytes) copy_bytes(p + off, pad, std::min(pad_bytes, bytes - off));
  };
  // With dilation 1 and whole pixels (no channel slice), the in-image taps of a kernel row are
  // contiguous in the input: one copy per kernel row instead of one per tap.
  const bool contiguous_row = g.DW == 1 && ld_in == cg;
  parallel_chunks(p1 - p0, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t q = p0 + i0; q < p0 + i1; ++q) {
      const int64_t ox = q % g.OW, oy = (q / g.OW) % g.OH, n = q / (g.OW * g.OH);
      uint8_t* row = dst + (q - p0) * row_bytes;
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
          copy_bytes(p + k0 * tap_bytes, line + (ix0 + k0) * tap_bytes, (k1 - k0) * tap_bytes);
          fill_pad(p + k1 * tap_bytes, (g.KW - k1) * tap_bytes);
          continue;
        }
        for (int64_t kx = 0; kx < g.KW; ++kx) {
          const int64_t ix = ix0 + kx * g.DW;
          if (ix < 0 || ix >= g.W) fill_pad(p + kx * tap_bytes, tap_bytes);
          else copy_bytes(p + kx * tap_bytes, line + ix * ld_in * elem_bytes, tap_bytes);
        }
      }
      for (int64_t b = k_bytes; b < row_bytes; ++b) row[b] = 0;
    }
  });
}

}  // namespace mixq
