// The transformer encoder executor (see encoder.h). Projections run on the packed GEMM drivers,
// threaded inside; attention runs one (sequence, head) pair per task: int8 fused per block of
// query rows on the GEMM micro-kernel (attention_head_s8), fp32 on the GEMM drivers run serially
// in the task (nested parallel_for calls do).
#include "exec/encoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "core/parallel.h"
#include "gemm/gemm.h"
#include "kernels/dispatch.h"
#include "ops/encoder_ops.h"

namespace mixq {

const EncoderOps& encoder_ops() { return active_dispatch()[KernelKind::encoder_ops]->ops_as<EncoderOps>(); }

namespace {


// Shapes `pw` as int8 x32c4 weights [N, K] with zeroed panels, reusing its buffers.
void shape_s8(PackedWeight& pw, int64_t N, int64_t K) {
  pw.format = WeightFormat::s8_x32c4;
  pw.N = N, pw.K = K;
  pw.zero_point.clear();
  pw.data.resize(pw.expected_data_bytes());
  std::memset(pw.data.as<uint8_t>(), 0, pw.data.size());
  pw.scale.resize(size_t(N));
  pw.colsum.assign(size_t(pw.n_pad()), 0);
}

// One head's keys [L, d] (rows of stride ld) as the weights of the scores GEMM, times `scale`
// (the 1/sqrt(d) of the scores): int8 symmetric per key, or fp32.
void pack_keys(const float* k, int64_t L, int64_t d, int64_t ld, bool int8, float scale, PackedWeight& pw,
               std::vector<float>& rows) {
  if (int8) {
    shape_s8(pw, L, d);
    encoder_ops().pack_keys_s8(L, d, k, ld, scale, pw.data.as<int8_t>(), pw.panel_bytes(), pw.scale.data(),
                               pw.colsum.data());
    return;
  }
  rows.resize(size_t(L * d));
  for (int64_t j = 0; j < L; ++j)
    for (int64_t c = 0; c < d; ++c) rows[size_t(j * d + c)] = k[j * ld + c] * scale;
  pw = pack_f32(rows.data(), L, d);
}

// One head's values [L, d] as the weights of the context GEMM: [d, L], int8 symmetric per
// channel, or fp32.
void pack_values(const float* v, int64_t L, int64_t d, int64_t ld, bool int8, PackedWeight& pw,
                 std::vector<float>& rows) {
  if (int8) {
    shape_s8(pw, d, L);
    encoder_ops().pack_values_s8(L, d, v, ld, pw.data.as<int8_t>(), pw.panel_bytes(), pw.scale.data(),
                                 pw.colsum.data());
    return;
  }
  rows.resize(size_t(d * L));
  for (int64_t j = 0; j < L; ++j)
    for (int64_t c = 0; c < d; ++c) rows[size_t(c * L + j)] = v[j * ld + c];
  pw = pack_f32(rows.data(), d, L);
}

// One head's int8 attention, fused per block of kernel rows: scores tile -> fp32 with the mask
// -> softmax as u8 codes (EncoderOps::scores_softmax_u8) -> P V tile -> context rows, everything of
// a block in L1. The same micro-kernel, quantization and epilogue arithmetic as gemm_dynamic_s8 and
// gemm_s8, without their per-call driver work and without a full fp32 score matrix.
//   q: S query rows of d floats (stride ld); wk: keys as weights [L, d] (pack_keys);
//   wv: values as weights [d, L] (pack_values); ctx: S rows of d outputs (stride ldc), written
//   with non-temporal stores if stream_ctx.
void attention_head_s8(const float* q, int64_t S, int64_t d, int64_t ld, const PackedWeight& wk,
                       const PackedWeight& wv, const float* mask_add, float* ctx, int64_t ldc, bool stream_ctx) {
  const Dispatch dsp = active_dispatch();
  const KernelInfo& kinfo = dsp.gemm(KernelKind::s8);
  const IsaOps& ops = *dsp.ops;
  const auto kernel = kinfo.fn_as<GemmS8Fn>();
  const int np_max = kinfo.nr / int(kPanelN);
  const int64_t L = wk.N, ldq = wk.padded_k(), ldp = wv.padded_k();
  const int64_t ldt = std::max(wk.n_pad(), wv.n_pad());
  thread_local std::vector<uint8_t> qcodes, probs;
  thread_local std::vector<float> qscale, rows, pscale;
  thread_local std::vector<int32_t> qzp, tile;
  qcodes.resize(size_t(S * ldq)), qscale.resize(size_t(S)), qzp.resize(size_t(S));
  tile.resize(size_t(kinfo.mr * ldt)), rows.resize(size_t(kinfo.mr * L));
  probs.resize(size_t(kinfo.mr * ldp)), pscale.resize(size_t(kinfo.mr));
  if (!ops.quantize_rows_u8(S, d, q, ld, qcodes.data(), ldq, qscale.data(), qzp.data(), nullptr))
    throw std::invalid_argument("input contains NaN or Inf");
  // C tile = A rows times every panel of w, np_max panels per kernel call.
  auto product = [&](int mr, const uint8_t* a, int64_t lda, const PackedWeight& w) {
    const int64_t panels = w.n_pad() / kPanelN;
    for (int64_t j = 0; j < panels; j += np_max)
      kernel(mr, int(std::min<int64_t>(np_max, panels - j)), w.k_steps(), a, lda,
             w.data.as<int8_t>() + j * w.panel_bytes(), w.panel_bytes(), tile.data() + j * kPanelN, ldt, false,
             w.k_steps(), 0, int(kPanelN * std::min<int64_t>(np_max, panels - j)));
  };
  const int32_t no_zero_point = 0;
  Epilogue ec;  // context: acc * p_scale * v_scale
  ec.type = OutType::f32, ec.K = wv.K;
  ec.a_zp = &no_zero_point, ec.a_scale = pscale.data(), ec.a_scale_stride = 1;
  ec.colsum = wv.colsum.data(), ec.b_scale = wv.scale.data();
  ec.ldo = ldc, ec.stream_out = stream_ctx;
  const EncoderOps& eops = encoder_ops();
  for (int64_t m0 = 0; m0 < S; m0 += kinfo.mr) {
    const int mr = int(std::min<int64_t>(kinfo.mr, S - m0));
    product(mr, qcodes.data() + m0 * ldq, ldq, wk);
    eops.scores_softmax_u8(mr, L, tile.data(), ldt, qzp.data() + m0, qscale.data() + m0, wk.colsum.data(),
                           wk.scale.data(), mask_add, rows.data(), probs.data(), ldp, pscale.data());
    product(mr, probs.data(), ldp, wv);
    ec.out = ctx + m0 * ldc;
    ops.epilogue_s32(ec, tile.data(), ldt, 0, mr, 0, d);
  }
}

using Clock = std::chrono::steady_clock;

// Rows per FFN block: 128 rows of a 4096-wide fp32 intermediate are 2 MiB, held by L2 and L3
// until quantized (96 to 192 measured alike).
constexpr int64_t kFfnBlockRows = 128;

}  // namespace

Epilogue EncoderLinear::epilogue(int64_t M, float* y, int64_t ldy, const float* residual, bool gelu,
                                  bool read_soon) const {
  Epilogue e;
  // A layer's outputs at large batches (with the layer's weights, past L3): streamed.
  e.stream_out = !read_soon && streaming_pays(M * w.N * int64_t(sizeof(float)));
  e.type = OutType::f32;
  e.out = y, e.ldo = ldy;
  e.bias = bias.empty() ? nullptr : bias.data();
  if (residual) e.residual_f32 = residual, e.ld_residual = ldy;
  e.gelu = gelu;
  return e;
}

void EncoderLinear::set_outliers(std::vector<int32_t> cols, const float* w_cols) {
  if (cols.empty()) return;
  if (mode != Mode::dynamic_int8) throw std::invalid_argument("outlier channels apply to dynamic_int8 linears only");
  // once: their smooth multipliers are overwritten by 0, which a second set could not undo
  if (!outliers.empty()) throw std::invalid_argument("this linear's outlier channels are already set");
  for (size_t i = 0; i < cols.size(); ++i)
    if (cols[i] < 0 || cols[i] >= w.K || (i && cols[i] <= cols[i - 1]))
      throw std::invalid_argument("outlier channels must be strictly increasing and in [0, " + std::to_string(w.K) +
                                  ")");
  const int64_t n = int64_t(cols.size());
  outlier_w = pack_f32(w_cols, w.N, n);
  if (smooth.empty()) smooth.assign(size_t(w.K), 1.f);
  for (int32_t c : cols) smooth[size_t(c)] = 0.f;
  outliers = std::move(cols);
}

// The fp32 share of a linear with outlier channels, plus the caller's residual rows (stride ldr):
// [M, N] in a per-thread buffer that the int8 GEMM then reads as its residual. (Accumulating into
// y in place would need an epilogue that reads y before writing it; this one reads another buffer.)
const float* EncoderLinear::outlier_part(const float* x, int64_t M, int64_t ldx, const float* residual,
                                         int64_t ldr) const {
  thread_local AlignedBuffer gathered, part;
  const int64_t n = int64_t(outliers.size()), N = w.N;
  gathered.resize(size_t(M * n) * sizeof(float));
  part.resize(size_t(M * N) * sizeof(float));
  float* g = gathered.as<float>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < n; ++j) g[m * n + j] = x[m * ldx + outliers[size_t(j)]];
  Epilogue e;
  e.type = OutType::f32;
  e.out = part.as<float>(), e.ldo = N;
  if (residual) e.residual_f32 = residual, e.ld_residual = ldr;
  gemm_float(outlier_w, g, M, n, e);
  return part.as<float>();
}

