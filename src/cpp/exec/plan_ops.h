// The plan's non-GEMM operators on NHWC tensors: element-wise, pooling, layout and precision
// boundaries. All are memory-bound loops over channel rows, threaded over pixels.
#pragma once
#include <cstdint>

#include "core/quantize_u8.h"

namespace mixq {

// Activation tensors are float32 or asymmetric uint8 (real = scale * (q - zp)).
enum class DType : int32_t { f32 = 0, u8 = 1 };

struct QParams {
  float scale = 1.f;
  int32_t zp = 0;
};

// n values, float <-> u8.
void quantize_tensor(int64_t n, const float* x, QParams q, uint8_t* out);
void dequantize_tensor(int64_t n, const uint8_t* x, QParams q, float* out);

// out = clamp(a + b, lo, hi), where u8 operands are dequantized and a u8 output requantized.
void add_tensors(int64_t n, DType dt, const void* a, QParams qa, const void* b, QParams qb, float lo, float hi,
                 void* out, QParams qo);

// Copies `pixels` rows of c channels into a channel slice (row stride ld_out) of the output,
// requantizing u8 rows when the scales differ.
void copy_channels(int64_t pixels, int64_t c, DType dt, const void* in, QParams qi, void* out, int64_t ld_out,
                   QParams qo);

struct PoolShape {
  int64_t N, H, W, C, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW;
  bool count_include_pad;
};
// Max pooling (padding never wins) and average pooling (divisor: the taps inside the image, or
// all KH*KW with count_include_pad). u8 pooling keeps the input's scale for max; average pooling
// requantizes to qo.
void max_pool(const PoolShape& s, DType dt, const void* in, void* out);
void avg_pool(const PoolShape& s, DType dt, const void* in, QParams qi, void* out, QParams qo);

// Element-wise activations that are not a clamp (a clamp is fused into the producer's epilogue).
enum class ActKind : int32_t { silu = 0, hardswish = 1, sigmoid = 2, clamp = 3 };
float apply_act(ActKind k, float x, float lo, float hi);
void act_f32(int64_t n, ActKind k, float lo, float hi, const float* in, float* out);
// u8 -> u8 through a 256-entry table (exact: every input code has one output code).
void lut_u8(int64_t n, const uint8_t* table, const uint8_t* in, uint8_t* out);

}  // namespace mixq
