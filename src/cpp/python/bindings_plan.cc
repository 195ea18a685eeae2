// Bindings of the plan executor: mixq.runtime builds a Plan op by op, then runs it with the GIL
// released. Structural checks live in Plan::add_op; users see them as ValueError.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "exec/plan.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mixq {
namespace {

using Pair = std::pair<int64_t, int64_t>;
using F32In1 = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using U8In1 = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using F32In4 = nb::ndarray<const float, nb::ndim<4>, nb::c_contig, nb::device::cpu>;

std::vector<float> to_vector(const std::optional<F32In1>& a) {
  if (!a) return {};
  return std::vector<float>(a->data(), a->data() + a->shape(0));
}

template <typename T>
T& with_io(T& op, std::string name, std::string kind, std::vector<int> inputs, int output) {
  op.name = std::move(name), op.kind = std::move(kind), op.inputs = std::move(inputs), op.output = output;
  return op;
}

ConvOp::Mode conv_mode(const std::string& s) {
  if (s == "float") return ConvOp::Mode::float_weights;
  if (s == "int8") return ConvOp::Mode::int8_activations;
  if (s == "weight_only") return ConvOp::Mode::weight_only;
  throw std::invalid_argument("conv mode must be float, int8 or weight_only");
}

// Runs the plan on x [N, H, W, C] float32; returns the output [N, H, W, C], per-op seconds and the
// im2col part of each (profile only). x is NHWC, or NCHW with nchw (transposed by the core).
std::tuple<nb::ndarray<nb::numpy, float>, std::vector<double>, std::vector<double>> run_plan(Plan& p, F32In4 x,
                                                                                             bool nchw, bool profile) {
  const TensorInfo &in = p.tensors().at(size_t(p.input())), &out = p.tensors().at(size_t(p.output()));
  const int64_t want[3] = {nchw ? in.C : in.H, nchw ? in.H : in.W, nchw ? in.W : in.C};
  if (int64_t(x.shape(1)) != want[0] || int64_t(x.shape(2)) != want[1] || int64_t(x.shape(3)) != want[2])
    throw std::invalid_argument("plan input must be [N, " + std::to_string(want[0]) + ", " + std::to_string(want[1]) +
                                ", " + std::to_string(want[2]) + (nchw ? "] (NCHW)" : "] (NHWC)"));
  const int64_t N = int64_t(x.shape(0));
  float* buf = new float[size_t(std::max<int64_t>(1, N * out.H * out.W * out.C))];
  nb::capsule owner(buf, [](void* ptr) noexcept { delete[] static_cast<float*>(ptr); });
  std::vector<double> seconds, im2col_seconds;
  {
    nb::gil_scoped_release rel;
    p.run(x.data(), N, buf, nchw, profile ? &seconds : nullptr, profile ? &im2col_seconds : nullptr);
  }
  size_t shape[4] = {size_t(N), size_t(out.H), size_t(out.W), size_t(out.C)};
  return {nb::ndarray<nb::numpy, float>(buf, 4, shape, owner), seconds, im2col_seconds};
}

}  // namespace