void EncoderLinear::run(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy, const float* residual,
                        bool gelu, int64_t col_block, int64_t col_block_stride, bool read_soon) const {
  Epilogue e = epilogue(M, y, ldy, residual, gelu, read_soon);
  e.col_block = col_block, e.col_block_stride = col_block_stride;
  if (!outliers.empty()) {
    if (col_block) throw std::invalid_argument("outlier channels with blocked output columns are not supported");
    // y = int8 GEMM (outlier channels zeroed) + [fp32 outlier GEMM + residual]; bias and GELU once, at the end
    e.residual_f32 = outlier_part(x, M, ldx, residual, ldy), e.ld_residual = w.N;
  }
  switch (mode) {
    case Mode::float_weights: gemm_float(w, x, M, ldx, e); break;
    case Mode::dynamic_int8: gemm_dynamic_s8(w, x, M, ldx, e, col_mult()); break;
    case Mode::weight_only: gemm_weight_only(w, x, M, ldx, e); break;
  }
}

void EncoderLinear::quantize_input(const float* x, int64_t r0, int64_t n, int64_t ldx, DynamicRows& q) const {
  q.quantize(x, r0, n, ldx, w.K, col_mult());
}

void EncoderLinear::run_quantized(const DynamicRows& q, int64_t M, float* y, int64_t ldy, const float* residual) const {
  if (!outliers.empty()) throw std::invalid_argument("run_quantized has no fp32 input for outlier channels: use run");
  gemm_s8(w, q.rows(M), epilogue(M, y, ldy, residual, false, false));
}

