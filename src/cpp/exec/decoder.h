// A Llama-style decoder run by the core in one call per step: token embedding, then per layer
// RMSNorm -> fused Q|K|V projection -> rotary embedding -> grouped-query attention over the KV
// cache -> output projection + residual, RMSNorm -> fused gate|up projection -> SiLU gate ->
// down projection + residual; final RMSNorm and the output head. Prefill (many tokens) runs the
// projections as GEMMs, decode (one token) as GEMVs on the same packed kernels.
// One sequence at a time: the decoder owns its KV cache ([layer][kv_head][position][d]): fp32, or
// int8 with one symmetric scale per (layer, kv head, position) row.
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/aligned_buffer.h"
#include "exec/encoder.h"

namespace mixq {

struct DecoderLayer {
  EncoderLinear qkv;      // [H + 2 * kv_dim, H]: output columns q | k | v
  EncoderLinear o;        // [H, H]
  EncoderLinear gate_up;  // [2 * I, H]: output columns gate | up
  EncoderLinear down;     // [H, I]
  std::vector<float> attn_norm, mlp_norm;  // RMSNorm weights, H values each
};

class Decoder {
 public:
  Decoder(int64_t hidden, int64_t heads, int64_t kv_heads, int64_t max_positions, float eps, double rope_theta,
          bool kv_int8 = false);
  void set_embeddings(const float* table, int64_t vocab);  // fp32 [vocab, hidden]
  void set_head(std::vector<float> final_norm, EncoderLinear lm_head);  // lm_head: [vocab, hidden]
  void add_layer(DecoderLayer layer);  // validated against the decoder's sizes

  // Appends S tokens at positions length() .. length() + S - 1 and writes logits: of every new
  // token ([S, vocab]) if all_logits, else of the last one only ([vocab]).
  void forward(const int64_t* ids, int64_t S, float* logits, bool all_logits);
  void reset();  // forget the cached sequence
  int64_t length() const { return len_; }

  int64_t hidden() const { return H_; }
  int64_t heads() const { return heads_; }
  int64_t kv_heads() const { return kv_heads_; }
  int64_t layers() const { return int64_t(layers_.size()); }
  int64_t vocab() const { return vocab_; }
  int64_t max_positions() const { return max_pos_; }
  int64_t weight_bytes() const;  // packed weights, norms, embedding table
  int64_t kv_bytes_per_token() const {
    return 2 * layers() * kv_heads_ * (kv_int8_ ? d_ + int64_t(sizeof(float)) : d_ * int64_t(sizeof(float)));
  }
  bool kv_int8() const { return kv_int8_; }

 private:
  void rmsnorm(const float* x, const std::vector<float>& w, int64_t S, float* y) const;
  void rope(float* rows, int64_t S, int64_t ld, int64_t n_heads, int64_t pos0) const;
  void attention(int64_t layer, const float* qkv, int64_t S, int64_t ld, float* ctx);
  void store_kv(int64_t layer, const float* qkv, int64_t S, int64_t ld);
  int64_t H_, heads_, kv_heads_, d_, max_pos_;
  float eps_;
  bool kv_int8_;
  int64_t vocab_ = 0, len_ = 0;
  std::vector<float> emb_, cos_, sin_, final_norm_;  // cos_/sin_: [max_pos][d / 2]
  EncoderLinear lm_head_;
  bool has_head_ = false;
  std::vector<DecoderLayer> layers_;
  std::vector<float> k_cache_, v_cache_;  // per layer [kv_heads][max_pos][d] (fp32 cache)
  std::vector<int8_t> k_codes_, v_codes_;  // the same layout (int8 cache)
  std::vector<float> k_scale_, v_scale_;   // per layer [kv_heads][max_pos] (int8 cache)
  std::mutex mutex_;  // one forward at a time: the cache and arena_ are shared state
  AlignedBuffer arena_;
};

}  // namespace mixq
