// Depthwise convolution: weight packing, argument checks and the choice of kernel by the active
// ISA level (the kernels: kernels/<unit>/depthwise_<unit>.cc).
#include "ops/depthwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "ops/depthwise_impl.h"

namespace mixq {
namespace {

void check_kernel_dims(int64_t KH, int64_t KW, int64_t C) {
  if (KH < 1 || KW < 1 || C < 1)
    throw std::invalid_argument("depthwise weights must be [KH, KW, C] with every size >= 1, got [" +
                                std::to_string(KH) + ", " + std::to_string(KW) + ", " + std::to_string(C) + "]");
  if (KH * KW > 65536) throw std::invalid_argument("depthwise kernel has more than 65536 taps");
}

// [KH][KW][C] -> [C_pad/16][KH*KW][16] fp32, zeros in the padding channels.
template <typename T>
AlignedBuffer pack_blocks(const T* w, int64_t taps, int64_t C) {
  const int64_t nb = (C + kDwBlock - 1) / kDwBlock;
  AlignedBuffer buf(size_t(nb * taps * kDwBlock) * sizeof(float));
  float* dst = buf.as<float>();
  std::memset(dst, 0, buf.size());
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < C; ++c) dst[((c / kDwBlock) * taps + t) * kDwBlock + c % kDwBlock] = float(w[t * C + c]);
  return buf;
}

// int8 3x3 for the VNNI kernel: [C_pad/16][kw][16][4], byte kh of channel c's quad = w[kh][kw][c],
// byte 3 and the padding channels 0.
AlignedBuffer pack_quads_3x3(const int8_t* w, int64_t C) {
  const int64_t nb = (C + kDwBlock - 1) / kDwBlock;
  AlignedBuffer buf(size_t(nb * 3 * kDwBlock * 4));
  int8_t* dst = buf.as<int8_t>();
  std::memset(dst, 0, buf.size());
  for (int64_t kh = 0; kh < 3; ++kh)
    for (int64_t kw = 0; kw < 3; ++kw)
      for (int64_t c = 0; c < C; ++c)
        dst[(((c / kDwBlock) * 3 + kw) * kDwBlock + c % kDwBlock) * 4 + kh] = w[(kh * 3 + kw) * C + c];
  return buf;
}

std::string shape_str(const DwShape& s) {
  auto n = [](int64_t v) { return std::to_string(v); };
  return "input [" + n(s.N) + ", " + n(s.H) + ", " + n(s.W) + ", " + n(s.C) + "], kernel " + n(s.KH) + "x" + n(s.KW) +
         ", stride (" + n(s.SH) + ", " + n(s.SW) + "), padding (" + n(s.PH) + ", " + n(s.PW) + "), dilation (" +
         n(s.DH) + ", " + n(s.DW) + ")";
}

void check_call(const DwShape& s, const DwWeights& w, bool int8, int64_t ld_in, int64_t ld_out) {
  if (s.N < 0 || s.H < 1 || s.W < 1 || s.C < 1 || s.KH < 1 || s.KW < 1 || s.SH < 1 || s.SW < 1 || s.PH < 0 ||
      s.PW < 0 || s.DH < 1 || s.DW < 1)
    throw std::invalid_argument("depthwise: invalid geometry: " + shape_str(s));
  if (s.H + 2 * s.PH - s.DH * (s.KH - 1) - 1 < 0 || s.W + 2 * s.PW - s.DW * (s.KW - 1) - 1 < 0)
    throw std::invalid_argument("depthwise: the kernel does not fit the padded input: " + shape_str(s));
  if (w.is_int8 != int8)
    throw std::invalid_argument(int8 ? "dwconv_u8 needs int8 weights (pack_depthwise_s8)"
                                     : "dwconv_f32 needs fp32 weights (pack_depthwise_f32)");
  if (w.KH != s.KH || w.KW != s.KW || w.C != s.C)
    throw std::invalid_argument("depthwise: weights are [" + std::to_string(w.KH) + ", " + std::to_string(w.KW) +
                                ", " + std::to_string(w.C) + "] but the call has " + shape_str(s));
  if (ld_in < s.C || ld_out < s.C)
    throw std::invalid_argument("depthwise: pixel strides ld_in / ld_out must be >= C");
}

void check_clamp(float lo, float hi) {
  if (!(lo <= hi)) throw std::invalid_argument("depthwise: the clamp needs lo <= hi");
}

// The kernel for a call: the active level's, by kind (kernels.inc).
void run(const DwCall& c) {
  const Dispatch& d = active_dispatch();
  const KernelInfo* k = d[KernelKind::dw_f32];
  if (c.int8) {
    k = d[KernelKind::dw_s8_3x3] && dwconv3x3_vnni_fits(c) ? d[KernelKind::dw_s8_3x3] : d[KernelKind::dw_s8];
    // The SIMD kernels accumulate exactly in fp32 only up to kDwMaxExactTaps taps.
    if (c.w->taps() > kDwMaxExactTaps) k = reference_kernel(KernelKind::dw_s8);
  }
  note_kernel(k->name);
  if (c.s.N > 0) k->fn_as<DwKernelFn>()(c);
}

}  // namespace

