#include "core/packed_weight.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/bf16.h"

namespace mixq {

PackedWeight copy_packed(const PackedWeight& w) {
  PackedWeight c;
  c.format = w.format, c.N = w.N, c.K = w.K, c.group_size = w.group_size;
  c.data.resize(w.data.size());
  std::memcpy(c.data.as<uint8_t>(), w.data.as<uint8_t>(), w.data.size());
  c.scale = w.scale, c.zero_point = w.zero_point, c.colsum = w.colsum, c.narrow_codes = w.narrow_codes;
  c.group_zp = w.group_zp, c.wsum = w.wsum;
  return c;
}

int PackedWeight::kr() const {
  switch (format) {
    case WeightFormat::s8_x32c4: return 4;
    case WeightFormat::f32_x32: return 1;
    case WeightFormat::bf16_x32c2: return 2;
    case WeightFormat::u4_x32c4:
    case WeightFormat::u2_x32c4: return 4;
  }
  return 1;
}

int PackedWeight::bits() const {
  switch (format) {
    case WeightFormat::s8_x32c4: return 8;
    case WeightFormat::f32_x32: return 32;
    case WeightFormat::bf16_x32c2: return 16;
    case WeightFormat::u4_x32c4: return 4;
    case WeightFormat::u2_x32c4: return 2;
  }
  return 0;
}

int64_t PackedWeight::panel_bytes() const {
  if (low_bit()) return n_groups() * group_block_bytes();
  int64_t elem = format == WeightFormat::f32_x32 ? 4 : format == WeightFormat::bf16_x32c2 ? 2 : 1;
  return k_steps() * kPanelN * kr() * elem;
}

int64_t PackedWeight::nbytes() const {
  return int64_t(data.size() + scale.size() * sizeof(float) + zero_point.size() * sizeof(int32_t) +
                 colsum.size() * sizeof(int32_t) + group_zp.size() + wsum.size() * sizeof(float));
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

// The int8 weight's column sums and whether its codes are narrow (PackedWeight::narrow_codes).
void derive_s8_columns(PackedWeight& pw) {
  pw.colsum.assign(size_t(pw.n_panels() * kPanelN), 0);
  const int8_t* d = pw.data.as<int8_t>();
  int lo = 0, hi = 0;
  for (int64_t j = 0; j < pw.n_panels(); ++j)
    for (int64_t p = 0; p < pw.k_steps(); ++p)
      for (int c = 0; c < kPanelN; ++c)
        for (int t = 0; t < 4; ++t, ++d) {
          pw.colsum[j * kPanelN + c] += *d;
          lo = std::min<int>(lo, *d), hi = std::max<int>(hi, *d);
        }
  pw.narrow_codes = lo >= -64 && hi <= 64;
}

// Byte offset, in low-bit panel data, of the unit holding k step p of column n.
inline int64_t lowbit_unit_offset(const PackedWeight& pw, int64_t n, int64_t p) {
  const int64_t U = 8 / pw.bits(), gs = pw.group_size / 4;
  return (n / kPanelN) * pw.panel_bytes() + (p / gs) * pw.group_block_bytes() + ((p % gs) / U) * 128 + (n % kPanelN) * 4;
}

// Byte offset of the bf16 scales (then u8 zero points) of group g in the panel of column n.
inline int64_t lowbit_scale_offset(const PackedWeight& pw, int64_t g, int64_t n) {
  return (n / kPanelN) * pw.panel_bytes() + g * pw.group_block_bytes() + pw.group_block_bytes() - 3 * kPanelN;
}

inline int lowbit_code(const PackedWeight& pw, int64_t n, int64_t p, int t) {
  const int bits = pw.bits();
  const uint8_t byte = pw.data.as<uint8_t>()[lowbit_unit_offset(pw, n, p) + t];
  return (byte >> ((p % (8 / bits)) * bits)) & ((1 << bits) - 1);
}

// Column sums of the dequantized weights (the activation zero-point term of the epilogue).
void derive_lowbit_sums(PackedWeight& pw) {
  const int64_t G = pw.n_groups(), NP = pw.n_pad(), gs = pw.group_size / 4;
  pw.wsum.assign(size_t(NP), 0.f);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t n = 0; n < NP; ++n) {
      const int zp = pw.group_zp[size_t(g * NP + n)];
      int64_t s = 0;
      for (int64_t p = g * gs; p < (g + 1) * gs; ++p)
        for (int t = 0; t < 4; ++t) s += lowbit_code(pw, n, p, t) - zp;
      pw.wsum[size_t(n)] += pw.group_scale(g, n) * float(s);
    }
}

void check_group(int64_t group_size) {
  if (group_size <= 0 || group_size % 16 != 0)
    throw std::invalid_argument("group_size must be a positive multiple of 16, got " + std::to_string(group_size));
}

}  // namespace

float PackedWeight::group_scale(int64_t g, int64_t n) const {
  uint16_t h;
  std::memcpy(&h, data.as<uint8_t>() + lowbit_scale_offset(*this, g, n) + 2 * (n % kPanelN), 2);
  return bf16_to_float(h);
}

