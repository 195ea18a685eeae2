// The Llama-style decoder executor (see decoder.h). Projections run on the packed GEMM drivers,
// threaded inside (one token: a GEMV per projection, its columns split across threads);
// attention runs one (query head, token) per task over the cached keys and values, on the
// active ISA's EncoderOps (vectorized dot products and exp).
#include "exec/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/parallel.h"
#include "ops/encoder_ops.h"

namespace mixq {

namespace {

std::string dims(int64_t n, int64_t k) { return "[" + std::to_string(n) + ", " + std::to_string(k) + "]"; }

void check_linear(const EncoderLinear& l, int64_t N, int64_t K, const char* what) {
  if (l.w.N != N || l.w.K != K)
    throw std::invalid_argument(std::string("decoder: ") + what + " weight must be " + dims(N, K) + ", got " +
                                dims(l.w.N, l.w.K));
  if (!l.bias.empty()) throw std::invalid_argument(std::string("decoder: ") + what + " has a bias; Llama has none");
}

}  // namespace

Decoder::Decoder(int64_t hidden, int64_t heads, int64_t kv_heads, int64_t max_positions, float eps, double rope_theta,
                 bool kv_int8)
    : H_(hidden), heads_(heads), kv_heads_(kv_heads), d_(heads > 0 ? hidden / heads : 0), max_pos_(max_positions),
      eps_(eps), kv_int8_(kv_int8) {
  if (hidden < 1 || heads < 1 || hidden % heads != 0)
    throw std::invalid_argument("decoder: hidden size must be a positive multiple of the number of heads");
  if (kv_heads < 1 || heads % kv_heads != 0)
    throw std::invalid_argument("decoder: the number of heads must be a multiple of the number of KV heads");
  if (d_ % 2) throw std::invalid_argument("decoder: head size must be even (rotary embeddings)");
  if (max_positions < 1) throw std::invalid_argument("decoder: max_positions must be >= 1");
  if (!(eps > 0.f)) throw std::invalid_argument("decoder: RMSNorm eps must be > 0");
  if (!(rope_theta > 0.0)) throw std::invalid_argument("decoder: rope_theta must be > 0");
  // HF's rotate-half layout: frequency i turns lanes i and i + d/2 by position * theta^(-2i/d).
  const int64_t half = d_ / 2;
  cos_.resize(size_t(max_pos_ * half)), sin_.resize(size_t(max_pos_ * half));
  for (int64_t p = 0; p < max_pos_; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double a = double(p) * std::pow(rope_theta, -double(2 * i) / double(d_));
      cos_[size_t(p * half + i)] = float(std::cos(a));
      sin_[size_t(p * half + i)] = float(std::sin(a));
    }
}

void Decoder::set_embeddings(const float* table, int64_t vocab) {
  if (vocab < 1) throw std::invalid_argument("decoder: the embedding table needs rows");
  vocab_ = vocab;
  emb_.assign(table, table + vocab * H_);
}

void Decoder::set_head(std::vector<float> final_norm, EncoderLinear lm_head) {
  if (int64_t(final_norm.size()) != H_) throw std::invalid_argument("decoder: the final norm must have hidden values");
  if (vocab_ == 0) throw std::invalid_argument("decoder: set the embeddings before the output head");
  check_linear(lm_head, vocab_, H_, "output head");
  final_norm_ = std::move(final_norm);
  lm_head_ = std::move(lm_head);
  has_head_ = true;
}

void Decoder::add_layer(DecoderLayer l) {
  const int64_t kvd = kv_heads_ * d_;
  check_linear(l.qkv, H_ + 2 * kvd, H_, "fused q|k|v");
  check_linear(l.o, H_, H_, "attention output");
  if (l.gate_up.w.N % 2) throw std::invalid_argument("decoder: fused gate|up must have an even number of rows");
  const int64_t I = l.gate_up.w.N / 2;
  check_linear(l.gate_up, 2 * I, H_, "fused gate|up");
  check_linear(l.down, H_, I, "down");
  if (int64_t(l.attn_norm.size()) != H_ || int64_t(l.mlp_norm.size()) != H_)
    throw std::invalid_argument("decoder layer: RMSNorm weights must have hidden values");
  layers_.push_back(std::move(l));
  k_cache_.clear(), v_cache_.clear(), k_codes_.clear(), v_codes_.clear(), len_ = 0;
}

int64_t Decoder::weight_bytes() const {
  auto bytes = [](const EncoderLinear& l) { return l.w.nbytes() + l.outlier_w.nbytes(); };
  int64_t b = int64_t((emb_.size() + final_norm_.size()) * sizeof(float)) + (has_head_ ? bytes(lm_head_) : 0);
  for (const DecoderLayer& l : layers_)
    b += bytes(l.qkv) + bytes(l.o) + bytes(l.gate_up) + bytes(l.down) + 2 * H_ * int64_t(sizeof(float));
  return b;
}

void Decoder::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  len_ = 0;
}