bool dwconv3x3_vnni_fits(const DwCall& c) {
  const DwShape& s = c.s;
  return c.int8 && s.KH == 3 && s.KW == 3 && s.DH == 1 && s.DW == 1 && (s.SW == 1 || s.SW == 2) &&
         c.w->quads.size() > 0;
}

DwWeights::DwWeights(const DwWeights& o) : KH(o.KH), KW(o.KW), C(o.C), is_int8(o.is_int8), codes(o.codes) {
  for (auto [dst, src] : {std::pair{&packed, &o.packed}, std::pair{&quads, &o.quads}}) {
    dst->resize(src->size());
    if (src->size()) std::memcpy(dst->as<uint8_t>(), src->as<uint8_t>(), src->size());
  }
}

DwWeights& DwWeights::operator=(const DwWeights& o) {
  if (this != &o) *this = DwWeights(o);
  return *this;
}

DwWeights pack_depthwise_s8(const int8_t* w_khkwc, int64_t KH, int64_t KW, int64_t C) {
  check_kernel_dims(KH, KW, C);
  DwWeights w;
  w.KH = KH, w.KW = KW, w.C = C, w.is_int8 = true;
  w.packed = pack_blocks(w_khkwc, KH * KW, C);
  w.codes.assign(w_khkwc, w_khkwc + KH * KW * C);
  if (KH == 3 && KW == 3) w.quads = pack_quads_3x3(w_khkwc, C);
  return w;
}

DwWeights pack_depthwise_f32(const float* w_khkwc, int64_t KH, int64_t KW, int64_t C) {
  check_kernel_dims(KH, KW, C);
  DwWeights w;
  w.KH = KH, w.KW = KW, w.C = C, w.is_int8 = false;
  w.packed = pack_blocks(w_khkwc, KH * KW, C);
  return w;
}

void dwconv_u8(const DwShape& s, const uint8_t* in, int64_t ld_in, int32_t in_zp, const DwWeights& w,
               const float* mult, const float* bias, float lo, float hi, float out_scale, int32_t out_zp,
               uint8_t* out_u8, float* out_f32, int64_t ld_out) {
  check_call(s, w, true, ld_in, ld_out);
  check_clamp(lo, hi);
  if (!mult) throw std::invalid_argument("dwconv_u8: mult (in_scale * w_scale per channel) is required");
  if (!out_u8 && !out_f32) throw std::invalid_argument("dwconv_u8: no output");
  if (out_u8 && !(out_scale > 0.f && std::isfinite(out_scale)))
    throw std::invalid_argument("dwconv_u8: out_scale must be positive and finite");
  if (in_zp < 0 || in_zp > 255) throw std::invalid_argument("dwconv_u8: in_zp must be in [0, 255]");
  if (out_u8 && (out_zp < 0 || out_zp > 255)) throw std::invalid_argument("dwconv_u8: out_zp must be in [0, 255]");
  if (s.N > 0 && !in) throw std::invalid_argument("dwconv_u8: null input");
  DwCall c;
  c.s = s, c.OH = s.OH(), c.OW = s.OW(), c.w = &w, c.int8 = true;
  c.in_u8 = in, c.ld_in = ld_in, c.in_zp = in_zp;
  c.mult = mult, c.bias = bias, c.lo = lo, c.hi = hi;
  c.out_scale = out_scale, c.out_zp = out_zp;
  c.out_u8 = out_u8, c.out_f32 = out_u8 ? nullptr : out_f32, c.ld_out = ld_out;
  if (out_u8) {
    const double acc = double(s.KH * s.KW) * 255.0 * 128.0, inv = 1.0 / double(out_scale);
    c.v_bounded = true;
    for (int64_t ch = 0; ch < s.C && c.v_bounded; ++ch)  // a NaN term fails the comparison
      c.v_bounded = (acc * std::fabs(double(mult[ch])) + (bias ? std::fabs(double(bias[ch])) : 0.0)) * inv <
                    double(1 << 30);
  }
  run(c);
}

void dwconv_f32(const DwShape& s, const float* in, int64_t ld_in, const DwWeights& w, const float* bias, float lo,
                float hi, float* out, int64_t ld_out) {
  check_call(s, w, false, ld_in, ld_out);
  check_clamp(lo, hi);
  if (s.N > 0 && (!in || !out)) throw std::invalid_argument("dwconv_f32: null input or output");
  DwCall c;
  c.s = s, c.OH = s.OH(), c.OW = s.OW(), c.w = &w, c.int8 = false;
  c.in_f32 = in, c.ld_in = ld_in;
  c.bias = bias, c.lo = lo, c.hi = hi;
  c.out_f32 = out, c.ld_out = ld_out;
  run(c);
}

}  // namespace mixq
