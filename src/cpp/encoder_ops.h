// Transformer element-wise ops (LayerNorm, GELU, masked-row softmax): plain C++ in
// encoder_ops_impl.h, compiled once per ISA level so the compiler vectorizes each. Single-threaded:
// the encoder splits rows across threads.
#pragma once
#include <cstdint>

namespace mixq {

struct EncoderOps {
  const char* name;
  // y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over rows of n values (y may be x).
  void (*layernorm)(int64_t rows, int64_t n, const float* x, int64_t ldx, const float* gamma, const float* beta,
                    float eps, float* y, int64_t ldy);
  // x = x * Phi(x) in place (exact-erf GELU, erf to ~1.5e-7 absolute).
  void (*gelu)(int64_t n, float* x);
  // Each of `rows` rows of n values (stride ld) becomes softmax(row), in place.
  void (*softmax)(int64_t rows, int64_t n, float* x, int64_t ld);
  // Symmetric int8 per row: scale[r] = max|x[r]| / 127 (1 for an all-zero row), codes rounded to
  // nearest even; the stored scale is multiplied by scale_mult.
  void (*quantize_rows_s8)(int64_t rows, int64_t n, const float* x, int64_t ldx, float scale_mult, int8_t* q,
                           int64_t ldq, float* scale);
  // The same per column of a [rows, n] matrix, written transposed: q[c * ldq + r] is the code of
  // x[r, c] and scale[c] its column's scale (attention values: one scale per channel).
  void (*quantize_cols_s8)(int64_t rows, int64_t n, const float* x, int64_t ldx, float* scale, int8_t* q,
                           int64_t ldq);
};

// The ops of the active ISA level (mixq.set_isa / MIXQ_ISA).
const EncoderOps& encoder_ops();

}  // namespace mixq