void Decoder::rmsnorm(const float* x, const std::vector<float>& w, int64_t S, float* y) const {
  parallel_chunks(S, 8, [&](int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; ++t) {
    const float* r = x + t * H_;
    float ss = 0.f;
    for (int64_t k = 0; k < H_; ++k) ss += r[k] * r[k];
    const float inv = 1.f / std::sqrt(ss / float(H_) + eps_);
    for (int64_t k = 0; k < H_; ++k) y[t * H_ + k] = w[size_t(k)] * (r[k] * inv);
  }
  });
}

void Decoder::rope(float* rows, int64_t S, int64_t ld, int64_t n_heads, int64_t pos0) const {
  const int64_t half = d_ / 2;
  for (int64_t t = 0; t < S; ++t) {
    const float* c = cos_.data() + (pos0 + t) * half;
    const float* s = sin_.data() + (pos0 + t) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* x = rows + t * ld + h * d_;
      for (int64_t i = 0; i < half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a * c[i] - b * s[i];
        x[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

void Decoder::store_kv(int64_t li, const float* qkv, int64_t S, int64_t ld) {
  const int64_t d = d_, kvd = kv_heads_ * d_;
  for (int64_t t = 0; t < S; ++t)
    for (int64_t g = 0; g < kv_heads_; ++g) {
      const int64_t row = (li * kv_heads_ + g) * max_pos_ + len_ + t;
      const float* k = qkv + t * ld + H_ + g * d;
      const float* v = k + kvd;
      if (!kv_int8_) {
        std::memcpy(k_cache_.data() + row * d, k, size_t(d) * sizeof(float));
        std::memcpy(v_cache_.data() + row * d, v, size_t(d) * sizeof(float));
        continue;
      }
      // symmetric int8 per row: scale = max|x| / 127, codes round half to even
      auto quantize = [d](const float* x, int8_t* q, float& scale) {
        float amax = 0.f;
        for (int64_t c = 0; c < d; ++c) amax = std::max(amax, std::fabs(x[c]));
        scale = amax / 127.f;
        for (int64_t c = 0; c < d; ++c) q[c] = scale > 0.f ? int8_t(std::nearbyint(x[c] / scale)) : int8_t(0);
      };
      quantize(k, k_codes_.data() + row * d, k_scale_[size_t(row)]);
      quantize(v, v_codes_.data() + row * d, v_scale_[size_t(row)]);
    }
}

void Decoder::attention(int64_t layer, const float* qkv, int64_t S, int64_t ld, float* ctx) {
  const int64_t d = d_, group = heads_ / kv_heads_, pos0 = len_;
  const float scale = 1.f / std::sqrt(float(d));
  const EncoderOps& ops = encoder_ops();
  parallel_for(heads_ * S, [&](int64_t task, int) {
    const int64_t h = task % heads_, t = task / heads_, g = h / group;
    const int64_t L = pos0 + t + 1;  // causal: query at position pos0 + t sees keys 0 .. pos0 + t
    const int64_t row0 = (layer * kv_heads_ + g) * max_pos_;
    const float* q = qkv + t * ld + h * d;
    float* out = ctx + t * H_ + h * d;
    thread_local std::vector<float> scores;
    scores.resize(size_t(L));
    if (kv_int8_)
      ops.attend_s8(L, d, q, k_codes_.data() + row0 * d, v_codes_.data() + row0 * d, k_scale_.data() + row0,
                    v_scale_.data() + row0, scale, scores.data(), out);
    else
      ops.attend_f32(L, d, q, k_cache_.data() + row0 * d, v_cache_.data() + row0 * d, scale, scores.data(), out);
  });
}

void Decoder::forward(const int64_t* ids, int64_t S, float* logits, bool all_logits) {
  if (vocab_ == 0 || !has_head_) throw std::invalid_argument("decoder: embeddings and output head are not set");
  if (S < 1) throw std::invalid_argument("decoder: give at least one token");
  for (int64_t t = 0; t < S; ++t)
    if (ids[t] < 0 || ids[t] >= vocab_)
      throw std::invalid_argument("decoder: token id " + std::to_string(ids[t]) + " outside the vocabulary [0, " +
                                  std::to_string(vocab_) + ")");
  std::lock_guard<std::mutex> lock(mutex_);
  if (len_ + S > max_pos_)
    throw std::invalid_argument("decoder: " + std::to_string(len_) + " cached + " + std::to_string(S) +
                                " new tokens exceed the model's " + std::to_string(max_pos_) + " positions");
  const int64_t H = H_, kvd = kv_heads_ * d_, ldq = H + 2 * kvd, L = layers();
  const size_t cache_rows = size_t(L * kv_heads_ * max_pos_);
  if (kv_int8_ && k_codes_.empty()) {
    k_codes_.resize(cache_rows * size_t(d_)), v_codes_.resize(cache_rows * size_t(d_));
    k_scale_.resize(cache_rows), v_scale_.resize(cache_rows);
  } else if (!kv_int8_ && k_cache_.empty()) {
    k_cache_.resize(cache_rows * size_t(d_)), v_cache_.resize(cache_rows * size_t(d_));
  }
  int64_t I = 0;
  for (const DecoderLayer& l : layers_) I = std::max(I, l.gate_up.w.N / 2);
  arena_.resize(size_t((4 * S * H + S * ldq + 2 * S * std::max<int64_t>(I, 1)) * 4 + 8 * 64));
  uint8_t* p = arena_.as<uint8_t>();
  float* x = carve<float>(p, S * H);
  float* xn = carve<float>(p, S * H);
  float* tmp = carve<float>(p, S * H);
  float* ctx = carve<float>(p, S * H);
  float* qkv = carve<float>(p, S * ldq);
  float* gu = carve<float>(p, 2 * S * std::max<int64_t>(I, 1));
  for (int64_t t = 0; t < S; ++t) std::memcpy(x + t * H, emb_.data() + ids[t] * H, size_t(H) * sizeof(float));
  for (int64_t li = 0; li < L; ++li) {
    const DecoderLayer& l = layers_[size_t(li)];
    rmsnorm(x, l.attn_norm, S, xn);
    l.qkv.run(xn, S, H, qkv, ldq, nullptr, false, 0, 0, /*read_soon=*/true);
    rope(qkv, S, ldq, heads_, len_);
    rope(qkv + H, S, ldq, kv_heads_, len_);
    store_kv(li, qkv, S, ldq);
    attention(li, qkv, S, ldq, ctx);
    l.o.run(ctx, S, H, tmp, H, x, false, 0, 0, true);
    std::swap(x, tmp);
    rmsnorm(x, l.mlp_norm, S, xn);
    const int64_t Il = l.gate_up.w.N / 2;
    l.gate_up.run(xn, S, H, gu, 2 * Il, nullptr, false, 0, 0, true);
    // SiLU(gate) * up, into the gate half; a prompt's S x I values are worth the threads
    const EncoderOps& ops = encoder_ops();
    parallel_chunks(S * Il, 16384, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1;) {
        const int64_t t = e / Il, c0 = e % Il, c1 = std::min(Il, c0 + (e1 - e));
        float* g = gu + t * 2 * Il;
        ops.silu_gate(c1 - c0, g + c0, g + Il + c0);
        e += c1 - c0;
      }
    });
    l.down.run(gu, S, 2 * Il, tmp, H, x, false, 0, 0, true);
    std::swap(x, tmp);
  }
  len_ += S;
  const int64_t first = all_logits ? 0 : S - 1, rows = S - first;
  rmsnorm(x + first * H, final_norm_, rows, xn);
  lm_head_.run(xn, rows, H, logits, vocab_);
}

}  // namespace mixq
