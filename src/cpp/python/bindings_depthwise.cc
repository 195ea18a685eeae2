// nanobind bindings of the depthwise convolution (depthwise.h): weights packed into a DwWeights
// object once, NHWC arrays in and out. Inputs and outputs may be channel slices of bigger arrays
// (x[..., a:b]): any layout whose pixels are evenly spaced with unit channel stride is read in
// place, and `out=` writes into a preallocated array or slice. The kernels run without the GIL.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "ops/depthwise.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mixq {
namespace {

template <typename T> using Arr3 = nb::ndarray<const T, nb::ndim<3>, nb::c_contig, nb::device::cpu>;
template <typename T> using Arr1 = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
// Any strides: checked by pixel_stride().
template <typename T> using Nhwc = nb::ndarray<const T, nb::ndim<4>, nb::device::cpu>;
using OutNhwc = nb::ndarray<nb::ndim<4>, nb::device::cpu>;
using Pair = std::pair<int64_t, int64_t>;

std::string dims(const int64_t* d, size_t n) {
  std::string s = "[";
  for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// Pixel stride (elements) of an NHWC array whose pixels are evenly spaced and whose channels are
// contiguous; throws otherwise. Strides of size-1 dimensions do not matter.
template <typename A>
int64_t pixel_stride(const A& a, const char* what) {
  const int64_t N = int64_t(a.shape(0)), H = int64_t(a.shape(1)), W = int64_t(a.shape(2)), C = int64_t(a.shape(3));
  int64_t ld = C;
  if (N == 0) return ld;  // nothing is read or written (and empty arrays may report any strides)
  if (W > 1) ld = a.stride(2);
  else if (H > 1) ld = a.stride(1);
  else if (N > 1) ld = a.stride(0);
  const bool ok = ld >= C && (C <= 1 || a.stride(3) == 1) && (W <= 1 || a.stride(2) == ld) &&
                  (H <= 1 || a.stride(1) == W * ld) && (N <= 1 || a.stride(0) == H * W * ld);
  if (!ok)
    throw std::invalid_argument(std::string(what) +
                                " must be NHWC with contiguous channels and evenly spaced pixels "
                                "(a C-contiguous array or a channel slice of one)");
  return ld;
}

DwShape make_shape(int64_t N, int64_t H, int64_t W, int64_t C, const DwWeights& w, Pair stride, Pair padding,
                   Pair dilation) {
  DwShape s;
  s.N = N, s.H = H, s.W = W, s.C = C, s.KH = w.KH, s.KW = w.KW;
  s.SH = stride.first, s.SW = stride.second;
  s.PH = padding.first, s.PW = padding.second;
  s.DH = dilation.first, s.DW = dilation.second;
  if (C != w.C)
    throw std::invalid_argument("x has " + std::to_string(C) + " channels but the weights have " + std::to_string(w.C));
  if (s.SH < 1 || s.SW < 1 || s.DH < 1 || s.DW < 1 || s.PH < 0 || s.PW < 0)
    throw std::invalid_argument("stride and dilation must be >= 1 and padding >= 0");
  if (H + 2 * s.PH - s.DH * (s.KH - 1) - 1 < 0 || W + 2 * s.PW - s.DW * (s.KW - 1) - 1 < 0)
    throw std::invalid_argument("the (dilated) kernel is larger than the padded input");
  return s;
}

const float* per_channel(const std::optional<Arr1<float>>& a, int64_t C, const char* what) {
  if (!a) return nullptr;
  if (int64_t(a->shape(0)) != C)
    throw std::invalid_argument(std::string(what) + " must have one value per channel (" + std::to_string(C) + ")");
  return a->data();
}

// Output: the caller's array (checked) or a new C-contiguous one. Returns the Python object, the
// data pointer and the pixel stride.
template <typename T>
nb::object output(const nb::object& out_obj, const DwShape& s, void** data, int64_t* ld) {
  const int64_t want[4] = {s.N, s.OH(), s.OW(), s.C};
  if (!out_obj.is_none()) {
    OutNhwc arr;
    if (!nb::try_cast(out_obj, arr, false))  // never a converted copy: the result would be lost
      throw std::invalid_argument("out must be a writable 4-d CPU array");
    const OutNhwc* out = &arr;
    if (out->dtype() != nb::dtype<T>())
      throw std::invalid_argument(std::string("out must be ") + (sizeof(T) == 1 ? "uint8" : "float32"));
    const int64_t got[4] = {int64_t(out->shape(0)), int64_t(out->shape(1)), int64_t(out->shape(2)),
                            int64_t(out->shape(3))};
    for (int i = 0; i < 4; ++i)
      if (got[i] != want[i]) throw std::invalid_argument("out is " + dims(got, 4) + ", expected " + dims(want, 4));
    *ld = pixel_stride(*out, "out");
    *data = out->data();
    return out_obj;
  }
  const size_t n = size_t(want[0] * want[1] * want[2] * want[3]);
  T* buf = new T[n ? n : 1];
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  const size_t shape[4] = {size_t(want[0]), size_t(want[1]), size_t(want[2]), size_t(want[3])};
  *data = buf;
  *ld = s.C;
  return nb::cast(nb::ndarray<nb::numpy, T>(buf, 4, shape, owner));
}

nb::object dwconv_u8_py(const DwWeights& w, Nhwc<uint8_t> x, int32_t in_zp, Pair stride, Pair padding,
                        Pair dilation, Arr1<float> mult, std::optional<Arr1<float>> bias, float lo, float hi,
                        float out_scale, int32_t out_zp, const std::string& out_dtype, nb::object out) {
  if (!w.is_int8) throw std::invalid_argument("dwconv_u8 needs weights from pack_depthwise_s8");
  if (out_dtype != "uint8" && out_dtype != "float32")
    throw std::invalid_argument("out_dtype must be 'uint8' or 'float32', got '" + out_dtype + "'");
  const DwShape s = make_shape(int64_t(x.shape(0)), int64_t(x.shape(1)), int64_t(x.shape(2)), int64_t(x.shape(3)),
                               w, stride, padding, dilation);
  const int64_t ld_in = pixel_stride(x, "x");
  const float* m = per_channel(mult, s.C, "mult");
  const float* b = per_channel(bias, s.C, "bias");
  const bool u8 = out_dtype == "uint8";
  void* data = nullptr;
  int64_t ld_out = 0;
  nb::object result = u8 ? output<uint8_t>(out, s, &data, &ld_out) : output<float>(out, s, &data, &ld_out);
  {
    nb::gil_scoped_release rel;
    dwconv_u8(s, x.data(), ld_in, in_zp, w, m, b, lo, hi, out_scale, out_zp, u8 ? static_cast<uint8_t*>(data) : nullptr,
              u8 ? nullptr : static_cast<float*>(data), ld_out);
  }
  return result;
}

nb::object dwconv_f32_py(const DwWeights& w, Nhwc<float> x, Pair stride, Pair padding, Pair dilation,
                         std::optional<Arr1<float>> bias, float lo, float hi, nb::object out) {
  if (w.is_int8) throw std::invalid_argument("dwconv_f32 needs weights from pack_depthwise_f32");
  const DwShape s = make_shape(int64_t(x.shape(0)), int64_t(x.shape(1)), int64_t(x.shape(2)), int64_t(x.shape(3)),
                               w, stride, padding, dilation);
  const int64_t ld_in = pixel_stride(x, "x");
  const float* b = per_channel(bias, s.C, "bias");
  void* data = nullptr;
  int64_t ld_out = 0;
  nb::object result = output<float>(out, s, &data, &ld_out);
  {
    nb::gil_scoped_release rel;
    dwconv_f32(s, x.data(), ld_in, w, b, lo, hi, static_cast<float*>(data), ld_out);
  }
  return result;
}

}  // namespace

void bind_depthwise(nb::module_& m) {
  nb::class_<DwWeights>(m, "DwWeights")
      .def_prop_ro("KH", [](const DwWeights& w) { return w.KH; })
      .def_prop_ro("KW", [](const DwWeights& w) { return w.KW; })
      .def_prop_ro("C", [](const DwWeights& w) { return w.C; })
      .def_prop_ro("is_int8", [](const DwWeights& w) { return w.is_int8; })
      .def_prop_ro("nbytes", &DwWeights::nbytes);

  m.def("pack_depthwise_s8", [](Arr3<int8_t> w) {
    nb::gil_scoped_release rel;
    return pack_depthwise_s8(w.data(), int64_t(w.shape(0)), int64_t(w.shape(1)), int64_t(w.shape(2)));
  }, "w"_a, "Pack int8 depthwise weights [KH, KW, C].");
  m.def("pack_depthwise_f32", [](Arr3<float> w) {
    nb::gil_scoped_release rel;
    return pack_depthwise_f32(w.data(), int64_t(w.shape(0)), int64_t(w.shape(1)), int64_t(w.shape(2)));
  }, "w"_a, "Pack fp32 depthwise weights [KH, KW, C].");

  m.def("dwconv_u8", &dwconv_u8_py, "w"_a, "x"_a, "in_zp"_a, "stride"_a, "padding"_a, "dilation"_a, "mult"_a, "bias"_a.none() = nb::none(), "lo"_a = -__builtin_inff(),
        "hi"_a = __builtin_inff(), "out_scale"_a = 1.f, "out_zp"_a = 0, "out_dtype"_a = "uint8",
        "out"_a.none() = nb::none(),
        "int8 NHWC depthwise conv: x[N,H,W,C] uint8 -> uint8 (requantized) or float32 [N,OH,OW,C].");
  m.def("dwconv_f32", &dwconv_f32_py, "w"_a, "x"_a, "stride"_a = Pair{1, 1}, "padding"_a = Pair{0, 0},
        "dilation"_a = Pair{1, 1}, "bias"_a.none() = nb::none(), "lo"_a = -__builtin_inff(),
        "hi"_a = __builtin_inff(), "out"_a.none() = nb::none(),
        "fp32 NHWC depthwise conv: x[N,H,W,C] float32 -> float32 [N,OH,OW,C].");
}

}  // namespace mixq
