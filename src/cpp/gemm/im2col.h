// Gathers NHWC convolution patches into GEMM rows, so any conv runs on the packed GEMM kernels.
#pragma once
#include <cstdint>

namespace mixq {

struct ConvGeometry {
  int64_t N, H, W;          // input batch and spatial size
  int64_t KH, KW, SH, SW, PH, PW, DH, DW;
  int64_t OH, OW;
};

// For output pixels p in [p0, p1) (p = (n * OH + oy) * OW + ox), row p - p0 of out = the patch
// [ky][kx][c] of channels [c0, c0 + cg) of the input (pixel stride ld_in elements), taps outside
// the image filled with pad_value; then zeros up to ld_out elements (the kernels' padded depth).
// elem_bytes is 1 (u8) or 4 (fp32).
void im2col(const ConvGeometry& g, int64_t elem_bytes, const void* in, int64_t ld_in, int64_t c0, int64_t cg,
            uint32_t pad_value, int64_t p0, int64_t p1, void* out, int64_t ld_out);

}  // namespace mixq
