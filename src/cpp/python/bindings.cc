// Thin nanobind bindings: typed arrays in, the core's raw-pointer functions called with the GIL
// released. Argument validation that users see lives in mixq/kernels.py; the checks here stop
// anything that slips through from reaching the kernels.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/cpu_features.h"
#include "core/packed_weight.h"
#include "core/parallel.h"
#include "core/probes.h"
#include "gemm/gemm.h"
#include "kernels/dispatch.h"
#include "testing/kernel_tester.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mixq {
namespace {

template <typename T> using In2 = nb::ndarray<const T, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
template <typename T> using In1 = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

template <typename T>
nb::ndarray<nb::numpy, T> new_array(std::initializer_list<size_t> shape) {
  size_t n = 1;
  for (size_t s : shape) n *= s;
  // Uninitialized (the kernels write every element); cache-line aligned, so large outputs take
  // the streaming stores (see streaming_pays in gemm.h).
  T* buf = static_cast<T*>(std::aligned_alloc(64, (std::max<size_t>(n, 1) * sizeof(T) + 63) / 64 * 64));
  if (!buf) throw std::bad_alloc();
  nb::capsule owner(buf, [](void* p) noexcept { std::free(p); });
  return nb::ndarray<nb::numpy, T>(buf, shape.size(), shape.begin(), owner);
}

const float* bias_ptr(const std::optional<In1<float>>& bias, int64_t N) {
  if (!bias) return nullptr;
  if (int64_t(bias->shape(0)) != N) throw std::invalid_argument("bias must have one value per output column");
  return bias->data();
}

void check_k(int64_t x_cols, const PackedWeight& w) {
  if (x_cols != w.K)
    throw std::invalid_argument("x has " + std::to_string(x_cols) + " columns but the weight expects K=" + std::to_string(w.K));
}

OutType out_type_from(const std::string& s) {
  if (s == "int32") return OutType::s32;
  if (s == "float32") return OutType::f32;
  if (s == "uint8") return OutType::u8;
  if (s == "int8") return OutType::s8;
  throw std::invalid_argument("out_dtype must be int32, float32, uint8 or int8");
}

nb::object make_output(OutType t, int64_t M, int64_t N, void** ptr) {
  auto wrap = [&](auto arr) {
    *ptr = arr.data();
    return nb::cast(arr);
  };
  switch (t) {
    case OutType::s32: return wrap(new_array<int32_t>({size_t(M), size_t(N)}));
    case OutType::f32: return wrap(new_array<float>({size_t(M), size_t(N)}));
    case OutType::u8: return wrap(new_array<uint8_t>({size_t(M), size_t(N)}));
    case OutType::s8: return wrap(new_array<int8_t>({size_t(M), size_t(N)}));
  }
  return nb::none();
}

nb::object matmul_s8(const PackedWeight& w, nb::ndarray<nb::ndim<2>, nb::c_contig, nb::device::cpu> x, float x_scale,
                     int32_t x_zp, const std::string& out_dtype, std::optional<In1<float>> bias, float lo, float hi,
                     float out_scale, int32_t out_zp) {
  const bool is_u8 = x.dtype() == nb::dtype<uint8_t>(), is_s8 = x.dtype() == nb::dtype<int8_t>();
  if (!is_u8 && !is_s8) throw std::invalid_argument("quantized x must be uint8 or int8");
  const int64_t M = int64_t(x.shape(0));
  check_k(int64_t(x.shape(1)), w);
  Epilogue e;
  e.type = out_type_from(out_dtype);
  if (e.type == OutType::s32 && w.low_bit())
    throw std::invalid_argument("low-bit weights accumulate in float: out_dtype int32 is not available");
  e.bias = bias_ptr(bias, w.N);
  e.lo = lo, e.hi = hi, e.out_scale = out_scale, e.out_zp = out_zp;
  e.ldo = w.N;
  nb::object out = make_output(e.type, M, w.N, &e.out);
  e.stream_out = e.type == OutType::f32 && streaming_pays(M * w.N * int64_t(sizeof(float)));  // a fresh array
  QuantizedRows a;
  a.data = static_cast<const uint8_t*>(x.data());
  a.M = M, a.lda = int64_t(x.shape(1)), a.is_signed = is_s8;
  a.scale = &x_scale, a.scale_stride = 0;
  a.zero_point = &x_zp, a.zp_stride = 0;
  {
    nb::gil_scoped_release rel;
    gemm_s8(w, a, e);
  }
  return out;
}

// act: "int8" (dynamic u8 activations for integer weights), "fp32" or "bf16" (weight-only low-bit).
nb::object matmul_float_input(const PackedWeight& w, In2<float> x, std::optional<In1<float>> bias, float lo, float hi,
                              const std::string& act) {
  const int64_t M = int64_t(x.shape(0));
  check_k(int64_t(x.shape(1)), w);
  Epilogue e;
  e.type = OutType::f32;
  e.bias = bias_ptr(bias, w.N);
  e.lo = lo, e.hi = hi, e.ldo = w.N;
  nb::object out = make_output(e.type, M, w.N, &e.out);
  e.stream_out = streaming_pays(M * w.N * int64_t(sizeof(float)));  // a fresh array
  {
    nb::gil_scoped_release rel;
    if (act == "fp32") gemm_weight_only(w, x.data(), M, int64_t(x.shape(1)), e);
    else if (act == "bf16") gemm_weight_only_bf16(w, x.data(), M, int64_t(x.shape(1)), e);
    else if (w.format == WeightFormat::s8_x32c4 || w.low_bit()) gemm_dynamic_s8(w, x.data(), M, int64_t(x.shape(1)), e);
    else gemm_float(w, x.data(), M, int64_t(x.shape(1)), e);
  }
  return out;
}

const IsaOps* ops_for(const std::string& isa_name_str) {
  Isa isa = isa_from_name(isa_name_str);
  for (const auto& k : kernel_table())
    if (k.kind == KernelKind::isa_ops && k.isa == isa) return &k.ops_as<IsaOps>();
  throw std::invalid_argument("no helper set compiled for ISA " + isa_name_str);
}

nb::dict cpu_info() {
  const CpuFeatures& f = cpu_features();
  nb::dict features;
  features["avx2"] = f.avx2, features["fma"] = f.fma, features["avx512f"] = f.avx512f;
  features["avx512bw"] = f.avx512bw, features["avx512vl"] = f.avx512vl, features["avx512dq"] = f.avx512dq;
  features["avx512vnni"] = f.avx512vnni, features["avx512bf16"] = f.avx512bf16;
  features["amx_tile"] = f.amx_tile, features["amx_int8"] = f.amx_int8, features["amx_bf16"] = f.amx_bf16;
  features["neon"] = f.neon, features["dotprod"] = f.dotprod, features["i8mm"] = f.i8mm;
  features["sve"] = f.sve, features["sve2"] = f.sve2, features["rvv"] = f.rvv;
  const Dispatch& d = active_dispatch();
  nb::dict out;
  out["features"] = features;
  out["isa"] = isa_name(d.isa);
  nb::list avail;
  for (Isa i : available_isas()) avail.append(isa_name(i));
  out["available_isas"] = avail;
  nb::dict kernels;  // the selected GEMM and depthwise kernel of each kind, and the helper set
  for (int kind = 0; kind < kKernelKinds; ++kind)
    if (const std::string family = kind_family(KernelKind(kind)); family == "gemm" || family == "depthwise") {
      const KernelInfo* k = d.kernels[size_t(kind)];
      if (KernelKind(kind) == KernelKind::u2lut && !d.u2lut_gemv) k = nullptr;  // built, not dispatched
      kernels[kind_name(KernelKind(kind))] = k ? k->name : "none";
    }
  kernels["ops"] = d.ops->name;
  out["kernels"] = kernels;
  out["l1d_bytes"] = f.l1d_bytes, out["l2_bytes"] = f.l2_bytes, out["l3_bytes"] = f.l3_bytes;
  out["physical_cores"] = f.physical_cores;
  out["threads"] = get_num_threads();
  return out;
}

}  // namespace

