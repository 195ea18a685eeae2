// Micro-kernel and helper signatures, and the kinds and entries of the one list (kernels.inc).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "core/isa.h"
#include "ops/depthwise_impl.h"
#include "ops/encoder_ops.h"

namespace mixq {

// Computes an mr x (32*np) tile C (+)= A * B_panels over k_steps steps of the kernel's kr.
//  a: A rows, row stride lda elements; step p of row i is a[i*lda + p*kr .. + kr) (no packing:
//     rows are read in place, so A needs no copy when it is already u8/fp32 with K % kr == 0)
//  b: np packed B panels of [k_steps][32][kr] elements each, b_stride elements apart
//  c: output tile, row stride ldc (elements); accumulate=false overwrites it.
// mr is 1..MR of the kernel; np is any count (the driver passes up to nr/32, or 4 for 1-2 rows).
// s8 only: the k steps of a row come in runs of seg_steps (k_steps a multiple of it), run s from
// a + s * seg_stride, not contiguously: an implicit-GEMM conv's kernel rows, each a run of its
// padded input, in one call that keeps the accumulators in registers. seg_steps = k_steps: plain rows.
// cols (<= 32 * np): the tile columns the caller reads; a kernel may leave the others unwritten (a
// layer of 16 channels need not compute the zero half of its panel).
using GemmS8Fn = void (*)(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                          int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                          int64_t seg_stride, int cols);
using GemmF32Fn = void (*)(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const float* b,
                           int64_t b_stride, float* c, int64_t ldc, bool accumulate);
// s8q: the s8 product of a tile over all of K (A in runs as GemmS8Fn), requantized to u8 in
// registers by the folded epilogue (Epilogue::col_scale, u8 output, no col_block): codes of rows
// [m, m + mr) and columns [n, n + cols) written to e.out, each folded_u8_code() bit for bit.
struct Epilogue;
using GemmS8QFn = void (*)(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                           int64_t b_stride, int64_t seg_steps, int64_t seg_stride, int cols, const Epilogue& e,
                           int64_t m, int64_t n);
// s8w: A rows as int16 (a[i*lda + 4p + t], t < 4, zero-extended u8), B panels of [k_steps][4 chunks]
// [2][8 columns][2] int16: per step and chunk of 8 columns, the pairs (k0, k1) of each column, then
// the pairs (k2, k3) (WidenS8Fn below), so one vpmaddwd by a broadcast activation pair
// gives 8 columns' partial sums in column order.
using GemmS8WideFn = void (*)(int mr, int np, int64_t k_steps, const int16_t* a, int64_t lda, const int16_t* b,
                              int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate);
// One x32c4 int8 panel's k steps [0, steps) -> that s8w layout (dst 32-byte aligned).
using WidenS8Fn = void (*)(const int8_t* src, int64_t steps, int16_t* dst);
using GemmBf16Fn = void (*)(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint16_t* b,
                            int64_t b_stride, float* c, int64_t ldc, bool accumulate);

// Low-bit weights (u4/u2 codes, scale and zero point per group of K and column): an int32 dot
// product per group (vpdpbusd on unpacked codes), folded into fp32 accumulators at each group end
// with the group's bf16 scales, which follow its codes in the panel (u4_x32c4 layout):
//   c += scale[g][n] * dot_g - scale_zp[g][n] * rowsum_g[m]
// where rowsum_g is the sum of the u8 activations of row m over group g. The remaining activation
// zero-point term needs only the column sums of the dequantized weights (epilogue_lowbit).
struct LowBitArgs {
  int64_t group_steps;      // k steps per group; k_steps of a call is a multiple of it
  const float* rowsum;      // [row][ld_rowsum], at the first row and group of the call
  int64_t ld_rowsum;
  // k steps from the call's first that hold K; the rest is padding of the last group (codes equal
  // to the zero point, zero activations: it adds nothing), which a kernel may skip.
  int64_t valid_steps = INT64_MAX;
  // u2lut kernels only: the tables of the call's k steps (BuildU2LutFn), or nullptr: the kernel
  // builds them itself (the driver builds them once per call, shared by every column).
  const uint8_t* lut = nullptr;
};
// b: the panel's first group block of the call; b_stride: bytes between panels.
using GemmLowBitFn = void (*)(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                              int64_t b_stride, const LowBitArgs& args, float* c, int64_t ldc, bool accumulate);

// u2lut (lookup-table GEMV of one row on u2 weights) tables of `units` units of 16 u8 activations
// a[16 u ..]: per unit, for h = 0, 1 (code nibble: k steps 4u + 2h, 4u + 2h + 1), plane p = 0, 1 and
// lane q = 0..3, 16 bytes: entry n of T = a[16u + 8h + q] * (n & 3) + a[16u + 8h + 4 + q] * (n >> 2)
// (<= 1530), plane 0 = T & 63, plane 1 = T >> 6, at unit * 256 + 128 h + 64 p + 16 q + n.
constexpr int64_t kU2LutUnitBytes = 256;
using BuildU2LutFn = void (*)(const uint8_t* a, int64_t units, uint8_t* lut);

// Weight-only low-bit (W4A32 / W2A32): fp32 activations, codes dequantized in registers
// (scale * (code - zero point)) and multiplied in fp32. a: fp32 rows read in place.
using GemmWeightOnlyFn = void (*)(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const uint8_t* b,
                                  int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate);
// The same with bf16 activations (W4A16 / W2A16): a: bf16 rows; the weights stay exact (bf16 holds
// code - zero point exactly, the scales apply per group in fp32).
using GemmWeightOnlyBf16Fn = void (*)(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda,
                                      const uint8_t* b, int64_t b_stride, int64_t group_steps, float* c, int64_t ldc,
                                      bool accumulate);

// Groupwise int8 (the W4A8 / W2A8 path for more than a few rows): low-bit panels unpacked once per
// block into s8 codes minus zero points (IsaOps::unpack_lowbit_s8), so the kernel is vpdpbusd
// alone, with the fold into fp32 at each group end:  c += scale[g][n] * sum_g a * (q - z).
// b: per group, group_steps x [32][4] s8 codes, then 32 fp32 scales; b_stride: bytes between panels.
using GemmGroupwiseFn = void (*)(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                                 int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate);

// How an int32 accumulator tile becomes the caller's output.
enum class OutType { s32, f32, u8, s8 };

struct Epilogue {
  OutType type = OutType::f32;
  int64_t K = 0;
  // zero-point compensation: corr = acc - b_zp[n]*rowsum[m] - a_zp[m]*colsum[n] + K*a_zp[m]*b_zp[n]
  const int32_t* rowsum = nullptr;  // per row: sum of its u8 activations (needed if b_zp)
  const int32_t* a_zp = nullptr;    // per row (stride a_zp_stride; 0 = per tensor), u8 domain
  int64_t a_zp_stride = 0;
  const int32_t* colsum = nullptr;  // per output column (packed weight)
  const int32_t* b_zp = nullptr;    // per output column, or nullptr when symmetric
  const float* a_scale = nullptr;   // per row (stride a_scale_stride)
  int64_t a_scale_stride = 0;
  const float* b_scale = nullptr;   // per output column
  const float* wsum = nullptr;      // low-bit: per column sum of dequantized weights
  const float* bias = nullptr;      // per output column or nullptr
  // A fused skip connection, added before the clamp: u8 (dequantized) or fp32 rows of ld_residual.
  const uint8_t* residual_u8 = nullptr;
  const float* residual_f32 = nullptr;
  int64_t ld_residual = 0;
  float residual_scale = 1.f;
  int32_t residual_zp = 0;
  bool gelu = false;  // exact-erf GELU after the residual, before the clamp (f32/u8 outputs)
  float lo = -__builtin_inff(), hi = __builtin_inff();  // fused activation clamp
  // Static activations (one scale and zero point for all rows), symmetric weights: the whole
  // affine folded per column: y = (acc - col_offset) * col_scale + col_bias, already divided by out_scale for u8
  // outputs (then rounded, plus out_zp); the result clamped to [q_lo, q_hi] (output codes for u8).
  // Set by gemm_s8; an ISA epilogue may use it instead of the fields above.
  const float* col_scale = nullptr;
  const float* col_bias = nullptr;
  const int32_t* col_offset = nullptr;
  float q_lo = 0.f, q_hi = 0.f;
  // Set with the folded terms when folded_y_bounded(): a u8 epilogue may then round y without
  // capping it first (no y can overflow int32).
  bool y_bounded = false;
  bool zero_offsets = false;  // set with the folded terms when every col_offset is 0 (activation zero point 0)
  float out_scale = 1.f;            // requantized outputs
  int32_t out_zp = 0;
  void* out = nullptr;
  int64_t ldo = 0;                  // output row stride (elements)
  // fp32 outputs by non-temporal stores, set by a caller whose output is large and not read
  // back at once (see streaming_pays in gemm.h). ISA epilogues may ignore it; the values written
  // are the same.
  bool stream_out = false;
  // Output columns in blocks of col_block (0: plain rows of ldo): column n of row m goes to
  // out + (n / col_block) * col_block_stride + m * ldo + n % col_block. The encoder writes Q, K
  // and V head-major this way (a block is one head), so attention reads each head contiguously.
  // col_block is a multiple of 16; float and u8/s8 outputs only.
  int64_t col_block = 0, col_block_stride = 0;
};

// The folded epilogue's u8 code of accumulator acc at (m, n) (Epilogue::col_scale set), as every
// vector epilogue computes it: one FMA, the residual's FMA, clamp (NaN to the low bound), round
// half to even, zero point.
inline uint8_t folded_u8_code(const Epilogue& e, int32_t acc, int64_t m, int64_t n) {
  const float inv = 1.f / e.out_scale, zp = float(e.out_zp);
  float y = __builtin_fmaf(float(int32_t(uint32_t(acc) - uint32_t(e.col_offset[n]))), e.col_scale[n], e.col_bias[n]);
  if (e.residual_u8)
    y = __builtin_fmaf(float(int32_t(e.residual_u8[m * e.ld_residual + n])) - float(e.residual_zp),
                       e.residual_scale * inv, y);
  else if (e.residual_f32)
    y = __builtin_fmaf(e.residual_f32[m * e.ld_residual + n], inv, y);
  const float lo = e.q_lo - zp, hi = e.q_hi - zp;
  y = y > lo ? y : lo;
  y = y < hi ? y : hi;
  return uint8_t(int32_t(__builtin_nearbyintf(y)) + e.out_zp);
}

// Whether every y of the folded u8 epilogue is finite and below 2^30 in magnitude for any product
// of K u8 x s8 terms (|acc| <= K * 255 * 128) in columns [0, N), residual included.
inline bool folded_y_bounded(const Epilogue& e, int64_t K, int64_t N) {
  if (!e.col_scale || e.residual_f32) return false;
  const double acc = double(K) * 255.0 * 128.0;
  double most = e.residual_u8 ? 255.0 * std::fabs(double(e.residual_scale) / double(e.out_scale)) : 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const double y = (acc + std::fabs(double(e.col_offset[n]))) * std::fabs(double(e.col_scale[n])) +
                     std::fabs(double(e.col_bias[n]));
    if (!(y < double(1 << 30) - most)) return false;  // NaN terms included
  }
  return most < double(1 << 30);
}

