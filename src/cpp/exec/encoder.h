// A BERT-style transformer encoder run by the core in one call: embeddings, then per layer
// Q/K/V projections, multi-head attention (fp32 or int8 with dynamic scales), output projection
// + residual + LayerNorm, FFN + GELU, FFN output + residual + LayerNorm. Tokens are GEMM rows
// ([batch * seq, hidden], row-major), so any batch and sequence length runs on the same weights.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/packed_weight.h"
#include "gemm/gemm.h"

namespace mixq {

// One linear layer on the packed GEMM kernels: y = x W^T + bias (+ residual rows), float in and out.
struct EncoderLinear {
  enum class Mode { float_weights, dynamic_int8, weight_only };  // fp32/bf16; W8A8/W4A8/W2A8; W4A32/W2A32
  Mode mode = Mode::float_weights;
  PackedWeight w;
  std::vector<float> bias;
  // Per input channel multipliers applied to x before dynamic quantization (SmoothQuant: the
  // weights were packed multiplied by their inverse), or empty.
  std::vector<float> smooth;
  // LLM.int8()-style outlier input channels (dynamic_int8 only; sorted, or empty): their smooth
  // multiplier is 0, so the per-token scale comes from the other channels and they add exactly
  // nothing to the int8 GEMM; they run in fp32 instead, x[:, outliers] @ outlier_w^T with
  // outlier_w the [N, |outliers|] weight columns (not smoothed), added through the int8 GEMM's
  // residual. Set both with set_outliers.
  std::vector<int32_t> outliers;
  PackedWeight outlier_w;
  // cols: strictly increasing channels in [0, K); w_cols: their weights, [N, cols.size()] row-major.
  // Once per linear (empty cols: nothing to do).
  void set_outliers(std::vector<int32_t> cols, const float* w_cols);
  // residual: rows of N floats with stride ldy, added before the output is written; gelu: GELU
  // applied in the GEMM epilogue; col_block, col_block_stride: blocked output columns (see
  // Epilogue::col_block); read_soon: the caller reads y back at once, so a large y is not written
  // past the caches (see streaming_pays).
  void run(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy, const float* residual = nullptr,
           bool gelu = false, int64_t col_block = 0, int64_t col_block_stride = 0, bool read_soon = false) const;
  // Mode::dynamic_int8 in two steps: rows [r0, r0 + n) of the input quantized into q (sized by
  // q.resize(w, M)), then the GEMM on all M rows of q. Same results as run.
  void quantize_input(const float* x, int64_t r0, int64_t n, int64_t ldx, DynamicRows& q) const;
  void run_quantized(const DynamicRows& q, int64_t M, float* y, int64_t ldy, const float* residual) const;

 private:
  Epilogue epilogue(int64_t M, float* y, int64_t ldy, const float* residual, bool gelu, bool read_soon) const;
  const float* outlier_part(const float* x, int64_t M, int64_t ldx, const float* residual, int64_t ldr) const;
  const float* col_mult() const { return smooth.empty() ? nullptr : smooth.data(); }
};

struct EncoderLayer {
  // One fused [3H, H] projection (output columns q | k | v), or three [H, H] ones.
  std::vector<EncoderLinear> qkv;
  EncoderLinear attn_out, ffn_in, ffn_out;
  std::vector<float> ln_attn_gamma, ln_attn_beta, ln_ffn_gamma, ln_ffn_beta;
  bool int8_attention = false;  // QK^T and PV on the int8 kernels with dynamic per-row scales
};

class Encoder {
 public:
  Encoder(int64_t hidden, int64_t heads, float eps);
  // Word embeddings as fp32 [vocab, hidden], or int8 codes with one scale per row.
  void set_word_embeddings_f32(const float* table, int64_t vocab);
  void set_word_embeddings_s8(const int8_t* codes, const float* scale, int64_t vocab);
  void set_embeddings(const float* position, int64_t max_positions, const float* token_type, int64_t types,
                      const float* gamma, const float* beta);
  void add_layer(EncoderLayer layer);  // validated against the encoder's sizes

  // ids, type_ids (may be null: all 0), mask (may be null: all 1): [B, S]; out: [B, S, hidden].
  // op_seconds (optional): embeddings, then per layer qkv, attention, attn_out, ffn_in, ffn_out.
  void run(const int64_t* ids, const int64_t* type_ids, const int64_t* mask, int64_t B, int64_t S, float* out,
           std::vector<double>* op_seconds = nullptr);

  int64_t hidden() const { return H_; }
  int64_t heads() const { return heads_; }
  int64_t layers() const { return int64_t(layers_.size()); }
  int64_t vocab() const { return vocab_; }
  int64_t max_positions() const { return max_pos_; }
  int64_t weight_bytes() const;  // everything the encoder holds: packed weights, biases, norms, tables

 private:
  void embed(const int64_t* ids, const int64_t* type_ids, int64_t M, int64_t S, float* x) const;
  // Where the qkv GEMM put Q, K and V: row t of head h of sequence b, part p (0 = Q, 1 = K,
  // 2 = V) starts at b * seq + h * head + p * part + t * ld floats.
  struct QkvLayout {
    int64_t seq, head, part, ld;
  };
  // keys_len[b]: keys of sequence b that attention reads (its length without right padding).
  void attention(const EncoderLayer& layer, const float* qkv, const QkvLayout& at, const float* mask_add,
                 const int64_t* keys_len, int64_t B, int64_t S, float* ctx) const;
  int64_t H_, heads_;
  float eps_;
  int64_t vocab_ = 0, max_pos_ = 0, types_ = 0;
  std::vector<float> word_f32_, word_scale_, pos_, type_, emb_gamma_, emb_beta_;
  std::vector<int8_t> word_s8_;
  std::vector<EncoderLayer> layers_;
  std::mutex run_mutex_;  // one run at a time: the activations live in arena_ and ffn_codes_
  AlignedBuffer arena_;
  DynamicRows ffn_codes_;  // the FFN intermediate, quantized for ffn_out (see run)
};

}  // namespace mixq