Encoder::Encoder(int64_t hidden, int64_t heads, float eps) : H_(hidden), heads_(heads), eps_(eps) {
  if (hidden < 1 || heads < 1 || hidden % heads != 0)
    throw std::invalid_argument("encoder: hidden size must be a positive multiple of the number of heads");
  if (!(eps > 0.f)) throw std::invalid_argument("encoder: LayerNorm eps must be > 0");
}

void Encoder::set_word_embeddings_f32(const float* table, int64_t vocab) {
  vocab_ = vocab;
  word_f32_.assign(table, table + vocab * H_);
  word_s8_.clear(), word_scale_.clear();
}

void Encoder::set_word_embeddings_s8(const int8_t* codes, const float* scale, int64_t vocab) {
  vocab_ = vocab;
  word_s8_.assign(codes, codes + vocab * H_);
  word_scale_.assign(scale, scale + vocab);
  word_f32_.clear();
}

void Encoder::set_embeddings(const float* position, int64_t max_positions, const float* token_type, int64_t types,
                             const float* gamma, const float* beta) {
  // run() indexes row 0 of each table when no token types are given.
  if (max_positions < 1 || types < 1) throw std::invalid_argument("encoder: position and token type tables need rows");
  max_pos_ = max_positions, types_ = types;
  pos_.assign(position, position + max_positions * H_);
  type_.assign(token_type, token_type + types * H_);
  emb_gamma_.assign(gamma, gamma + H_);
  emb_beta_.assign(beta, beta + H_);
}