PackedWeight pack_lowbit(const uint8_t* codes, int64_t N, int64_t K, int bits, int64_t group_size,
                         const float* scale, const uint8_t* zero_point) {
  check_dims(N, K);
  check_group(group_size);
  if (bits != 4 && bits != 2) throw std::invalid_argument("low-bit packing takes bits=4 or bits=2");
  PackedWeight pw;
  pw.format = bits == 4 ? WeightFormat::u4_x32c4 : WeightFormat::u2_x32c4;
  pw.N = N, pw.K = K, pw.group_size = group_size;
  const int64_t G = pw.n_groups(), NP = pw.n_pad(), U = 8 / bits, qmax = (1 << bits) - 1, gs = group_size / 4;
  pw.group_zp.assign(size_t(G * NP), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      if (zero_point[n * G + g] > qmax) throw std::invalid_argument("zero point out of range for the bit width");
      pw.group_zp[size_t(g * NP + n)] = zero_point[n * G + g];
    }
  pw.data.resize(pw.expected_data_bytes());
  uint8_t* out = pw.data.as<uint8_t>();
  for (int64_t j = 0; j < pw.n_panels(); ++j)
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t u = 0; u < gs / U; ++u)
        for (int c = 0; c < kPanelN; ++c)
          for (int t = 0; t < 4; ++t) {
            const int64_t n = j * kPanelN + c;
            uint8_t byte = 0;
            for (int64_t s = 0; s < U; ++s) {
              const int64_t k = ((g * gs) + u * U + s) * 4 + t;
              int code = 0;
              if (n < N) {
                // Padding past K takes the zero point, so it dequantizes to exactly 0.
                code = k < K ? codes[n * K + k] : pw.group_zp[size_t(g * NP + n)];
                if (code > qmax) throw std::invalid_argument("weight code out of range for the bit width");
              }
              byte |= uint8_t(code << (s * bits));
            }
            *out++ = byte;
          }
      for (int c = 0; c < kPanelN; ++c) {
        const int64_t n = j * kPanelN + c;
        const uint16_t sb = float_to_bf16(n < N ? scale[n * G + g] : 0.f);
        std::memcpy(out + 2 * c, &sb, 2);
        out[2 * kPanelN + c] = pw.group_zp[size_t(g * NP + n)];
      }
      out += 3 * kPanelN;
    }
  derive_lowbit_sums(pw);
  return pw;
}

PackedWeight pack_s8(const int8_t* w, int64_t N, int64_t K, const float* scale, const int32_t* zero_point) {
  check_dims(N, K);
  PackedWeight pw;
  pw.format = WeightFormat::s8_x32c4;
  pw.N = N, pw.K = K;
  pw.data.resize(pw.expected_data_bytes());
  pack_panels(w, N, K, 4, pw.data.as<int8_t>(), [](int8_t v) { return v; });
  pw.scale.assign(scale, scale + N);
  if (zero_point) pw.zero_point.assign(zero_point, zero_point + N);
  derive_s8_columns(pw);
  return pw;
}

PackedWeight pad_s8_taps(const PackedWeight& w, int64_t KH, int64_t KW, int64_t C, int64_t KW_to) {
  if (w.format != WeightFormat::s8_x32c4 || w.K != KH * KW * C || KW_to < KW)
    throw std::invalid_argument("pad_s8_taps: not the int8 weight of that convolution");
  const int64_t K_to = KH * KW_to * C, row = KW * C;
  std::vector<int8_t> codes(size_t(w.N * K_to), 0);
  const int8_t* src = w.data.as<int8_t>();
  for (int64_t n = 0; n < w.N; ++n)
    for (int64_t k = 0; k < w.K; ++k)  // code (n, k) of the x32c4 panels; k = ky * row + rest
      codes[size_t(n * K_to + k / row * KW_to * C + k % row)] =
          src[(n / kPanelN) * w.panel_bytes() + (k / 4) * kPanelN * 4 + (n % kPanelN) * 4 + k % 4];
  return pack_s8(codes.data(), w.N, K_to, w.scale.data(), w.zero_point.empty() ? nullptr : w.zero_point.data());
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
    derive_s8_columns(pw);
  } else if (n_scale || n_zp) {
    throw std::invalid_argument("float packed weights carry no scales or zero points");
  }
  return pw;
}

}  // namespace mixq

namespace mixq {

PackedWeight packed_lowbit_from_parts(WeightFormat format, int64_t N, int64_t K, int64_t group_size,
                                      const uint8_t* data, size_t data_bytes, const uint8_t* group_zp,
                                      size_t n_zp) {
  if (format != WeightFormat::u4_x32c4 && format != WeightFormat::u2_x32c4)
    throw std::invalid_argument("not a low-bit format");
  check_dims(N, K);
  check_group(group_size);
  PackedWeight pw;
  pw.format = format;
  pw.N = N, pw.K = K, pw.group_size = group_size;
  if (data_bytes != pw.expected_data_bytes() || n_zp != size_t(pw.n_groups() * pw.n_pad()))
    throw std::invalid_argument("low-bit packed weight parts have inconsistent sizes");
  pw.data.resize(data_bytes);
  std::memcpy(pw.data.as<uint8_t>(), data, data_bytes);
  pw.group_zp.assign(group_zp, group_zp + n_zp);
  const int qmax = (1 << pw.bits()) - 1;
  for (uint8_t z : pw.group_zp)
    if (z > qmax) throw std::invalid_argument("zero point out of range for the bit width");
  for (int64_t g = 0; g < pw.n_groups(); ++g)
    for (int64_t n = 0; n < pw.n_pad(); ++n)
      if (pw.data.as<uint8_t>()[lowbit_scale_offset(pw, g, n) + 2 * kPanelN + n % kPanelN] != pw.group_zp[size_t(g * pw.n_pad() + n)])
        throw std::invalid_argument("low-bit packed weight zero points disagree with its panels");
  derive_lowbit_sums(pw);
  return pw;
}

}  // namespace mixq
