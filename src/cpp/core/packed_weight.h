// Weights packed once, offline, into the micro-panel layout the GEMM kernels read.
#pragma once
#include <cstdint>
#include <vector>

#include "core/aligned_buffer.h"

namespace mixq {

constexpr int kPanelN = 32;  // every format packs 32 output columns per panel

enum class WeightFormat : uint32_t {
  s8_x32c4 = 1,    // int8 codes, [N/32][K/4][32][4], per-channel float scale, optional zero points
  f32_x32 = 2,     // fp32, [N/32][K][32]
  bf16_x32c2 = 3,  // bf16, [N/32][K/2][32][2]
  // Low-bit codes (unsigned, with a zero point per group and column), group-wise along K.
  // Steps of 4 k as in s8_x32c4; U = 8/bits consecutive steps share the bytes of one unit of
  // [32][4] bytes, step s of the unit in bits [s*bits, (s+1)*bits). Each panel is a sequence of
  // group blocks: the group's units, then 32 bf16 scales and 32 u8 zero-point codes, so a kernel
  // streams codes and scales from one sequential stream.
  u4_x32c4 = 4,
  u2_x32c4 = 5,
};

struct PackedWeight {
  WeightFormat format = WeightFormat::s8_x32c4;
  int64_t N = 0, K = 0;
  AlignedBuffer data;               // the panels, zero padded in N and K
  std::vector<float> scale;         // s8: per output channel (a per-tensor scale is repeated)
  std::vector<int32_t> zero_point;  // s8: per output channel, empty when symmetric
  std::vector<int32_t> colsum;      // s8: sum of each column's codes (zero-point compensation)
  // s8: every code lies in [-64, 64], so a u8 x code pair sums below 2^15 and the vpmaddubsw kernels
  // (kind s7) are exact on it. Derived from the codes whenever a weight is packed or loaded.
  bool narrow_codes = false;
  // Low-bit formats: K is padded to n_groups * group_size.
  int64_t group_size = 0;
  std::vector<uint8_t> group_zp;    // zero-point codes [n_groups][N_pad] (also in the panels)
  std::vector<float> wsum;          // per column: sum over K of the dequantized weights

  int kr() const;
  int bits() const;
  bool low_bit() const { return format == WeightFormat::u4_x32c4 || format == WeightFormat::u2_x32c4; }
  int64_t n_pad() const { return n_panels() * kPanelN; }
  int64_t n_groups() const { return low_bit() ? (K + group_size - 1) / group_size : 1; }
  int64_t n_panels() const { return (N + kPanelN - 1) / kPanelN; }
  int64_t k_steps() const { return low_bit() ? n_groups() * group_size / 4 : (K + kr() - 1) / kr(); }
  // Values of each activation row the kernels read: K padded to the k step (or whole groups).
  int64_t padded_k() const { return k_steps() * kr(); }
  // Low-bit: bytes of one group block of a panel (codes, then bf16 scales and u8 zero points).
  int64_t group_block_bytes() const { return group_size / 4 * kPanelN * 4 * bits() / 8 + 3 * kPanelN; }
  // Low-bit: the group block holding k step p0 of the panel of column n.
  const uint8_t* lowbit_block(int64_t n, int64_t p0) const {
    return data.as<uint8_t>() + (n / kPanelN) * panel_bytes() + (p0 / (group_size / 4)) * group_block_bytes();
  }
  // Low-bit: the bf16 scale of (group g, column n), as stored.
  float group_scale(int64_t g, int64_t n) const;
  int64_t panel_bytes() const;  // one 32-column panel over all of K
  size_t expected_data_bytes() const { return size_t(n_panels() * panel_bytes()); }
  // Memory a deployed layer needs: codes (as packed, with padding), scales, zero points, column sums.
  int64_t nbytes() const;
};

// A deep copy (a plan owns its weights apart from the Python objects they were packed in).
PackedWeight copy_packed(const PackedWeight& w);

PackedWeight pack_s8(const int8_t* w, int64_t N, int64_t K, const float* scale, const int32_t* zero_point);
PackedWeight pack_f32(const float* w, int64_t N, int64_t K);
PackedWeight pack_bf16(const float* w, int64_t N, int64_t K);
// Low-bit: codes [N][K] (each < 2^bits), scale and zero-point codes [N][n_groups];
// group_size a multiple of 16. Scales are stored as bf16 (round to nearest even).
PackedWeight pack_lowbit(const uint8_t* codes, int64_t N, int64_t K, int bits, int64_t group_size,
                         const float* scale, const uint8_t* zero_point);
// The int8 weight of a KH x KW x C convolution ([N][KH][KW][C] along K) as that of a KH x KW_to x C
// one (KW_to >= KW) whose extra taps are zero: same scales and column sums.
PackedWeight pad_s8_taps(const PackedWeight& w, int64_t KH, int64_t KW, int64_t C, int64_t KW_to);
// Rebuilds a PackedWeight from its serialized parts (sizes validated, derived sums recomputed).
// int8: scale/zero_point per channel. Low-bit: data (with its scales) and group_zp.
PackedWeight packed_from_parts(WeightFormat format, int64_t N, int64_t K, const uint8_t* data, size_t data_bytes,
                               const float* scale, size_t n_scale, const int32_t* zero_point, size_t n_zp);
PackedWeight packed_lowbit_from_parts(WeightFormat format, int64_t N, int64_t K, int64_t group_size,
                                      const uint8_t* data, size_t data_bytes, const uint8_t* group_zp,
                                      size_t n_zp);

}  // namespace mixq
