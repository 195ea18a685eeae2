#include "packed_weight.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "bf16.h"

namespace mixq {

int PackedWeight::kr() const {
  switch (format) {
    case WeightFormat::s8_x32c4: return 4;
    case WeightFormat::f32_x32: return 1;
    case WeightFormat::bf16_x32c2: return 2;
  }
  return 1;
}

int PackedWeight::bits() const {
  switch (format) {
    case WeightFormat::s8_x32c4: return 8;
    case WeightFormat::f32_x32: return 32;
    case WeightFormat::bf16_x32c2: return 16;
  }
  return 0;
}

int64_t PackedWeight::panel_bytes() const {
  int64_t elem = format == WeightFormat::f32_x32 ? 4 : format == WeightFormat::bf16_x32c2 ? 2 : 1;
  return k_steps() * kPanelN * kr() * elem;
}

int64_t PackedWeight::nbytes() const {
  return int64_t(data.size() + scale.size() * sizeof(float) + zero_point.size() * sizeof(int32_t) +
                 colsum.size() * sizeof(int32_t));
}

namespace {

void check_dims(int64_t N, int64_t K) {
  if (N <= 0 || K <= 0) throw std::invalid_argument("weight shape must be positive, got [" + std::to_string(N) + ", " + std::to_string(K) + "]");
  if (K > (int64_t(1) << 24) || N > (int64_t(1) << 24)) throw std::invalid_argument("weight dimension too large");
}

// Copies element (n, k) of a row-major [N, K] matrix to panel order with zero padding.
template <typename Src, typename Dst, typename Convert>
void pack_panels(const Src* w, int64_t N, int64_t K, int kr, Dst* out, Convert convert) {
  const int64_t ks = (K + kr - 1) / kr, np = (N + kPanelN - 1) / kPanelN;
  for (int64_t j = 0; j < np; ++j)
    for (int64_t p = 0; p < ks; ++p)
      for (int c = 0; c < kPanelN; ++c)
        for (int t = 0; t < kr; ++t) {
          int64_t n = j * kPanelN + c, k = p * kr + t;
          *out++ = (n < N && k < K) ? convert(w[n * K + k]) : Dst(0);
        }
}

void compute_colsum(PackedWeight& pw) {
  pw.colsum.assign(size_t(pw.n_panels() * kPanelN), 0);
  const int8_t* d = pw.data.as<int8_t>();
  for (int64_t j = 0; j < pw.n_panels(); ++j)
    for (int64_t p = 0; p < pw.k_steps(); ++p)
      for (int c = 0; c < kPanelN; ++c)
        for (int t = 0; t < 4; ++t) pw.colsum[j * kPanelN + c] += *d++;
}

}  // namespace

PackedWeight pack_s8(const int8_t* w, int64_t N, int64_t K, const float* scale, const int32_t* zero_point) {
  check_dims(N, K);
  PackedWeight pw;
  pw.format = WeightFormat::s8_x32c4;
  pw.N = N, pw.K = K;
  pw.data.resize(pw.expected_data_bytes());
  pack_panels(w, N, K, 4, pw.data.as<int8_t>(), [](int8_t v) { return v; });
  pw.scale.assign(scale, scale + N);
  if (zero_point) pw.zero_point.assign(zero_point, zero_point + N);
  compute_colsum(pw);
  return pw;
}

PackedWeight pack_f32(const float* w, int64_t N, int64_t K) {
  check_dims(N, K);
  PackedWeight pw;
  pw.format = WeightFormat::f32_x32;
  pw.N = N, pw.K = K;
  pw.data.resize(pw.expected_data_bytes());
  pack_panels(w, N, K, 1, pw.data.as<float>(), [](float v) { return v; });
  return pw;
}

PackedWeight pack_bf16(const float* w, int64_t N, int64_t K) {
  check_dims(N, K);
  PackedWeight pw;
  pw.format = WeightFormat::bf16_x32c2;
  pw.N = N, pw.K = K;
  pw.data.resize(pw.expected_data_bytes());
  pack_panels(w, N, K, 2, pw.data.as<uint16_t>(), [](float v) { return float_to_bf16(v); });
  return pw;
}

PackedWeight packed_from_parts(WeightFormat format, int64_t N, int64_t K, const uint8_t* data, size_t data_bytes,
                               const float* scale, size_t n_scale, const int32_t* zero_point, size_t n_zp) {
  if (format != WeightFormat::s8_x32c4 && format != WeightFormat::f32_x32 && format != WeightFormat::bf16_x32c2)
    throw std::invalid_argument("unknown packed weight format " + std::to_string(uint32_t(format)));
  check_dims(N, K);
  PackedWeight pw;
  pw.format = format;
  pw.N = N, pw.K = K;
  if (data_bytes != pw.expected_data_bytes())
    throw std::invalid_argument("packed weight data has " + std::to_string(data_bytes) + " bytes, expected " +
                                std::to_string(pw.expected_data_bytes()));
  pw.data.resize(data_bytes);
  std::memcpy(pw.data.as<uint8_t>(), data, data_bytes);
  if (format == WeightFormat::s8_x32c4) {
    if (n_scale != size_t(N)) throw std::invalid_argument("packed int8 weight needs one scale per output channel");
    if (n_zp != 0 && n_zp != size_t(N)) throw std::invalid_argument("packed int8 weight zero points: expected 0 or N");
    pw.scale.assign(scale, scale + N);
    if (n_zp) pw.zero_point.assign(zero_point, zero_point + N);
    compute_colsum(pw);
  } else if (n_scale || n_zp) {
    throw std::invalid_argument("float packed weights carry no scales or zero points");
  }
  return pw;
}

}  // namespace mixq
