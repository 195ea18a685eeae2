// Transformer element-wise ops (LayerNorm, softmax, attention operand packing): plain C++ in
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
  // Each of `rows` rows of n values (stride ld) becomes softmax(row), in place.
  void (*softmax)(int64_t rows, int64_t n, float* x, int64_t ld);
  // Attention scores of `rows` query rows, from the int32 tile of q_codes k^T (row stride ldacc)
  // to softmax codes: y = (acc - a_zp[r] * colsum) * (a_scale[r] * b_scale) + bias (epilogue_s32's
  // arithmetic: y has the same bits on AVX-512 and the reference build), then each row as uint8
  // codes: q = round(255 * exp(y - max)) (the largest code is 255), scale = 1 / (255 * sum
  // exp(y - max)), so q * scale = softmax(y) up to rounding. The AVX-512 exp is accurate to 3e-6
  // relative, enough for 8-bit codes, the reference build's to 1e-7: codes near a rounding tie can
  // differ between the two. Codes after n up to ldq are zeroed; x (rows x n) is scratch. One op,
  // not an epilogue and a softmax: no generic epilogue pass and no separate max pass (interleaved
  // A/B: BERT-Large attention at batch 8 4 % faster when fused, 8 % more with the cheaper exp and
  // the row-grouped passes).
  void (*scores_softmax_u8)(int64_t rows, int64_t n, const int32_t* acc, int64_t ldacc, const int32_t* a_zp,
                            const float* a_scale, const int32_t* colsum, const float* b_scale, const float* bias,
                            float* x, uint8_t* q, int64_t ldq, float* scale);
  // An attention head as int8 weights in the GEMM's x32c4 panel layout (panels of 32 weight rows,
  // panel_bytes apart; `panels` zeroed by the caller, padding stays 0), with per weight-row scales
  // and code sums. Keys: weight row j = x[j, :] (symmetric per key, scale times scale_mult).
  // Values: weight row c = x[:, c] (symmetric per channel), so no transposed copy is needed.
  void (*pack_keys_s8)(int64_t rows, int64_t n, const float* x, int64_t ldx, float scale_mult, int8_t* panels,
                       int64_t panel_bytes, float* scale, int32_t* colsum);
  void (*pack_values_s8)(int64_t rows, int64_t n, const float* x, int64_t ldx, int8_t* panels, int64_t panel_bytes,
                         float* scale, int32_t* colsum);
  // The decoder's attention of one query row q (d values) over L cached key and value rows (d
  // values each, contiguous): out = softmax(scale * K q) V. scores: L floats of scratch. The
  // int8 cache's rows are codes times their row's scale (k_scale, v_scale).
  void (*attend_f32)(int64_t L, int64_t d, const float* q, const float* k, const float* v, float scale, float* scores,
                     float* out);
  void (*attend_s8)(int64_t L, int64_t d, const float* q, const int8_t* k, const int8_t* v, const float* k_scale,
                    const float* v_scale, float scale, float* scores, float* out);
  // g = silu(g) * u over n values (SwiGLU).
  void (*silu_gate)(int64_t n, float* g, const float* u);
};

// The ops of the active ISA level (mixq.set_isa / MIXQ_ISA).
const EncoderOps& encoder_ops();

}  // namespace mixq