// Element offset of output (m, n) in e.out.
inline int64_t out_offset(const Epilogue& e, int64_t m, int64_t n) {
  if (!e.col_block) return m * e.ldo + n;
  return (n / e.col_block) * e.col_block_stride + m * e.ldo + n % e.col_block;
}

// Helpers whose speed matters but that need no hand-written intrinsics: the same source is
// compiled once per ISA (ops_impl.h) so the compiler vectorizes it for that ISA.
struct IsaOps {
  const char* name;
  Isa isa;
  // Copy rows of u8/s8 A into u8 rows of ldd = round_up(K, 4) bytes: XOR 0x80 when the source is
  // signed (s8 -> u8 shift), zeros after K.
  void (*prepare_a_u8)(int64_t rows, int64_t K, const uint8_t* a, int64_t lda, bool flip_sign, uint8_t* dst,
                       int64_t ldd);
  // out[r] = sum of the K u8 values of row r.
  void (*row_sums_u8)(int64_t rows, int64_t K, const uint8_t* a, int64_t lda, int32_t* out);
  // fp32 rows -> bf16 rows of ldd = round_up(K, 2), round to nearest even, zeros after K.
  void (*prepare_a_bf16)(int64_t rows, int64_t K, const float* a, int64_t lda, uint16_t* dst, int64_t ldd);
  // out[r * ld_out + g] = sum of the u8 values of row r over k in [g*group, (g+1)*group) (k < K).
  void (*group_sums_u8)(int64_t rows, int64_t K, const uint8_t* a, int64_t lda, int64_t group, float* out,
                        int64_t ld_out);
  // Dynamic per-row asymmetric u8 quantization into rows of ldq bytes (zeros after K).
  // Returns false on a NaN/Inf input.
  // col_mult (optional): x[m, k] * col_mult[k] is quantized (per-channel smoothing, fused).
  bool (*quantize_rows_u8)(int64_t M, int64_t K, const float* x, int64_t ldx, uint8_t* q, int64_t ldq,
                           float* scale, int32_t* zp, const float* col_mult);
  // Epilogue for an int32 tile of rows [m0, m0+mr) and columns [n0, n0+nc) (acc row stride ldacc).
  void (*epilogue_s32)(const Epilogue& e, const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mr,
                       int64_t n0, int64_t nc);
  // Epilogue for a low-bit float tile: y = a_scale[m] * (acc - a_zp[m] * wsum[n]) + bias, clamp,
  // then float or requantized output (e.wsum must be set).
  void (*epilogue_lowbit)(const Epilogue& e, const float* acc, int64_t ldacc, int64_t m0, int64_t mr,
                          int64_t n0, int64_t nc);
  // Epilogue for a float tile (bias + clamp), then float or requantized output.
  void (*epilogue_f32)(const Epilogue& e, const float* acc, int64_t ldacc, int64_t m0, int64_t mr,
                       int64_t n0, int64_t nc);
  // A streaming read of n bytes (the bandwidth probe); returns their 8-byte-word sum.
  uint64_t (*sum_bytes)(const uint8_t* p, size_t n);
  // n_groups low-bit group blocks of one panel -> the groupwise kernels' s8 layout (GemmGroupwiseFn).
  void (*unpack_lowbit_s8)(int bits, const uint8_t* blocks, int64_t group_steps, int64_t n_groups, int8_t* dst);
  // C planes of W floats (plane floats apart) -> W pixels of C interleaved u8 codes (out[x * C + c]),
  // rounded as quantize_u8 (finite inputs): an NCHW input row into NHWC, or with C = 1 a plain run.
  void (*quantize_planes_u8)(const float* src, int64_t plane, int64_t C, int64_t W, float inv_scale, float zp,
                             uint8_t* out);
  // True when none of x[0, n) is NaN or Inf (a plan's input check).
  bool (*all_finite)(const float* x, int64_t n);
};