void bind_plan(nb::module_& m) {
  nb::class_<Plan>(m, "Plan")
      .def(nb::init<>())
      .def("add_tensor",
           [](Plan& p, int64_t H, int64_t W, int64_t C, const std::string& dtype, float scale, int32_t zp) {
             if (dtype != "float32" && dtype != "uint8") throw std::invalid_argument("tensor dtype must be float32 or uint8");
             TensorInfo t;
             t.H = H, t.W = W, t.C = C;
             t.dtype = dtype == "uint8" ? DType::u8 : DType::f32;
             t.q = {scale, zp};
             return p.add_tensor(t);
           },
           "H"_a, "W"_a, "C"_a, "dtype"_a, "scale"_a = 1.f, "zero_point"_a = 0)
      .def("add_conv",
           [](Plan& p, std::string name, int input, int output, const std::string& mode, Pair kernel, Pair stride,
              Pair padding, Pair dilation, int64_t groups, bool flatten_input, const std::vector<const PackedWeight*>& weights,
              std::optional<F32In1> bias, float lo, float hi, int residual) {
             auto op = std::make_unique<ConvOp>();
             with_io(*op, std::move(name), "conv", {input}, output);
             if (residual >= 0) op->inputs.push_back(residual), op->has_residual = true;
             op->mode = conv_mode(mode);
             std::tie(op->KH, op->KW) = kernel;
             std::tie(op->SH, op->SW) = stride;
             std::tie(op->PH, op->PW) = padding;
             std::tie(op->DH, op->DW) = dilation;
             op->groups = groups, op->flatten_input = flatten_input;
             for (const PackedWeight* w : weights) op->weights.push_back(copy_packed(*w));
             op->bias = to_vector(bias);
             op->lo = lo, op->hi = hi;
             p.add_op(std::move(op));
           },
           "name"_a, "input"_a, "output"_a, "mode"_a, "kernel"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a,
           "flatten_input"_a, "weights"_a, "bias"_a.none(), "lo"_a, "hi"_a, "residual"_a = -1)
      .def("add_depthwise",
           [](Plan& p, std::string name, int input, int output, Pair stride, Pair padding, Pair dilation,
              const DwWeights& weights, std::optional<F32In1> mult, std::optional<F32In1> bias, float lo, float hi) {
             auto op = std::make_unique<DepthwiseOp>();
             with_io(*op, std::move(name), "depthwise", {input}, output);
             op->KH = weights.KH, op->KW = weights.KW;
             std::tie(op->SH, op->SW) = stride;
             std::tie(op->PH, op->PW) = padding;
             std::tie(op->DH, op->DW) = dilation;
             op->weights = weights;
             op->mult = to_vector(mult);
             op->bias = to_vector(bias);
             op->lo = lo, op->hi = hi;
             p.add_op(std::move(op));
           },
           "name"_a, "input"_a, "output"_a, "stride"_a, "padding"_a, "dilation"_a, "weights"_a, "mult"_a.none(),
           "bias"_a.none(), "lo"_a, "hi"_a)
      .def("add_add",
           [](Plan& p, std::string name, int a, int b, int output, float lo, float hi) {
             auto op = std::make_unique<AddOp>();
             with_io(*op, std::move(name), "add", {a, b}, output);
             op->lo = lo, op->hi = hi;
             p.add_op(std::move(op));
           },
           "name"_a, "a"_a, "b"_a, "output"_a, "lo"_a, "hi"_a)
      .def("add_concat",
           [](Plan& p, std::string name, std::vector<int> inputs, int output) {
             auto op = std::make_unique<ConcatOp>();
             with_io(*op, std::move(name), "concat", std::move(inputs), output);
             p.add_op(std::move(op));
           },
           "name"_a, "inputs"_a, "output"_a)
      .def("add_pool",
           [](Plan& p, std::string name, int input, int output, bool is_max, Pair kernel, Pair stride, Pair padding,
              Pair dilation, bool count_include_pad) {
             auto op = std::make_unique<PoolOp>();
             with_io(*op, std::move(name), is_max ? "maxpool" : "avgpool", {input}, output);
             op->is_max = is_max, op->count_include_pad = count_include_pad;
             std::tie(op->KH, op->KW) = kernel;
             std::tie(op->SH, op->SW) = stride;
             std::tie(op->PH, op->PW) = padding;
             std::tie(op->DH, op->DW) = dilation;
             p.add_op(std::move(op));
           },
           "name"_a, "input"_a, "output"_a, "is_max"_a, "kernel"_a, "stride"_a, "padding"_a, "dilation"_a,
           "count_include_pad"_a)
      .def("add_convert",
           [](Plan& p, std::string name, int input, int output) {
             auto op = std::make_unique<ConvertOp>();
             with_io(*op, std::move(name), "convert", {input}, output);
             p.add_op(std::move(op));
           },
           "name"_a, "input"_a, "output"_a)
      .def("add_act",
           [](Plan& p, std::string name, int input, int output, int kind, float lo, float hi, std::optional<U8In1> table) {
             if (kind < 0 || kind > int(ActKind::clamp)) throw std::invalid_argument("unknown activation kind");
             auto op = std::make_unique<ActOp>();
             with_io(*op, std::move(name), "act", {input}, output);
             op->act = ActKind(kind), op->lo = lo, op->hi = hi;
             if (table) op->table.assign(table->data(), table->data() + table->shape(0));
             p.add_op(std::move(op));
           },
           "name"_a, "input"_a, "output"_a, "kind"_a, "lo"_a, "hi"_a, "table"_a.none())
      .def("set_io", &Plan::set_io, "input"_a, "output"_a)
      .def("run", [](Plan& p, F32In4 x, bool nchw) { return std::get<0>(run_plan(p, x, nchw, false)); }, "x"_a,
           "nchw"_a = false)
      .def("profile", [](Plan& p, F32In4 x, bool nchw) { return run_plan(p, x, nchw, true); }, "x"_a,
           "nchw"_a = false)
      .def_prop_ro("arena_bytes", &Plan::arena_bytes)
      .def_prop_ro("n_ops", [](const Plan& p) { return p.ops().size(); });
}

}  // namespace mixq