void Encoder::add_layer(EncoderLayer layer) {
  const int64_t I = layer.ffn_in.w.N;
  auto check = [](const EncoderLinear& l, int64_t N, int64_t K, const char* what) {
    if (l.w.N != N || l.w.K != K)
      throw std::invalid_argument(std::string("encoder layer: ") + what + " weight must be [" + std::to_string(N) +
                                  ", " + std::to_string(K) + "], got [" + std::to_string(l.w.N) + ", " +
                                  std::to_string(l.w.K) + "]");
    if (!l.bias.empty() && int64_t(l.bias.size()) != N)
      throw std::invalid_argument(std::string("encoder layer: ") + what + " bias must have " + std::to_string(N) +
                                  " values");
  };
  if (layer.qkv.size() == 1) {
    check(layer.qkv[0], 3 * H_, H_, "fused qkv");
  } else if (layer.qkv.size() == 3) {
    for (const EncoderLinear& l : layer.qkv) check(l, H_, H_, "query/key/value");
  } else {
    throw std::invalid_argument("encoder layer: give one fused qkv projection or three");
  }
  check(layer.attn_out, H_, H_, "attention output");
  check(layer.ffn_in, I, H_, "intermediate");
  check(layer.ffn_out, H_, I, "output");
  for (const auto* v : {&layer.ln_attn_gamma, &layer.ln_attn_beta, &layer.ln_ffn_gamma, &layer.ln_ffn_beta})
    if (int64_t(v->size()) != H_) throw std::invalid_argument("encoder layer: LayerNorm parameters must have hidden values");
  layers_.push_back(std::move(layer));
}

int64_t Encoder::weight_bytes() const {
  auto linear = [](const EncoderLinear& l) {
    return l.w.nbytes() + l.outlier_w.nbytes() + int64_t(l.bias.size() * sizeof(float));
  };
  int64_t b = int64_t((word_f32_.size() + word_scale_.size() + pos_.size() + type_.size() + 2 * size_t(H_)) *
                      sizeof(float)) + int64_t(word_s8_.size());
  for (const EncoderLayer& l : layers_) {
    for (const EncoderLinear& p : l.qkv) b += linear(p);
    b += linear(l.attn_out) + linear(l.ffn_in) + linear(l.ffn_out) + 4 * H_ * int64_t(sizeof(float));
  }
  return b;
}

void Encoder::embed(const int64_t* ids, const int64_t* type_ids, int64_t M, int64_t S, float* x) const {
  const EncoderOps& ops = encoder_ops();
  const int64_t H = H_;
  parallel_chunks(M, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* row = x + t * H;
      const float* p = pos_.data() + (t % S) * H;
      const float* ty = type_.data() + (type_ids ? type_ids[t] : 0) * H;
      if (word_s8_.empty()) {
        const float* w = word_f32_.data() + ids[t] * H;
        for (int64_t k = 0; k < H; ++k) row[k] = w[k] + p[k] + ty[k];
      } else {
        const int8_t* w = word_s8_.data() + ids[t] * H;
        const float s = word_scale_[size_t(ids[t])];
        for (int64_t k = 0; k < H; ++k) row[k] = float(w[k]) * s + p[k] + ty[k];
      }
    }
    ops.layernorm(t1 - t0, H, x + t0 * H, H, emb_gamma_.data(), emb_beta_.data(), eps_, x + t0 * H, H);
  });
}

