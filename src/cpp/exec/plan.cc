#include "exec/plan.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "core/parallel.h"
#include "gemm/gemm.h"
#include "gemm/im2col.h"
#include "kernels/dispatch.h"

namespace mixq {
namespace {

constexpr int64_t kAlign = 64;
int64_t align_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

void require(bool ok, const Op& op, const std::string& what) {
  if (!ok) throw std::invalid_argument("plan op '" + op.name + "' (" + op.kind + "): " + what);
}

// A window op's geometry must be sane and produce exactly the declared output (the kernels size
// their loops from the geometry and write into the declared tensor). A pool pads at most half its
// kernel (torch's limit: no window wholly in padding); a conv's padded input is bounded.
void require_window(const Op& op, const TensorInfo& in, const TensorInfo& out, int64_t KH, int64_t KW, int64_t SH,
                    int64_t SW, int64_t PH, int64_t PW, int64_t DH, int64_t DW, bool pool) {
  constexpr int64_t kMax = int64_t(1) << 24;
  for (int64_t v : {KH, KW, SH, SW, DH, DW}) require(v >= 1 && v <= kMax, op, "kernel, stride and dilation must be in [1, 2^24]");
  for (int64_t v : {PH, PW}) require(v >= 0 && v <= kMax, op, "padding must be in [0, 2^24]");
  require(!pool || (PH <= KH / 2 && PW <= KW / 2), op, "pool padding exceeds half the kernel");
  require((in.H + 2 * PH) * (in.W + 2 * PW) <= kMax * 16, op, "padding makes the padded input too large");
  const int64_t eh = in.H + 2 * PH - DH * (KH - 1) - 1, ew = in.W + 2 * PW - DW * (KW - 1) - 1;
  require(eh >= 0 && ew >= 0, op, "the kernel does not fit the padded input");
  require(out.H == eh / SH + 1 && out.W == ew / SW + 1, op, "the output shape differs from the one the geometry gives");
}

// Runs fn, adding its wall time to the op's im2col share when the run is profiled.
template <typename Fn>
void as_im2col(const RunContext& ctx, Fn fn) {
  if (!ctx.im2col_seconds) return fn();
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  *ctx.im2col_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ------------------------------------------------------------------ conv
int64_t ConvOp::row_stride(const RunContext& ctx) const {
  const int64_t eb = ctx.info(inputs[0]).elem_bytes();
  return conflict_free_stride(align_up(weights[0].padded_k(), 16), eb);
}

// Patch rows gathered per chunk: the chunk stays in L2 while the GEMM reads it (measured: a
// whole-layer im2col of a batch streams through L3/DRAM and made batch 8 slower per image).
int64_t ConvOp::chunk_rows(const RunContext& ctx) const {
  const int64_t row_bytes = row_stride(ctx) * ctx.info(inputs[0]).elem_bytes();
  return std::max<int64_t>(96, (int64_t(1) << 20) / row_bytes / 96 * 96);
}

bool ConvOp::implicit(const RunContext& ctx) const {
  return mode == Mode::int8_activations && !flatten_input && !direct() && groups == 1 && DH == 1 && DW == 1 &&
         gemm_s8_conv_runs(implicit_weight(), read_kw(), ctx.info(inputs[0]).C);
}

void ConvOp::add_zero_taps(int64_t C) {
  const PackedWeight& w = weights[0];
  if (mode != Mode::int8_activations || flatten_input || direct() || groups != 1 || DH != 1 || DW != 1 ||
      w.format != WeightFormat::s8_x32c4 || !w.zero_point.empty() || (KW * C) % 4 == 0)
    return;
  int64_t kw = KW;
  while ((kw * C) % 4 != 0) ++kw;
  if (3 * kw > 4 * KW) return;  // a 1x1 grey conv would do 4x the work: im2col
  wide_ = pad_s8_taps(w, KH, KW, C, kw);
  read_kw_ = kw;
}

// The last output pixel's taps end at (OW - 1) * SW + read_kw() columns of the padded input.
int64_t ConvOp::padded_width(const RunContext& ctx) const {
  const TensorInfo &in = ctx.info(inputs[0]), &out = ctx.info(output);
  return std::max(in.W + 2 * PW, (out.W - 1) * SW + read_kw());
}

int64_t ConvOp::scratch_bytes(const RunContext& ctx) const {
  if (flatten_input || direct()) return 0;
  if (implicit(ctx)) return 0;
  const TensorInfo& out = ctx.info(output);
  const int64_t rows = std::min(ctx.N * out.H * out.W, chunk_rows(ctx));
  return rows * row_stride(ctx) * ctx.info(inputs[0]).elem_bytes();
}

// The epilogue of output rows from r0 and channels from c0 (a group's slice).
Epilogue ConvOp::epilogue(const RunContext& ctx, int64_t r0, int64_t c0) const {
  const TensorInfo& out = ctx.info(output);
  Epilogue e;
  e.type = out.dtype == DType::u8 ? OutType::u8 : OutType::f32;
  e.out = ctx.ptr[size_t(output)] + (r0 * out.C + c0) * out.elem_bytes();
  e.ldo = out.C;
  e.bias = bias.empty() ? nullptr : bias.data() + c0;
  e.lo = lo, e.hi = hi;
  e.out_scale = out.q.scale, e.out_zp = out.q.zp;
  if (has_residual) {
    const TensorInfo& res = ctx.info(inputs[1]);
    const uint8_t* r = ctx.ptr[size_t(inputs[1])] + (r0 * res.C + c0) * res.elem_bytes();
    if (res.dtype == DType::u8) e.residual_u8 = r;
    else e.residual_f32 = reinterpret_cast<const float*>(r);
    e.ld_residual = res.C, e.residual_scale = res.q.scale, e.residual_zp = res.q.zp;
  }
  return e;
}

void ConvOp::run(RunContext& ctx) const {
  if (implicit(ctx)) return run_implicit(ctx);
  const TensorInfo &in = ctx.info(inputs[0]), &out = ctx.info(output);
  const uint8_t* x = ctx.ptr[size_t(inputs[0])];
  const int64_t eb = in.elem_bytes(), cin_g = in.C / groups, cout_g = out.C / groups;
  const bool use_im2col = !flatten_input && !direct();
  const int64_t M = flatten_input ? ctx.N : ctx.N * out.H * out.W;
  const int64_t ld_rows = flatten_input ? in.H * in.W * in.C : use_im2col ? row_stride(ctx) : in.C;
  const int64_t chunk = use_im2col ? chunk_rows(ctx) : M;
  const ConvGeometry geo{ctx.N, in.H, in.W, KH, KW, SH, SW, PH, PW, DH, DW, out.H, out.W};
  for (int64_t g = 0; g < groups; ++g) {
    const PackedWeight& w = weights[size_t(g)];
    for (int64_t r0 = 0; r0 < M; r0 += chunk) {
      const int64_t rows = std::min(chunk, M - r0);
      const uint8_t* a = flatten_input ? x : x + (r0 * in.C + g * cin_g) * eb;
      if (use_im2col) {
        const uint32_t pad = in.dtype == DType::u8 ? uint32_t(in.q.zp) : 0u;  // the code of a real 0
        as_im2col(ctx, [&] {
          im2col(geo, eb, x, in.C, g * cin_g, cin_g, pad, r0, r0 + rows, ctx.scratch->as<uint8_t>(), ld_rows);
        });
        a = ctx.scratch->as<uint8_t>();
      }
      const Epilogue e = epilogue(ctx, r0, g * cout_g);
      switch (mode) {
        case Mode::int8_activations: {
          QuantizedRows q;
          q.data = a, q.M = rows, q.lda = ld_rows;
          q.scale = &in.q.scale, q.zero_point = &in.q.zp;
          q.padded = use_im2col;
          gemm_s8(w, q, e);
          break;
        }
        case Mode::float_weights:
          gemm_float(w, reinterpret_cast<const float*>(a), rows, ld_rows, e);
          break;
        case Mode::weight_only:
          gemm_weight_only(w, reinterpret_cast<const float*>(a), rows, ld_rows, e, use_im2col);
          break;
      }
    }
  }
}

// The input's borders are the zero point (its code of a real 0); gemm_s8_conv pads the rows each
// of its tasks reads (profiled as the conv's im2col).
void ConvOp::run_implicit(RunContext& ctx) const {
  const TensorInfo &in = ctx.info(inputs[0]), &out = ctx.info(output);
  ConvRows a;
  a.data = ctx.ptr[size_t(inputs[0])], a.N = ctx.N, a.H = in.H, a.W = in.W, a.C = in.C;
  a.PH = PH, a.PW = PW, a.WP = padded_width(ctx);
  a.KH = KH, a.KW = read_kw(), a.SH = SH, a.SW = SW, a.OH = out.H, a.OW = out.W;
  a.scale = in.q.scale, a.zero_point = in.q.zp;
  a.pad_seconds = ctx.im2col_seconds;
  gemm_s8_conv(implicit_weight(), a, epilogue(ctx, 0, 0));
}

// ------------------------------------------------------------------ depthwise
void DepthwiseOp::run(RunContext& ctx) const {
  const TensorInfo &in = ctx.info(inputs[0]), &out = ctx.info(output);
  const DwShape s{ctx.N, in.H, in.W, in.C, KH, KW, SH, SW, PH, PW, DH, DW};
  const float* b = bias.empty() ? nullptr : bias.data();
  if (in.dtype == DType::u8) {
    const bool u8_out = out.dtype == DType::u8;
    dwconv_u8(s, ctx.ptr[size_t(inputs[0])], in.C, in.q.zp, weights, mult.data(), b, lo, hi, out.q.scale, out.q.zp,
              u8_out ? ctx.ptr[size_t(output)] : nullptr,
              u8_out ? nullptr : reinterpret_cast<float*>(ctx.ptr[size_t(output)]), out.C);
  } else {
    dwconv_f32(s, reinterpret_cast<const float*>(ctx.ptr[size_t(inputs[0])]), in.C, weights, b, lo, hi,
               reinterpret_cast<float*>(ctx.ptr[size_t(output)]), out.C);
  }
}

// ------------------------------------------------------------------ element-wise, pooling, layout
void AddOp::run(RunContext& ctx) const {
  const TensorInfo &a = ctx.info(inputs[0]), &b = ctx.info(inputs[1]), &out = ctx.info(output);
  add_tensors(ctx.N * out.H * out.W * out.C, out.dtype, ctx.ptr[size_t(inputs[0])], a.q, ctx.ptr[size_t(inputs[1])],
              b.q, lo, hi, ctx.ptr[size_t(output)], out.q);
}

void ConcatOp::run(RunContext& ctx) const {
  const TensorInfo& out = ctx.info(output);
  int64_t c0 = 0;
  for (int t : inputs) {
    const TensorInfo& in = ctx.info(t);
    copy_channels(ctx.N * in.H * in.W, in.C, out.dtype, ctx.ptr[size_t(t)], in.q,
                  ctx.ptr[size_t(output)] + c0 * out.elem_bytes(), out.C, out.q);
    c0 += in.C;
  }
}

void PoolOp::run(RunContext& ctx) const {
  const TensorInfo &in = ctx.info(inputs[0]), &out = ctx.info(output);
  const PoolShape s{ctx.N, in.H, in.W, in.C, KH, KW, SH, SW, PH, PW, DH, DW, out.H, out.W, count_include_pad};
  if (is_max) max_pool(s, in.dtype, ctx.ptr[size_t(inputs[0])], ctx.ptr[size_t(output)]);
  else avg_pool(s, in.dtype, ctx.ptr[size_t(inputs[0])], in.q, ctx.ptr[size_t(output)], out.q);
}

void ConvertOp::run(RunContext& ctx) const {
  const TensorInfo &in = ctx.info(inputs[0]), &out = ctx.info(output);
  const int64_t n = ctx.N * out.H * out.W * out.C;
  if (in.dtype == DType::f32)
    quantize_tensor(n, reinterpret_cast<const float*>(ctx.ptr[size_t(inputs[0])]), out.q, ctx.ptr[size_t(output)]);
  else
    dequantize_tensor(n, ctx.ptr[size_t(inputs[0])], in.q, reinterpret_cast<float*>(ctx.ptr[size_t(output)]));
}

void ActOp::run(RunContext& ctx) const {
  const TensorInfo& out = ctx.info(output);
  const int64_t n = ctx.N * out.H * out.W * out.C;
  if (out.dtype == DType::u8) lut_u8(n, table.data(), ctx.ptr[size_t(inputs[0])], ctx.ptr[size_t(output)]);
  else
    act_f32(n, act, lo, hi, reinterpret_cast<const float*>(ctx.ptr[size_t(inputs[0])]),
            reinterpret_cast<float*>(ctx.ptr[size_t(output)]));
}

// ------------------------------------------------------------------ the plan
int Plan::add_tensor(const TensorInfo& t) {
  if (t.H <= 0 || t.W <= 0 || t.C <= 0) throw std::invalid_argument("plan tensor shape must be positive");
  constexpr int64_t kMaxElems = int64_t(1) << 28;  // per sample; keeps every size product in range
  if (t.H > kMaxElems || t.W > kMaxElems || t.C > kMaxElems || t.H * t.W > kMaxElems || t.H * t.W * t.C > kMaxElems)
    throw std::invalid_argument("plan tensor has more than 2^28 elements per sample");
  if (t.dtype == DType::u8 && (!(t.q.scale > 0.f) || t.q.zp < 0 || t.q.zp > 255))
    throw std::invalid_argument("u8 plan tensor needs scale > 0 and zero point in [0, 255]");
  tensors_.push_back(t);
  prepared_N_ = 0;
  return int(tensors_.size() - 1);
}

void Plan::add_op(std::unique_ptr<Op> op) {
  const int n = int(tensors_.size());
  require(op->output >= 0 && op->output < n, *op, "output tensor id out of range");
  require(!op->inputs.empty(), *op, "no inputs");
  for (int t : op->inputs) require(t >= 0 && t < n && t != op->output, *op, "bad input tensor id");
  for (const auto& prev : ops_) require(prev->output != op->output, *op, "output tensor already written by " + prev->name);
  const TensorInfo &in = tensors_[size_t(op->inputs[0])], &out = tensors_[size_t(op->output)];
  if (auto* c = dynamic_cast<ConvOp*>(op.get())) {
    require(c->groups >= 1 && in.C % c->groups == 0 && out.C % c->groups == 0 && int64_t(c->weights.size()) == c->groups,
            *op, "groups do not divide the channels");
    if (c->flatten_input) require(out.H == 1 && out.W == 1, *op, "a linear layer writes [1, 1, C]");
    else require_window(*op, in, out, c->KH, c->KW, c->SH, c->SW, c->PH, c->PW, c->DH, c->DW, false);
    const int64_t k = c->flatten_input ? in.H * in.W * in.C : c->KH * c->KW * (in.C / c->groups);
    for (const auto& w : c->weights)
      require(w.N == out.C / c->groups && w.K == k, *op, "weight shape does not match the tensors");
    require(c->bias.empty() || int64_t(c->bias.size()) == out.C, *op, "bias needs one value per output channel");
    require(op->inputs.size() == (c->has_residual ? 2u : 1u), *op, "a conv reads its input and an optional residual");
    if (c->has_residual) {
      const TensorInfo& r = tensors_[size_t(op->inputs[1])];
      require(r.H == out.H && r.W == out.W && r.C == out.C, *op, "residual shape differs from the output");
    }
    const bool u8_in = in.dtype == DType::u8;
    require(u8_in == (c->mode == ConvOp::Mode::int8_activations), *op, "input dtype does not match the precision");
    if (c->mode == ConvOp::Mode::int8_activations)
      for (const auto& w : c->weights)
        require(w.format == WeightFormat::s8_x32c4 || w.low_bit(), *op, "int8 activations need int8/low-bit weights");
    c->add_zero_taps(in.C);
  } else if (auto* d = dynamic_cast<DepthwiseOp*>(op.get())) {
    require(in.C == out.C && d->weights.C == in.C && d->weights.KH == d->KH && d->weights.KW == d->KW, *op,
            "depthwise weights do not match the tensors");
    require_window(*op, in, out, d->KH, d->KW, d->SH, d->SW, d->PH, d->PW, d->DH, d->DW, false);
    require((in.dtype == DType::u8) == d->weights.is_int8, *op, "input dtype does not match the weights");
    require(in.dtype == DType::u8 || out.dtype == DType::f32, *op, "fp32 depthwise writes fp32");
    require(!d->weights.is_int8 || int64_t(d->mult.size()) == in.C, *op, "int8 depthwise needs one multiplier per channel");
  } else if (dynamic_cast<AddOp*>(op.get())) {
    require(op->inputs.size() == 2, *op, "add takes two inputs");
    for (int t : op->inputs) {
      const TensorInfo& i = tensors_[size_t(t)];
      require(i.H == out.H && i.W == out.W && i.C == out.C && i.dtype == out.dtype, *op, "add operands differ in shape or dtype");
    }
  } else if (dynamic_cast<ConcatOp*>(op.get())) {
    int64_t c = 0;
    for (int t : op->inputs) {
      const TensorInfo& i = tensors_[size_t(t)];
      require(i.H == out.H && i.W == out.W && i.dtype == out.dtype, *op, "concat inputs differ in shape or dtype");
      c += i.C;
    }
    require(c == out.C, *op, "concat channels do not add up");
  } else if (auto* p = dynamic_cast<PoolOp*>(op.get())) {
    require(in.C == out.C && in.dtype == out.dtype, *op, "pooling keeps channels and dtype");
    require_window(*op, in, out, p->KH, p->KW, p->SH, p->SW, p->PH, p->PW, p->DH, p->DW, true);
    require(!p->is_max || in.dtype == DType::f32 || (in.q.scale == out.q.scale && in.q.zp == out.q.zp), *op,
            "u8 max pooling keeps its input's quantization");
  } else if (dynamic_cast<ConvertOp*>(op.get())) {
    require(in.dtype != out.dtype && in.H * in.W * in.C == out.H * out.W * out.C, *op, "convert changes dtype only");
  } else if (auto* a = dynamic_cast<ActOp*>(op.get())) {
    require(in.dtype == out.dtype && in.H * in.W * in.C == out.H * out.W * out.C, *op, "activation keeps shape and dtype");
    require(in.dtype == DType::f32 || a->table.size() == 256, *op, "u8 activation needs a 256-entry table");
  }
  ops_.push_back(std::move(op));
  prepared_N_ = 0;
}

void Plan::set_io(int input, int output) {
  const int n = int(tensors_.size());
  if (input < 0 || input >= n || output < 0 || output >= n) throw std::invalid_argument("plan input/output id out of range");
  if (tensors_[size_t(input)].dtype != DType::f32) throw std::invalid_argument("plan input must be float32");
  input_ = input, output_ = output;
  prepared_N_ = 0;
}

void Plan::prepare(int64_t N) {
  const size_t n_t = tensors_.size();
  int64_t widest = kAlign;
  for (const TensorInfo& t : tensors_) widest = std::max(widest, t.sample_bytes());
  if (N > (int64_t(1) << 62) / widest / int64_t(n_t + 1)) throw std::bad_alloc();  // sizes would overflow
  // Lifetime of each tensor in op indices: [producer, last reader]; the output lives to the end.
  std::vector<int64_t> first(n_t, -1), last(n_t, -1);
  for (size_t i = 0; i < ops_.size(); ++i) {
    first[size_t(ops_[i]->output)] = int64_t(i);
    last[size_t(ops_[i]->output)] = std::max<int64_t>(last[size_t(ops_[i]->output)], int64_t(i));
    for (int t : ops_[i]->inputs) last[size_t(t)] = int64_t(i);
  }
  if (first[size_t(output_)] < 0) throw std::invalid_argument("no plan op computes the output tensor");
  last[size_t(output_)] = int64_t(ops_.size());
  for (size_t i = 0; i < ops_.size(); ++i)
    for (int t : ops_[i]->inputs)
      if (t != input_ && (first[size_t(t)] < 0 || first[size_t(t)] >= int64_t(i)))
        throw std::invalid_argument("plan op '" + ops_[i]->name + "' reads a tensor that is not computed before it");
  input_quantize_op_ = -1;
  int readers = 0;
  for (size_t i = 0; i < ops_.size(); ++i)
    for (int t : ops_[i]->inputs)
      if (t == input_) {
        ++readers;
        if (dynamic_cast<ConvertOp*>(ops_[i].get()) && tensors_[size_t(ops_[i]->output)].dtype == DType::u8)
          input_quantize_op_ = int(i);
      }
  if (readers != 1) input_quantize_op_ = -1;
  // First-fit placement by offset among the tensors alive at the same time. Computed aside and
  // committed only once the arena is allocated: a failed (huge) batch leaves no stale layout.
  std::vector<int64_t> offset(n_t, -1);
  std::vector<std::pair<int64_t, int64_t>> placed;          // (offset, bytes) of live tensors
  int64_t total = 0;
  for (size_t i = 0; i < ops_.size(); ++i) {
    const int t = ops_[i]->output;
    placed.clear();
    for (size_t u = 0; u < n_t; ++u)
      if (offset[u] >= 0 && last[u] >= int64_t(i)) placed.emplace_back(offset[u], align_up(N * tensors_[u].sample_bytes(), kAlign));
    std::sort(placed.begin(), placed.end());
    const int64_t bytes = align_up(N * tensors_[size_t(t)].sample_bytes(), kAlign);
    int64_t off = 0;
    for (const auto& [o, b] : placed) {
      if (off + bytes <= o) break;
      off = std::max(off, o + b);
    }
    offset[size_t(t)] = off;
    total = std::max(total, off + bytes);
  }
  prepared_N_ = 0;
  arena_.resize(size_t(std::max<int64_t>(total, kAlign)));
  offset_ = std::move(offset);
  prepared_N_ = N;
}

void Plan::run(const float* input, int64_t N, float* output, bool input_nchw, std::vector<double>* op_seconds,
               std::vector<double>* op_im2col_seconds) {
  if (input_ < 0 || output_ < 0) throw std::invalid_argument("plan has no input/output");
  if (N <= 0) throw std::invalid_argument("batch size must be positive");
  // One run at a time: the arena, scratch and layout are the plan's (see docs/runtime.md,
  // "Thread-safety contract"); callers on other threads wait here, without the GIL.
  std::lock_guard<std::mutex> lock(run_mutex_);
  if (N != prepared_N_) prepare(N);
  RunContext ctx;
  ctx.N = N;
  ctx.tensors = &tensors_;
  ctx.scratch = &scratch_;
  ctx.ptr.resize(tensors_.size());
  for (size_t t = 0; t < tensors_.size(); ++t) ctx.ptr[t] = offset_[t] >= 0 ? arena_.as<uint8_t>() + offset_[t] : nullptr;
  int skip_op = -1;
  if (op_seconds) op_seconds->assign(ops_.size(), 0.0);
  if (op_im2col_seconds) op_im2col_seconds->assign(ops_.size(), 0.0);
  const auto t_in = std::chrono::steady_clock::now();
  const IsaOps* isa_ops = active_dispatch().ops;
  const auto refuse_non_finite = [] { throw std::invalid_argument("plan input contains NaN or Inf"); };
  // The NCHW input that its quantize op reads is checked row by row in the transposition, while the
  // row is in cache (a pass of its own read the input from memory twice: MobileNetV2 batch 8 reads
  // 4.8 MB); other inputs before anything runs.
  const bool check_in_transposition = input_nchw && input_quantize_op_ >= 0;
  if (!check_in_transposition) {
    const int64_t n = N * tensors_[size_t(input_)].sample_bytes() / int64_t(sizeof(float));
    std::atomic<bool> finite{true};
    parallel_chunks(n, int64_t(1) << 16, [&](int64_t i0, int64_t i1) {
      if (!isa_ops->all_finite(input + i0, i1 - i0)) finite = false;
    });
    if (!finite) refuse_non_finite();
  }
  if (input_nchw) {
    // NCHW -> NHWC in parallel over rows; when the input's only reader quantizes it, both in one
    // pass straight into that op's output.
    const TensorInfo& in = tensors_[size_t(input_)];
    const int64_t H = in.H, W = in.W, C = in.C;
    const bool quantize = input_quantize_op_ >= 0;
    uint8_t* q = nullptr;
    float* dst = nullptr;
    QParams qp;
    if (quantize) {
      skip_op = input_quantize_op_;
      const int out = ops_[size_t(skip_op)]->output;
      q = ctx.ptr[size_t(out)], qp = tensors_[size_t(out)].q;
    } else {
      input_nhwc_.resize(size_t(N * in.sample_bytes()));
      dst = input_nhwc_.as<float>();
    }
    const float inv = 1.f / qp.scale, zp = float(qp.zp);
    std::atomic<bool> finite{true};
    // Rows in tasks of ~16 KiB of input: a task per row of a small image cost more in hand-offs than
    // the row (ResNet-20's 28-pixel grey rows at batch 64: 2 threads took 2.4x one thread's time).
    parallel_chunks(N * H, std::max<int64_t>(1, 4096 / (W * C)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / H, y = r % H;
        const float* src = input + n * C * H * W + y * W;
        if (quantize) {
          for (int64_t c = 0; c < C; ++c)
            if (!isa_ops->all_finite(src + c * H * W, W)) finite = false;
          isa_ops->quantize_planes_u8(src, H * W, C, W, inv, zp, q + r * W * C);
          continue;
        }
        for (int64_t c = 0; c < C; ++c)
          for (int64_t x = 0; x < W; ++x) dst[(r * W + x) * C + c] = src[c * H * W + x];
      }
    });
    if (!finite) refuse_non_finite();
    if (!quantize) input = dst;
    if (quantize && op_seconds)  // the fused quantize op is charged with the transposition
      (*op_seconds)[size_t(skip_op)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_in).count();
  }
  ctx.ptr[size_t(input_)] = reinterpret_cast<uint8_t*>(const_cast<float*>(input));  // read only
  int64_t scratch = 0;
  for (const auto& op : ops_) scratch = std::max(scratch, op->scratch_bytes(ctx));
  scratch_.resize(size_t(std::max<int64_t>(scratch, kAlign)));
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (int(i) == skip_op) continue;  // done with the input transposition
    const auto t0 = std::chrono::steady_clock::now();
    ctx.im2col_seconds = op_im2col_seconds ? &(*op_im2col_seconds)[i] : nullptr;
    ops_[i]->run(ctx);
    if (op_seconds) (*op_seconds)[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const TensorInfo& out = tensors_[size_t(output_)];
  const int64_t n = N * out.H * out.W * out.C;
  if (out.dtype == DType::f32) std::memcpy(output, ctx.ptr[size_t(output_)], size_t(n) * sizeof(float));
  else dequantize_tensor(n, ctx.ptr[size_t(output_)], out.q, output);
}

}  // namespace mixq
