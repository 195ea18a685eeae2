// Bindings of the Llama-style decoder: mixq.runtime.decoder builds it layer by layer from packed
// weights (EncoderLinear objects), then runs one forward call per step with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "exec/decoder.h"
#include "python/ndarray_in.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mixq {
namespace {

EncoderLinear take(EncoderLinear& s) {  // a linear serves one layer: its weights move, not copy
  if (s.w.data.size() == 0) throw std::invalid_argument("decoder: this EncoderLinear was already given to a layer");
  return std::move(s);
}

nb::ndarray<nb::numpy, float> forward(Decoder& dec, In<int64_t, 1> ids, bool all_logits) {
  const int64_t S = int64_t(ids.shape(0));
  const size_t rows = all_logits ? size_t(std::max<int64_t>(S, 1)) : 1;
  float* buf = new float[rows * size_t(std::max<int64_t>(dec.vocab(), 1))];
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  {
    nb::gil_scoped_release rel;
    dec.forward(ids.data(), S, buf, all_logits);
  }
  size_t shape[2] = {rows, size_t(dec.vocab())};
  return nb::ndarray<nb::numpy, float>(buf, 2, shape, owner);
}

}  // namespace

void bind_decoder(nb::module_& m) {
  nb::class_<Decoder>(m, "Decoder")
      .def(nb::init<int64_t, int64_t, int64_t, int64_t, float, double, bool>(), "hidden"_a, "heads"_a, "kv_heads"_a,
           "max_positions"_a, "eps"_a, "rope_theta"_a, "kv_int8"_a = false)
      .def("set_embeddings",
           [](Decoder& d, In<float, 2> table) {
             if (int64_t(table.shape(1)) != d.hidden())
               throw std::invalid_argument("decoder: embedding rows must have the hidden size");
             d.set_embeddings(table.data(), int64_t(table.shape(0)));
           },
           "table"_a)
      .def("set_head", [](Decoder& d, In<float, 1> norm, EncoderLinear& head) { d.set_head(vec(norm), take(head)); },
           "final_norm"_a, "lm_head"_a)
      .def("add_layer",
           [](Decoder& d, EncoderLinear& qkv, EncoderLinear& o, EncoderLinear& gate_up, EncoderLinear& down,
              In<float, 1> attn_norm, In<float, 1> mlp_norm) {
             DecoderLayer l;
             l.qkv = take(qkv), l.o = take(o), l.gate_up = take(gate_up), l.down = take(down);
             l.attn_norm = vec(attn_norm), l.mlp_norm = vec(mlp_norm);
             d.add_layer(std::move(l));
           },
           "qkv"_a, "o"_a, "gate_up"_a, "down"_a, "attn_norm"_a, "mlp_norm"_a)
      .def("forward", &forward, "ids"_a, "all_logits"_a = false)
      .def("reset", &Decoder::reset)
      .def_prop_ro("length", &Decoder::length)
      .def_prop_ro("hidden", &Decoder::hidden)
      .def_prop_ro("heads", &Decoder::heads)
      .def_prop_ro("kv_heads", &Decoder::kv_heads)
      .def_prop_ro("layers", &Decoder::layers)
      .def_prop_ro("vocab", &Decoder::vocab)
      .def_prop_ro("max_positions", &Decoder::max_positions)
      .def_prop_ro("weight_bytes", &Decoder::weight_bytes)
      .def_prop_ro("kv_bytes_per_token", &Decoder::kv_bytes_per_token)
      .def_prop_ro("kv_int8", &Decoder::kv_int8);
}

}  // namespace mixq