void Encoder::attention(const EncoderLayer& layer, const float* qkv, const QkvLayout& at, const float* mask_add,
                        const int64_t* keys_len, int64_t B, int64_t S, float* ctx) const {
  const EncoderOps& ops = encoder_ops();
  const int64_t H = H_, d = H_ / heads_, ld = at.ld;
  const float scale = 1.f / std::sqrt(float(d));
  const bool int8 = layer.int8_attention;
  const bool stream_ctx = streaming_pays(B * S * H * int64_t(sizeof(float)));  // a layer output, as in EncoderLinear::run
  parallel_for(B * heads_, [&](int64_t task, int) {
    const int64_t b = task / heads_, h = task % heads_;
    const int64_t L = keys_len[b];  // keys after the last unmasked one take no part at all
    const float* q = qkv + b * at.seq + h * at.head;
    const float* k = q + at.part;
    const float* v = q + 2 * at.part;
    thread_local std::vector<float> scores, rows;
    thread_local PackedWeight wk, wv;  // buffers reused from head to head
    // scores = (q k^T) / sqrt(d) + mask (the mask is a bias per key column), then softmax per
    // query; context = P v, written into this head's columns of the context rows.
    pack_keys(k, L, d, ld, int8, scale, wk, rows);
    pack_values(v, L, d, ld, int8, wv, rows);
    float* out = ctx + b * S * H + h * d;
    if (int8) {
      attention_head_s8(q, S, d, ld, wk, wv, mask_add + b * S, out, H, stream_ctx);
      return;
    }
    scores.resize(size_t(S * L));
    Epilogue e;
    e.type = OutType::f32;
    e.out = scores.data(), e.ldo = L;
    e.bias = mask_add + b * S;
    gemm_float(wk, q, S, ld, e);
    ops.softmax(S, L, scores.data(), L);
    Epilogue o;
    o.type = OutType::f32;
    o.out = out, o.ldo = H;
    gemm_float(wv, scores.data(), S, L, o);
  });
}

