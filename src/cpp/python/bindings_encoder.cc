// Bindings of the transformer encoder: mixq.runtime.encoder builds it layer by layer from packed
// weights, then runs it with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "exec/encoder.h"
#include "kernels/dispatch.h"
#include "ops/encoder_ops.h"
#include "python/ndarray_in.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mixq {
namespace {

EncoderLinear::Mode linear_mode(const std::string& s) {
  if (s == "float") return EncoderLinear::Mode::float_weights;
  if (s == "dynamic_int8") return EncoderLinear::Mode::dynamic_int8;
  if (s == "weight_only") return EncoderLinear::Mode::weight_only;
  throw std::invalid_argument("encoder linear mode must be float, dynamic_int8 or weight_only, got " + s);
}

void require_rows(const char* what, size_t got, int64_t want) {
  if (int64_t(got) != want)
    throw std::invalid_argument(std::string("encoder: ") + what + " must have " + std::to_string(want) +
                                " columns (the hidden size), got " + std::to_string(got));
}

// A new numpy float32 array owning its memory, and a pointer to fill it through.
std::pair<nb::ndarray<nb::numpy, float>, float*> float_array(std::vector<size_t> shape) {
  size_t n = 1;
  for (size_t s : shape) n *= s;
  float* buf = new float[std::max<size_t>(n, 1)];
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  return {nb::ndarray<nb::numpy, float>(buf, shape.size(), shape.data(), owner), buf};
}

std::pair<nb::ndarray<nb::numpy, float>, std::vector<double>> run_encoder(Encoder& enc, In<int64_t, 2> ids,
                                                                         std::optional<In<int64_t, 2>> type_ids,
                                                                         std::optional<In<int64_t, 2>> mask,
                                                                         bool profile) {
  const int64_t B = int64_t(ids.shape(0)), S = int64_t(ids.shape(1));
  for (const auto* a : {type_ids ? &*type_ids : nullptr, mask ? &*mask : nullptr})
    if (a && (int64_t(a->shape(0)) != B || int64_t(a->shape(1)) != S))
      throw std::invalid_argument("encoder: token type ids and attention mask must be shaped like the input ids");
  auto [out, buf] = float_array({size_t(B), size_t(S), size_t(enc.hidden())});
  std::vector<double> seconds;
  {
    nb::gil_scoped_release rel;
    enc.run(ids.data(), type_ids ? type_ids->data() : nullptr, mask ? mask->data() : nullptr, B, S, buf,
            profile ? &seconds : nullptr);
  }
  return {out, seconds};
}

}  // namespace