// A compute-roof loop of `iters` iterations (kernels.inc gives the ops per iteration).
using PeakLoopFn = int64_t (*)(int64_t iters);
// A depthwise kernel (ops/depthwise_impl.h).
using DwKernelFn = void (*)(const DwCall& call);

// Every kind of the list, in its order.
enum class KernelKind {
#define MIXQ_KERNEL_KIND(kind, family, type) kind,
#include "kernels/kernels.inc"
};
constexpr int kKernelKinds = 0
#define MIXQ_KERNEL_KIND(kind, family, type) +1
#include "kernels/kernels.inc"
    ;
const char* kind_name(KernelKind kind);
const char* kind_family(KernelKind kind);  // gemm, gemm_helper, depthwise, ops, peak
// The type of each kind's entries: a function pointer type or an ops struct.
#define MIXQ_KERNEL_KIND(kind, family, type) using KindType_##kind = type;
#include "kernels/kernels.inc"

// The kernels/<unit>/ folders: the dispatch level each needs, and whether it also needs the
// AVX512-BF16 extension, which is not on the level ladder. MIXQ_BUILT_<unit>: did CMake compile it.
struct KernelUnit {
  Isa level;
  bool needs_bf16;
};
constexpr KernelUnit kUnit_ref{Isa::ref, false}, kUnit_avx2{Isa::avx2, false}, kUnit_avx512{Isa::avx512, false},
    kUnit_avx512vnni{Isa::avx512vnni, false}, kUnit_avx512bf16{Isa::avx512, true}, kUnit_neon{Isa::neon, false},
    kUnit_dotprod{Isa::dotprod, false}, kUnit_i8mm{Isa::i8mm, false}, kUnit_sve{Isa::sve, false},
    kUnit_rvv{Isa::rvv, false};