void Encoder::run(const int64_t* ids, const int64_t* type_ids, const int64_t* mask, int64_t B, int64_t S, float* out,
                  std::vector<double>* op_seconds) {
  if (vocab_ == 0 || max_pos_ == 0) throw std::invalid_argument("encoder: embeddings are not set");
  if (B < 0 || S < 1) throw std::invalid_argument("encoder: input must be [batch, seq] with seq >= 1");
  if (S > max_pos_)
    throw std::invalid_argument("encoder: sequence length " + std::to_string(S) + " exceeds the model's " +
                                std::to_string(max_pos_) + " positions");
  const int64_t M = B * S, H = H_;
  for (int64_t t = 0; t < M; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab_)
      throw std::invalid_argument("encoder: token id " + std::to_string(ids[t]) + " outside the vocabulary [0, " +
                                  std::to_string(vocab_) + ")");
    if (type_ids && (type_ids[t] < 0 || type_ids[t] >= types_))
      throw std::invalid_argument("encoder: token type id " + std::to_string(type_ids[t]) + " outside [0, " +
                                  std::to_string(types_) + ")");
    if (mask && mask[t] != 0 && mask[t] != 1) throw std::invalid_argument("encoder: attention mask values must be 0 or 1");
  }
  if (M == 0) return;
  std::lock_guard<std::mutex> lock(run_mutex_);
  int64_t I = 0;
  for (const EncoderLayer& l : layers_) I = std::max(I, l.ffn_in.w.N);
  arena_.resize(size_t((6 * M * H + M * std::max<int64_t>(I, 1) + M) * 4 + 6 * 64));
  uint8_t* p = arena_.as<uint8_t>();
  float* x = carve<float>(p, M * H);
  float* qkv = carve<float>(p, 3 * M * H);
  float* ctx = carve<float>(p, M * H);
  float* tmp = carve<float>(p, M * H);
  float* inter = carve<float>(p, M * std::max<int64_t>(I, 1));
  float* mask_add = carve<float>(p, M);
  // Masked keys get the lowest float as their score bias: softmax gives them ~0 weight.
  for (int64_t t = 0; t < M; ++t) mask_add[t] = (mask && mask[t] == 0) ? std::numeric_limits<float>::lowest() : 0.f;
  // Right padding (the usual batch of sentences) drops out of attention entirely: compute, and
  // int8 scales of keys and values, then depend on the real tokens alone. A fully masked
  // sequence keeps all its keys (uniform attention, as in the float reference).
  std::vector<int64_t> keys_len(size_t(B), S);
  for (int64_t b = 0; b < B && mask; ++b) {
    int64_t L = S;
    while (L > 0 && mask[b * S + L - 1] == 0) --L;
    keys_len[size_t(b)] = L > 0 ? L : S;
  }

  const EncoderOps& ops = encoder_ops();
  auto clock = Clock::now();
  auto lap = [&] {
    if (!op_seconds) return;
    const auto now = Clock::now();
    op_seconds->push_back(std::chrono::duration<double>(now - clock).count());
    clock = now;
  };
  auto layernorm = [&](const float* in, const std::vector<float>& g, const std::vector<float>& b, float* y) {
    parallel_chunks(M, 16, [&](int64_t r0, int64_t r1) {
      ops.layernorm(r1 - r0, H, in + r0 * H, H, g.data(), b.data(), eps_, y + r0 * H, H);
    });
  };
  embed(ids, type_ids, M, S, x);
  lap();
  // Q, K and V head-major ([3][heads][tokens][d]) when a head is whole vectors: attention reads
  // each (sequence, head) as contiguous rows instead of short rows 3H apart (strided, they cost
  // it more than its arithmetic). Else token-major rows of 3H.
  const int64_t d = H / heads_;
  const bool head_major = d % 16 == 0;
  const QkvLayout at = head_major ? QkvLayout{S * d, M * d, H * M, d} : QkvLayout{S * 3 * H, d, H, 3 * H};
  for (const EncoderLayer& l : layers_) {
    for (size_t i = 0; i < l.qkv.size(); ++i) {  // one fused [3H, H] GEMM, or Q, K, V apart
      float* y = qkv + int64_t(i) * at.part;
      if (head_major) l.qkv[i].run(x, M, H, y, d, nullptr, false, d, M * d);
      else l.qkv[i].run(x, M, H, y, 3 * H);
    }
    lap();
    attention(l, qkv, at, mask_add, keys_len.data(), B, S, ctx);
    lap();
    l.attn_out.run(ctx, M, H, tmp, H, x);
    layernorm(tmp, l.ln_attn_gamma, l.ln_attn_beta, x);
    lap();
    const int64_t Il = l.ffn_in.w.N;
    if (l.ffn_out.mode == EncoderLinear::Mode::dynamic_int8) {
      // The intermediate (4x hidden, fp32) by row blocks that stay in cache, each quantized for
      // ffn_out at once: only its u8 codes go to memory, not 4 bytes per value written and read
      // back (BERT-Large w8a8 at batch 8: 1-2 % faster end to end, same results to the bit).
      ffn_codes_.resize(l.ffn_out.w, M);
      for (int64_t r0 = 0; r0 < M; r0 += kFfnBlockRows) {
        const int64_t n = std::min(kFfnBlockRows, M - r0);
        l.ffn_in.run(x + r0 * H, n, H, inter, Il, nullptr, /*gelu=*/true, 0, 0, /*read_soon=*/true);
        l.ffn_out.quantize_input(inter, r0, n, Il, ffn_codes_);
      }
      lap();
      l.ffn_out.run_quantized(ffn_codes_, M, tmp, H, x);
    } else {
      l.ffn_in.run(x, M, H, inter, Il, nullptr, /*gelu=*/true);
      lap();
      l.ffn_out.run(inter, M, Il, tmp, H, x);
    }
    layernorm(tmp, l.ln_ffn_gamma, l.ln_ffn_beta, x);
    lap();
  }
  std::memcpy(out, x, size_t(M * H) * sizeof(float));
}

}  // namespace mixq
