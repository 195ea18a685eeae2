// Internal interface between the depthwise driver (depthwise.cc) and its per-ISA kernels: the
// validated arguments of one call, and the entry points each kernel translation unit defines.
#pragma once
#include <cstdint>

#include "ops/depthwise.h"

namespace mixq {

// One validated depthwise call. Exactly one of out_u8 / out_f32 is set (fp32 calls: out_f32).
struct DwCall {
  DwShape s;
  int64_t OH = 0, OW = 0;
  const DwWeights* w = nullptr;
  bool int8 = false;
  const uint8_t* in_u8 = nullptr;  // int8 calls
  const float* in_f32 = nullptr;   // fp32 calls
  int64_t ld_in = 0;
  int32_t in_zp = 0;
  const float* mult = nullptr;  // int8: per channel; fp32: nullptr (1)
  const float* bias = nullptr;  // per channel or nullptr (0)
  float lo = 0.f, hi = 0.f;
  float out_scale = 1.f;
  int32_t out_zp = 0;
  // u8 outputs: every (float(acc) * mult + bias) / out_scale is finite and below 2^30 in magnitude
  // for any acc of the call's taps (|acc| <= taps * 255 * 128), so a kernel may round it uncapped.
  bool v_bounded = false;
  uint8_t* out_u8 = nullptr;
  float* out_f32 = nullptr;
  int64_t ld_out = 0;
};

// The largest tap count for which the SIMD kernels' fp32 accumulation is exact. They accumulate
// x * w (|.| <= 255 * 128) onto a start value of -zp * sum(w) (|.| <= 255 * 128 * taps): every
// partial sum is an integer below 2 * 255 * 128 * 256 < 2^24 in magnitude for up to 256 taps.
constexpr int64_t kDwMaxExactTaps = 256;

// The kernels are entries of kernels.inc (kinds dw_s8, dw_s8_3x3, dw_f32), of type
// void(const DwCall&): a scalar reference (kernels/ref); AVX2 + FMA and AVX-512 F/BW/VL/DQ for
// every geometry (channels in 8- or 16-lane fp32 vectors, up to 8 or 16 output pixels per
// micro-tile; int8 calls with more than kDwMaxExactTaps taps must go to the reference); and
// AVX-512 VNNI for int8 3x3 kernels that dwconv3x3_vnni_fits (exact int32 accumulation on
// vpdpbusd, three instructions per output vector instead of nine FMAs).
bool dwconv3x3_vnni_fits(const DwCall& c);

}  // namespace mixq