#define MIXQ_BUILT_ref 1
#define MIXQ_BUILT_avx2 MIXQ_HAVE_AVX2
#define MIXQ_BUILT_avx512 MIXQ_HAVE_AVX512
#define MIXQ_BUILT_avx512vnni MIXQ_HAVE_AVX512VNNI
#define MIXQ_BUILT_avx512bf16 MIXQ_HAVE_AVX512BF16
#define MIXQ_BUILT_neon MIXQ_HAVE_NEON
#define MIXQ_BUILT_dotprod MIXQ_HAVE_DOTPROD
#define MIXQ_BUILT_i8mm MIXQ_HAVE_I8MM
#define MIXQ_BUILT_sve MIXQ_HAVE_SVE
#define MIXQ_BUILT_rvv MIXQ_HAVE_RVV
// MIXQ_WHEN(guard, ...) keeps its text only when the guard expands to 1.
#define MIXQ_WHEN(guard, ...) MIXQ_WHEN_(guard, __VA_ARGS__)
#define MIXQ_WHEN_(guard, ...) MIXQ_WHEN_##guard(__VA_ARGS__)
#define MIXQ_WHEN_1(...) __VA_ARGS__
#define MIXQ_WHEN_0(...)

// Declarations of every entry, built or not (only built ones are referenced).
#define MIXQ_GEMM_KERNEL(name, kind, unit, mr, nr, kr) std::remove_pointer_t<KindType_##kind> name;
#define MIXQ_KERNEL(name, kind, unit) std::remove_pointer_t<KindType_##kind> name;
#define MIXQ_PEAK_LOOP(name, kind, unit, ops_per_iter) std::remove_pointer_t<KindType_##kind> name;
#define MIXQ_OPS_SET(name, kind, unit) extern const KindType_##kind name;
#include "kernels/kernels.inc"

