// GEMM drivers: BLIS-style blocking over packed weights, threaded with parallel_for.
// C[M, N] = A[M, K] * W[N, K]^T, then the epilogue (zero points, scales, bias, clamp, requantize).
#pragma once
#include <cstdint>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/packed_weight.h"
#include "kernels/kernels.h"

namespace mixq {

// Quantized activations: u8 (or s8, shifted to u8 while packing) with a scale and zero point per
// row (stride 1) or per tensor (stride 0). Zero points are in the source domain (s8 or u8).
struct QuantizedRows {
  const uint8_t* data = nullptr;
  int64_t M = 0, lda = 0;
  bool is_signed = false;
  const float* scale = nullptr;
  int64_t scale_stride = 0;
  const int32_t* zero_point = nullptr;
  int64_t zp_stride = 0;
  // Rows already hold the kernels' padded depth (K rounded up to the kernel's k step, or to whole
  // groups for low-bit weights) with zeros after K: read in place, no padded copy.
  bool padded = false;
};

// Row stride (elements) for a copy of A: rows a multiple of 4 KiB apart would all map to the same
// L1 sets and evict each other while a micro-kernel walks mr of them in step.
int64_t conflict_free_stride(int64_t row_elems, int64_t elem_bytes);

// Should an fp32 output of out_bytes that the next op does not read back at once be written with
// non-temporal stores (Epilogue::stream_out)? Yes from the size of L2 up (see gemm.cc).
bool streaming_pays(int64_t out_bytes);

// out: e.type, e.out, e.ldo, e.bias, e.lo, e.hi, e.out_scale, e.out_zp are the caller's.
void gemm_s8(const PackedWeight& w, const QuantizedRows& a, Epilogue e);
// fp32 rows quantized per row to u8 with dynamic (asymmetric) scales: gemm_dynamic_s8's first
// step, for callers that produce a GEMM's input in row blocks and quantize each while it is in cache.
struct DynamicRows {
  AlignedBuffer codes;
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int64_t ldq = 0;
  // Room for M rows as the input of weights w.
  void resize(const PackedWeight& w, int64_t M);
  // Rows [r0, r0 + n) from x (K floats per row, stride ldx), each times col_mult[k] if given
  // (SmoothQuant), in parallel. Throws std::invalid_argument on NaN/Inf.
  void quantize(const float* x, int64_t r0, int64_t n, int64_t ldx, int64_t K, const float* col_mult);
  QuantizedRows rows(int64_t M) const;
};
// A convolution's GEMM rows read straight from its input (implicit GEMM, no im2col): row p is
// output pixel (n, oy, ox), its K = [ky][kx][c] taken from u8 NHWC input padded with the zero point
// (PH lines above and below, PW columns left and WP - W - PW right). A kernel row's KW taps are then
// one contiguous run of KW * C bytes.
struct ConvRows {
  const uint8_t* data = nullptr;  // [N][H][W][C] u8, unpadded
  int64_t N = 0, H = 0, W = 0, C = 0;
  int64_t PH = 0, PW = 0, WP = 0;  // padding, and the padded width (W + 2 PW or more: zero taps)
  int64_t KH = 1, KW = 1, SH = 1, SW = 1, OH = 0, OW = 0;
  float scale = 1.f;              // per-tensor activation quantization
  int32_t zero_point = 0;
  double* pad_seconds = nullptr;  // profiling: adds the wall time share of padding (thread time / threads)
};
// Whether gemm_s8_conv runs a conv of int8 weights w with per-pixel depth KW * C (dilation 1, one
// group): the plain int8 kernel of the active ISA, K steps that never straddle a kernel row.
bool gemm_s8_conv_runs(const PackedWeight& w, int64_t KW, int64_t C);
// The int8 GEMM of the conv (as gemm_s8 on its im2col rows, bit for bit; see gemm_s8_conv_runs).
void gemm_s8_conv(const PackedWeight& w, const ConvRows& a, Epilogue e);
// Off: every conv takes im2col (the tests compare the two paths).
void set_implicit_conv(bool on);
// One-row GEMMs on u2 weights: the u2lut kernel where the dispatcher's rule says (auto, 0), wherever
// the level has one (1), or never (2). For tests and benchmarks.
void set_u2_lut(int mode);

// fp32 activations, int8 weights: per-row dynamic u8 quantization inside the core (W8A8 dynamic).
// col_mult (optional): x[m, k] * col_mult[k] is what gets quantized (SmoothQuant factors).
// Throws std::invalid_argument on NaN/Inf input.
void gemm_dynamic_s8(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e,
                     const float* col_mult = nullptr);
// fp32 activations with fp32 or bf16 weights; float output.
void gemm_float(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e);

// fp32 activations with int4/int2 weights dequantized in registers (W4A32 / W2A32); float output.
// padded: rows already hold K rounded up to whole groups, zeros after K (see QuantizedRows).
void gemm_weight_only(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e, bool padded = false);
// The same with the activations rounded to bf16 first (W4A16 / W2A16); float output.
void gemm_weight_only_bf16(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e);

}  // namespace mixq