void bind_plan(nb::module_& m);  // bindings_plan.cc
void bind_depthwise(nanobind::module_& m);  // bindings_depthwise.cc
void bind_encoder(nanobind::module_& m);  // bindings_encoder.cc
void bind_decoder(nanobind::module_& m);  // bindings_decoder.cc
}  // namespace mixq

NB_MODULE(_core, m) {
  using namespace mixq;
  m.doc() = "mixq native core: packing, mixed-precision GEMM kernels, dispatch, threading";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "mixq: out of memory");
    }
  });

  m.def("cpu_info", &cpu_info);
  m.def("set_num_threads", &set_num_threads, "n"_a);
  m.def("get_num_threads", &get_num_threads);
  m.def("set_isa", [](const std::string& name) { set_isa(isa_from_name(name)); }, "name"_a);
  // Testing: convs through im2col only (off) or the implicit int8 GEMM where it applies (on).
  m.def("set_implicit_conv", &set_implicit_conv, "on"_a);
  // Testing and benchmarks: one-row u2 GEMMs on the lookup-table kernel by the dispatcher's rule
  // ("auto"), wherever the level has one ("on"), or never ("off").
  m.def("set_u2_lut", [](const std::string& mode) {
    if (mode == "auto") set_u2_lut(0);
    else if (mode == "on") set_u2_lut(1);
    else if (mode == "off") set_u2_lut(2);
    else throw std::invalid_argument("set_u2_lut: mode is 'auto', 'on' or 'off'");
  }, "mode"_a);
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa i : available_isas()) out.push_back(isa_name(i));
    return out;
  });
  m.def("last_kernel", [] { return std::string(last_kernel()); });
  m.def("kernel_list", [] {
    nb::list out;
    for (const auto& k : kernel_table()) {
      nb::dict d;
      d["name"] = k.name, d["isa"] = isa_name(k.isa), d["kind"] = kind_name(k.kind);
      d["family"] = kind_family(k.kind), d["unit"] = k.unit;
      d["mr"] = k.mr, d["nr"] = k.nr, d["kr"] = k.kr, d["needs_bf16"] = k.needs_bf16;
      if (k.mr_narrow) d["mr_narrow"] = k.mr_narrow;
      d["runnable"] = kernel_runnable(k);
      if (k.ops_per_iter > 0) d["ops_per_iter"] = k.ops_per_iter;
      out.append(d);
    }
    return out;
  });
  m.def("test_kernel", [](const std::string& name, uint64_t seed) {
    const KernelInfo* k = find_kernel(name);
    if (!k) throw std::invalid_argument("no kernel named '" + name + "' in this build (see kernel_list())");
    KernelTestReport r;
    {
      nb::gil_scoped_release rel;
      r = test_kernel(*k, seed);
    }
    nb::dict d;
    d["name"] = k->name, d["kind"] = kind_name(k->kind), d["isa"] = isa_name(k->isa);
    d["runnable"] = r.runnable, d["reference"] = r.reference;
    d["cases"] = r.cases, d["mismatches"] = r.mismatches;
    d["max_error"] = r.max_error, d["tolerance"] = r.tolerance;
    d["first_mismatch"] = r.first_mismatch;
    if (r.gops > 0 || k->ops_per_iter > 0) d["gops"] = r.gops, d["checksum"] = r.checksum;
    return d;
  }, "name"_a, "seed"_a = 0,
     "Runs one listed kernel by name on edge shapes against its kind's reference (see kernel_tester.h).");
  m.def("measure_peak", [](const std::string& kind, double seconds) {
    nb::gil_scoped_release rel;
    return measure_peak_gops(kind.c_str(), seconds);
  }, "kind"_a, "seconds"_a = 0.3);
  m.def("measure_bandwidth", [](double seconds, size_t bytes) {
    nb::gil_scoped_release rel;
    return measure_read_bandwidth(seconds, bytes);
  }, "seconds"_a = 0.5, "bytes"_a = 0);

  nb::class_<PackedWeight>(m, "PackedWeight")
      .def_prop_ro("format", [](const PackedWeight& w) { return uint32_t(w.format); })
      .def_prop_ro("N", [](const PackedWeight& w) { return w.N; })
      .def_prop_ro("K", [](const PackedWeight& w) { return w.K; })
      .def_prop_ro("bits", &PackedWeight::bits)
      .def_prop_ro("nbytes", &PackedWeight::nbytes)
      .def("data", [](const PackedWeight& w) {
        auto a = new_array<uint8_t>({w.data.size()});
        std::memcpy(a.data(), w.data.as<uint8_t>(), w.data.size());
        return a;
      })
      .def("scale", [](const PackedWeight& w) { return w.scale; })
      .def("zero_point", [](const PackedWeight& w) { return w.zero_point; })
      .def("colsum", [](const PackedWeight& w) { return w.colsum; })
      .def_prop_ro("group_size", [](const PackedWeight& w) { return w.group_size; })
      .def("group_scale", [](const PackedWeight& w) {  // [n_groups][N_pad], as stored (bf16)
        std::vector<float> out;
        for (int64_t g = 0; g < w.n_groups(); ++g)
          for (int64_t n = 0; n < w.n_pad(); ++n) out.push_back(w.group_scale(g, n));
        return out;
      })
      .def("group_zp", [](const PackedWeight& w) { return w.group_zp; });

  m.def("pack_s8", [](In2<int8_t> w, In1<float> scale, std::optional<In1<int32_t>> zp) {
    const int64_t N = int64_t(w.shape(0)), K = int64_t(w.shape(1));
    if (int64_t(scale.shape(0)) != N) throw std::invalid_argument("need one scale per output channel");
    if (zp && int64_t(zp->shape(0)) != N) throw std::invalid_argument("need one zero point per output channel");
    nb::gil_scoped_release rel;
    return pack_s8(w.data(), N, K, scale.data(), zp ? zp->data() : nullptr);
  }, "w"_a, "scale"_a, "zero_point"_a = nb::none());
  m.def("pack_lowbit", [](In2<uint8_t> codes, int bits, int64_t group_size, In2<float> scale, In2<uint8_t> zp) {
    const int64_t N = int64_t(codes.shape(0)), K = int64_t(codes.shape(1));
    const int64_t G = (K + group_size - 1) / std::max<int64_t>(group_size, 1);
    if (int64_t(scale.shape(0)) != N || int64_t(scale.shape(1)) != G || int64_t(zp.shape(0)) != N ||
        int64_t(zp.shape(1)) != G)
      throw std::invalid_argument("scale and zero_point must be [N, n_groups]");
    nb::gil_scoped_release rel;
    return pack_lowbit(codes.data(), N, K, bits, group_size, scale.data(), zp.data());
  }, "codes"_a, "bits"_a, "group_size"_a, "scale"_a, "zero_point"_a);
  m.def("packed_lowbit_from_parts", [](uint32_t format, int64_t N, int64_t K, int64_t group_size, In1<uint8_t> data,
                                        In1<uint8_t> zp) {
    return packed_lowbit_from_parts(WeightFormat(format), N, K, group_size, data.data(), data.shape(0), zp.data(),
                                    zp.shape(0));
  });
  m.def("pack_f32", [](In2<float> w) {
    nb::gil_scoped_release rel;
    return pack_f32(w.data(), int64_t(w.shape(0)), int64_t(w.shape(1)));
  }, "w"_a);
  m.def("pack_bf16", [](In2<float> w) {
    nb::gil_scoped_release rel;
    return pack_bf16(w.data(), int64_t(w.shape(0)), int64_t(w.shape(1)));
  }, "w"_a);
  m.def("packed_from_parts", [](uint32_t format, int64_t N, int64_t K, In1<uint8_t> data, In1<float> scale,
                                 In1<int32_t> zp) {
    return packed_from_parts(WeightFormat(format), N, K, data.data(), data.shape(0), scale.data(), scale.shape(0),
                             zp.data(), zp.shape(0));
  });

  m.def("matmul_s8", &matmul_s8, "w"_a, "x"_a, "x_scale"_a, "x_zero_point"_a, "out_dtype"_a, "bias"_a.none(),
        "lo"_a, "hi"_a, "out_scale"_a, "out_zero_point"_a);
  m.def("matmul_float_input", &matmul_float_input, "w"_a, "x"_a, "bias"_a.none(), "lo"_a, "hi"_a,
        "act"_a = "int8");

  // Per-ISA helpers exposed for the tests (SIMD packing must equal reference packing).
  m.def("prepare_a_u8", [](const std::string& isa, In2<uint8_t> x, bool flip_sign) {
    const int64_t rows = int64_t(x.shape(0)), K = int64_t(x.shape(1)), K4 = (K + 3) / 4 * 4;
    auto out = new_array<uint8_t>({size_t(rows), size_t(K4)});
    auto sums = new_array<int32_t>({size_t(rows)});
    const IsaOps* ops = ops_for(isa);
    ops->prepare_a_u8(rows, K, x.data(), K, flip_sign, out.data(), K4);
    ops->row_sums_u8(rows, K, out.data(), K4, sums.data());
    return nb::make_tuple(out, sums);
  });
  m.def("prepare_a_bf16", [](const std::string& isa, In2<float> x) {
    const int64_t rows = int64_t(x.shape(0)), K = int64_t(x.shape(1)), K2 = (K + 1) / 2 * 2;
    auto out = new_array<uint16_t>({size_t(rows), size_t(K2)});
    ops_for(isa)->prepare_a_bf16(rows, K, x.data(), K, out.data(), K2);
    return out;
  });
  m.def("quantize_rows_u8", [](const std::string& isa, In2<float> x) {
    const int64_t M = int64_t(x.shape(0)), K = int64_t(x.shape(1));
    auto q = new_array<uint8_t>({size_t(M), size_t(K)});  // ldq = K: no padding
    auto scale = new_array<float>({size_t(M)});
    auto zp = new_array<int32_t>({size_t(M)});
    if (!ops_for(isa)->quantize_rows_u8(M, K, x.data(), K, q.data(), K, scale.data(), zp.data(), nullptr))
      throw std::invalid_argument("input contains NaN or Inf");
    return nb::make_tuple(q, scale, zp);
  });
  // Every panel of a low-bit weight in the groupwise kernels' layout: [panels][groups][bytes].
  m.def("unpack_lowbit_s8", [](const std::string& isa, const PackedWeight& w) {
    if (!w.low_bit()) throw std::invalid_argument("unpack_lowbit_s8 needs int4 or int2 weights");
    const int64_t G = w.n_groups(), group_steps = w.group_size / 4, group_bytes = group_steps * 128 + 128;
    auto out = new_array<int8_t>({size_t(w.n_panels()), size_t(G), size_t(group_bytes)});
    for (int64_t p = 0; p < w.n_panels(); ++p)
      ops_for(isa)->unpack_lowbit_s8(w.bits(), w.lowbit_block(p * kPanelN, 0), group_steps, G,
                                     out.data() + p * G * group_bytes);
    return out;
  });
  bind_plan(m);
  bind_depthwise(m);
  bind_encoder(m);
  bind_decoder(m);
}