// One entry of the list, as compiled into this build.
struct KernelInfo {
  const char* name;
  KernelKind kind;
  const char* unit;      // its kernels/<unit>/ folder
  Isa isa;               // the dispatch level it needs
  bool needs_bf16;       // ... and the AVX512-BF16 extension on top of it
  int mr, nr, kr;        // GEMM tile (0 for other kinds)
  double ops_per_iter;   // peak loops (0 for other kinds)
  const void* fn;        // the function, or the ops struct, of the kind's type
  int mr_narrow = 0;     // GEMM: rows a call takes for tiles of <= 16 columns (half for <= 32); 0: mr
  template <typename T> T fn_as() const { return reinterpret_cast<T>(const_cast<void*>(fn)); }
  template <typename T> const T& ops_as() const { return *static_cast<const T*>(fn); }
  // Rows a call takes for a tile of `cols` columns.
  int rows_for(int64_t cols) const { return mr_narrow == 0 || cols > 32 ? mr : cols > 16 ? mr_narrow / 2 : mr_narrow; }
};

// Every entry this build compiled, in list order.
const std::vector<KernelInfo>& kernel_table();
// The entry of that name, or nullptr.
const KernelInfo* find_kernel(const std::string& name);
// Can this CPU run it (its level and, if needed, AVX512-BF16)?
bool kernel_runnable(const KernelInfo& k);

}  // namespace mixq
