// Read-only C-contiguous CPU arrays as the encoder and decoder bindings take them.
#pragma once
#include <nanobind/ndarray.h>

#include <vector>

namespace mixq {

template <typename T, size_t D>
using In = nanobind::ndarray<const T, nanobind::ndim<D>, nanobind::c_contig, nanobind::device::cpu>;

inline std::vector<float> vec(const In<float, 1>& a) { return std::vector<float>(a.data(), a.data() + a.shape(0)); }

}  // namespace mixq
