// NHWC depthwise convolution for the inference runtime: int8 (u8 activations, s8 weights, exact
// int32 accumulation, float epilogue with optional requantization to u8) and fp32.
//
// Tensors are NHWC with a pixel stride (ld) of at least C elements, so a layer can read from and
// write into a channel slice of a bigger tensor (a concat without a copy). Weights come from a
// [KH][KW][C] array and are packed once, offline, by pack_depthwise_*.
//
// Kernels: a scalar reference (always built), AVX2 and AVX-512 paths for every geometry
// (depthwise_avx2.cc, depthwise_avx512.cc) and an AVX-512 VNNI one for int8 3x3 kernels
// (depthwise_avx512vnni.cc), chosen by the active ISA (MIXQ_ISA / set_isa): the ref level, and
// CPUs other than x86, run the reference.
#pragma once
#include <cstdint>
#include <vector>

#include "core/aligned_buffer.h"

namespace mixq {

struct DwShape {
  int64_t N = 1, H = 1, W = 1, C = 1;  // input
  int64_t KH = 1, KW = 1;              // kernel
  int64_t SH = 1, SW = 1;              // stride
  int64_t PH = 0, PW = 0;              // padding, both sides
  int64_t DH = 1, DW = 1;              // dilation
  int64_t OH() const { return (H + 2 * PH - DH * (KH - 1) - 1) / SH + 1; }
  int64_t OW() const { return (W + 2 * PW - DW * (KW - 1) - 1) / SW + 1; }
};

// Channel block of the packed layout: 16 channels (one zmm of fp32).
constexpr int64_t kDwBlock = 16;

struct DwWeights {
  int64_t KH = 0, KW = 0, C = 0;
  bool is_int8 = false;
  // [C_pad/16][KH*KW][16] fp32, zero padded in C. int8 weights are stored as their exact float
  // values (the SIMD kernels accumulate in fp32: exact up to 256 taps, see depthwise_impl.h).
  AlignedBuffer packed;
  // int8 only: the codes as given, [KH*KW][C] (the reference's int32 accumulation reads these).
  std::vector<int8_t> codes;
  // int8 3x3 only: [C_pad/16][kw][16 channels][4 bytes: kernel rows 0, 1, 2 and a 0] for the VNNI
  // kernel (one vpdpbusd per kernel column, see depthwise_avx512vnni.cc); empty otherwise.
  AlignedBuffer quads;

  DwWeights() = default;
  DwWeights(const DwWeights& o);  // deep copies (a plan owns its weights)
  DwWeights& operator=(const DwWeights& o);
  DwWeights(DwWeights&&) noexcept = default;
  DwWeights& operator=(DwWeights&&) noexcept = default;

  int64_t taps() const { return KH * KW; }
  int64_t c_blocks() const { return (C + kDwBlock - 1) / kDwBlock; }
  const float* block(int64_t cb) const { return packed.as<float>() + cb * taps() * kDwBlock; }
  int64_t nbytes() const { return int64_t(packed.size() + codes.size() + quads.size()); }
};

// Throw std::invalid_argument for non-positive sizes or a C that does not match the array.
DwWeights pack_depthwise_s8(const int8_t* w_khkwc, int64_t KH, int64_t KW, int64_t C);
DwWeights pack_depthwise_f32(const float* w_khkwc, int64_t KH, int64_t KW, int64_t C);

// int8: acc[c] = sum over the taps inside the image of (in - in_zp) * w[c]  (exact int32; padding
// contributes 0, i.e. the input is padded with in_zp);
//   y = float(acc) * mult[c] + bias[c]  (mult = in_scale * w_scale[c]; bias may be nullptr)
//   y = clamp(y, lo, hi)
//   out_u8 = clamp(nearbyint(y * (1 / out_scale)) + out_zp, 0, 255)  if out_u8, else out_f32 = y.
// in: [N][H][W] pixels of C channels, ld_in elements apart; out: [N][OH][OW] pixels, ld_out apart.
// Throws std::invalid_argument on inconsistent arguments (w.C != s.C, ld < C, bad geometry, ...).
void dwconv_u8(const DwShape& s, const uint8_t* in, int64_t ld_in, int32_t in_zp, const DwWeights& w,
               const float* mult, const float* bias, float lo, float hi, float out_scale, int32_t out_zp,
               uint8_t* out_u8, float* out_f32, int64_t ld_out);

// fp32: y = sum in * w + bias[c] (bias may be nullptr), clamp(lo, hi).
void dwconv_f32(const DwShape& s, const float* in, int64_t ld_in, const DwWeights& w, const float* bias, float lo,
                float hi, float* out, int64_t ld_out);

}  // namespace mixq