void bind_encoder(nb::module_& m) {
  nb::class_<EncoderLinear>(m, "EncoderLinear")
      .def("__init__",
           [](EncoderLinear* l, const PackedWeight& w, const std::string& mode, std::optional<In<float, 1>> bias,
              std::optional<In<float, 1>> smooth) {
             new (l) EncoderLinear();
             l->mode = linear_mode(mode);
             if (l->mode == EncoderLinear::Mode::weight_only && !w.low_bit())
               throw std::invalid_argument("weight_only linears need int4 or int2 weights");
             if (l->mode == EncoderLinear::Mode::dynamic_int8 && w.format != WeightFormat::s8_x32c4 && !w.low_bit())
               throw std::invalid_argument("dynamic_int8 linears need int8, int4 or int2 weights");
             if (l->mode == EncoderLinear::Mode::float_weights &&
                 w.format != WeightFormat::f32_x32 && w.format != WeightFormat::bf16_x32c2)
               throw std::invalid_argument("float linears need fp32 or bf16 weights");
             l->w = copy_packed(w);
             if (bias) l->bias = vec(*bias);
             if (smooth) {
               if (l->mode != EncoderLinear::Mode::dynamic_int8)
                 throw std::invalid_argument("smoothing factors apply to dynamic_int8 linears only");
               if (int64_t(smooth->shape(0)) != w.K)
                 throw std::invalid_argument("smoothing factors must have one value per input channel");
               l->smooth = vec(*smooth);
             }
           },
           "weight"_a, "mode"_a, "bias"_a.none(), "smooth"_a.none() = nb::none())
      .def("set_outliers",
           [](EncoderLinear& l, In<int32_t, 1> cols, In<float, 2> weight) {
             if (int64_t(weight.shape(0)) != l.w.N || weight.shape(1) != cols.shape(0))
               throw std::invalid_argument("outlier weights must be [N, number of outlier channels]");
             l.set_outliers(std::vector<int32_t>(cols.data(), cols.data() + cols.shape(0)), weight.data());
           },
           "channels"_a, "weight"_a)
      .def_prop_ro("outliers", [](const EncoderLinear& l) { return l.outliers; });

  nb::class_<Encoder>(m, "Encoder")
      .def(nb::init<int64_t, int64_t, float>(), "hidden"_a, "heads"_a, "eps"_a)
      .def("set_word_embeddings_f32",
           [](Encoder& e, In<float, 2> table) {
             require_rows("word embeddings", table.shape(1), e.hidden());
             e.set_word_embeddings_f32(table.data(), int64_t(table.shape(0)));
           },
           "table"_a)
      .def("set_word_embeddings_s8",
           [](Encoder& e, In<int8_t, 2> codes, In<float, 1> scale) {
             require_rows("word embeddings", codes.shape(1), e.hidden());
             if (scale.shape(0) != codes.shape(0)) throw std::invalid_argument("encoder: one scale per embedding row");
             e.set_word_embeddings_s8(codes.data(), scale.data(), int64_t(codes.shape(0)));
           },
           "codes"_a, "scale"_a)
      .def("set_embeddings",
           [](Encoder& e, In<float, 2> position, In<float, 2> token_type, In<float, 1> gamma, In<float, 1> beta) {
             require_rows("position embeddings", position.shape(1), e.hidden());
             require_rows("token type embeddings", token_type.shape(1), e.hidden());
             if (int64_t(gamma.shape(0)) != e.hidden() || int64_t(beta.shape(0)) != e.hidden())
               throw std::invalid_argument("encoder: embedding LayerNorm parameters must have hidden values");
             e.set_embeddings(position.data(), int64_t(position.shape(0)), token_type.data(),
                              int64_t(token_type.shape(0)), gamma.data(), beta.data());
           },
           "position"_a, "token_type"_a, "gamma"_a, "beta"_a)
      // The layer takes over the linears' weights (no second copy of a large model): each
      // EncoderLinear serves one add_layer call.
      .def("add_layer",
           [](Encoder& e, const std::vector<EncoderLinear*>& qkv, EncoderLinear& attn_out, EncoderLinear& ffn_in,
              EncoderLinear& ffn_out, In<float, 1> ln_attn_gamma, In<float, 1> ln_attn_beta, In<float, 1> ln_ffn_gamma,
              In<float, 1> ln_ffn_beta, bool int8_attention) {
             auto take = [](EncoderLinear& s) {
               if (s.w.data.size() == 0) throw std::invalid_argument("encoder: this EncoderLinear was already given to a layer");
               return std::move(s);
             };
             EncoderLayer l;
             for (EncoderLinear* p : qkv) l.qkv.push_back(take(*p));
             l.attn_out = take(attn_out), l.ffn_in = take(ffn_in), l.ffn_out = take(ffn_out);
             l.ln_attn_gamma = vec(ln_attn_gamma), l.ln_attn_beta = vec(ln_attn_beta);
             l.ln_ffn_gamma = vec(ln_ffn_gamma), l.ln_ffn_beta = vec(ln_ffn_beta);
             l.int8_attention = int8_attention;
             e.add_layer(std::move(l));
           },
           "qkv"_a, "attn_out"_a, "ffn_in"_a, "ffn_out"_a, "ln_attn_gamma"_a, "ln_attn_beta"_a, "ln_ffn_gamma"_a,
           "ln_ffn_beta"_a, "int8_attention"_a)
      .def("run", &run_encoder, "ids"_a, "type_ids"_a.none(), "mask"_a.none(), "profile"_a = false)
      .def_prop_ro("hidden", &Encoder::hidden)
      .def_prop_ro("heads", &Encoder::heads)
      .def_prop_ro("layers", &Encoder::layers)
      .def_prop_ro("vocab", &Encoder::vocab)
      .def_prop_ro("max_positions", &Encoder::max_positions)
      .def_prop_ro("weight_bytes", &Encoder::weight_bytes);

  m.def("encoder_ops_name", [] { return std::string(encoder_ops().name); });
  // The element-wise ops alone, for tests against numpy.
  m.def("layernorm_rows", [](In<float, 2> x, In<float, 1> gamma, In<float, 1> beta, float eps) {
    const int64_t R = int64_t(x.shape(0)), N = int64_t(x.shape(1));
    if (int64_t(gamma.shape(0)) != N || int64_t(beta.shape(0)) != N)
      throw std::invalid_argument("gamma and beta must have x.shape[1] values");
    auto [out, y] = float_array({size_t(R), size_t(N)});
    encoder_ops().layernorm(R, N, x.data(), N, gamma.data(), beta.data(), eps, y, N);
    return out;
  });
  // GELU as the GEMM epilogues apply it (the active ISA's epilogue over x as a float tile).
  m.def("gelu_rows", [](In<float, 2> x) {
    const int64_t R = int64_t(x.shape(0)), N = int64_t(x.shape(1));
    auto [out, y] = float_array({size_t(R), size_t(N)});
    Epilogue e;
    e.type = OutType::f32, e.out = y, e.ldo = N, e.gelu = true;
    active_dispatch().ops->epilogue_f32(e, x.data(), N, 0, R, 0, N);
    return out;
  });
  m.def("softmax_rows", [](In<float, 2> x) {
    auto [out, y] = float_array({x.shape(0), x.shape(1)});
    std::copy(x.data(), x.data() + x.size(), y);
    encoder_ops().softmax(int64_t(x.shape(0)), int64_t(x.shape(1)), y, int64_t(x.shape(1)));
    return out;
  });
  // The attention's fused scores -> u8 softmax on int32 scores acc * score_scale (no zero points),
  // as (codes, per-row scales).
  m.def("softmax_u8_rows", [](In<int32_t, 2> acc, float score_scale) {
    const int64_t R = int64_t(acc.shape(0)), N = int64_t(acc.shape(1));
    std::vector<int32_t> zero_points(size_t(R), 0), colsum(size_t(N), 0);
    std::vector<float> row_scale(size_t(R), 1.f), col_scale(size_t(N), score_scale), bias(size_t(N), 0.f);
    std::vector<float> scratch(size_t(R * N));
    auto [scales, s] = float_array({size_t(R)});
    uint8_t* q = new uint8_t[std::max<int64_t>(R * N, 1)];
    nb::capsule owner(q, [](void* p) noexcept { delete[] static_cast<uint8_t*>(p); });
    encoder_ops().scores_softmax_u8(R, N, acc.data(), N, zero_points.data(), row_scale.data(), colsum.data(),
                                    col_scale.data(), bias.data(), scratch.data(), q, N, s);
    size_t shape[2] = {size_t(R), size_t(N)};
    return std::make_pair(nb::ndarray<nb::numpy, uint8_t>(q, 2, shape, owner), scales);
  });
}

}  // namespace mixq
