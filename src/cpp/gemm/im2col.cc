#include "gemm/im2col.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"

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

// One call's arguments. gather_rows takes them by value: a local whose address never escapes, so
// the byte stores cannot alias its fields and they stay in registers (through a reference or a
// lambda's captures the compiler reloaded the geometry for every tap, and im2col took a quarter
// of ResNet-20's int8 time at batch 128).
struct Gather {
  ConvGeometry g;
  const uint8_t* src;  // input at the first channel of the slice
  uint8_t* dst;        // row 0 of the output
  const uint8_t* pad;  // pad_bytes of padding values
  int64_t pad_bytes, tap_bytes, row_bytes, k_bytes, pix_bytes, line_bytes, p0;
  bool contiguous_row;  // dilation 1, whole pixels: a kernel row's in-image taps are one copy
};

void fill_pad(const Gather& a, uint8_t* p, int64_t bytes) {
  for (int64_t off = 0; off < bytes; off += a.pad_bytes) copy_bytes(p + off, a.pad, std::min(a.pad_bytes, bytes - off));
}

// Output rows for pixels [q0, q1).
void gather_rows(const Gather a, int64_t q0, int64_t q1) {
  const ConvGeometry& g = a.g;
  const int64_t tb = a.tap_bytes;
  // Pixel (n, oy, ox) of q0, then stepped along: no division per row.
  int64_t ox = q0 % g.OW, oy = (q0 / g.OW) % g.OH, n = q0 / (g.OW * g.OH);
  for (int64_t q = q0; q < q1; ++q) {
    uint8_t* row = a.dst + (q - a.p0) * a.row_bytes;
    uint8_t* p = row;
    const int64_t ix0 = ox * g.SW - g.PW;
    for (int64_t ky = 0; ky < g.KH; ++ky, p += g.KW * tb) {
      const int64_t iy = oy * g.SH - g.PH + ky * g.DH;
      if (iy < 0 || iy >= g.H) {
        fill_pad(a, p, g.KW * tb);
        continue;
      }
      const uint8_t* line = a.src + (n * g.H + iy) * a.line_bytes;
      if (a.contiguous_row) {
        // taps [k0, k1) are inside the image
        const int64_t k0 = std::min<int64_t>(g.KW, std::max<int64_t>(0, -ix0));
        const int64_t k1 = std::max<int64_t>(k0, std::min<int64_t>(g.KW, g.W - ix0));
        fill_pad(a, p, k0 * tb);
        copy_bytes(p + k0 * tb, line + (ix0 + k0) * tb, (k1 - k0) * tb);
        fill_pad(a, p + k1 * tb, (g.KW - k1) * tb);
        continue;
      }
      for (int64_t kx = 0; kx < g.KW; ++kx) {
        const int64_t ix = ix0 + kx * g.DW;
        if (ix < 0 || ix >= g.W) fill_pad(a, p + kx * tb, tb);
        else copy_bytes(p + kx * tb, line + ix * a.pix_bytes, tb);
      }
    }
    if (a.row_bytes > a.k_bytes) std::memset(row + a.k_bytes, 0, size_t(a.row_bytes - a.k_bytes));
    if (++ox == g.OW) {
      ox = 0;
      if (++oy == g.OH) oy = 0, ++n;
    }
  }
}

}  // namespace

void im2col(const ConvGeometry& g, int64_t elem_bytes, const void* in, int64_t ld_in, int64_t c0, int64_t cg,
            uint32_t pad_value, int64_t p0, int64_t p1, void* out, int64_t ld_out) {
  // Padding values, filled once (a whole number of elements).
  uint8_t pad[4096];
  if (elem_bytes == 1) std::memset(pad, int(pad_value & 0xff), sizeof(pad));
  else
    for (size_t i = 0; i < sizeof(pad); i += 4) std::memcpy(pad + i, &pad_value, 4);
  const int64_t tap_bytes = cg * elem_bytes;
  const Gather a{g,
                 static_cast<const uint8_t*>(in) + c0 * elem_bytes,
                 static_cast<uint8_t*>(out),
                 pad,
                 int64_t(sizeof(pad)),
                 tap_bytes,
                 ld_out * elem_bytes,
                 g.KH * g.KW * tap_bytes,
                 ld_in * elem_bytes,
                 g.W * ld_in * elem_bytes,
                 p0,
                 g.DW == 1 && ld_in == cg};
  parallel_chunks(p1 - p0, 64, [&](int64_t i0, int64_t i1) { gather_rows(a, p0 + i0, p0 + i1); });
}

}  // namespace mixq
