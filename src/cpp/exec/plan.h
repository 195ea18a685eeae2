// An inference plan: NHWC tensors in one arena and a list of fused operators, run by the core in
// one call per inference. Python builds it (mixq.runtime.lower) op by op; the core owns the weights.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/packed_weight.h"
#include "exec/plan_ops.h"
#include "kernels/kernels.h"
#include "ops/depthwise.h"

namespace mixq {

// Per-sample NHWC shape; the batch size comes with each run.
struct TensorInfo {
  int64_t H = 1, W = 1, C = 1;
  DType dtype = DType::f32;
  QParams q;
  int64_t elem_bytes() const { return dtype == DType::f32 ? 4 : 1; }
  int64_t sample_bytes() const { return H * W * C * elem_bytes(); }
};

struct RunContext {
  int64_t N = 0;
  const std::vector<TensorInfo>* tensors = nullptr;
  std::vector<uint8_t*> ptr;  // each tensor's storage for this run
  AlignedBuffer* scratch = nullptr;
  double* im2col_seconds = nullptr;  // profiling: where a conv op adds the time of its im2col passes
  const TensorInfo& info(int t) const { return (*tensors)[size_t(t)]; }
};

class Op {
 public:
  virtual ~Op() = default;
  virtual void run(RunContext& ctx) const = 0;
  // Scratch bytes the op needs for batch N (shared by all ops: they run one after another).
  virtual int64_t scratch_bytes(const RunContext&) const { return 0; }
  std::string name, kind;
  std::vector<int> inputs;
  int output = -1;
};

// Convolution (or linear) on the packed GEMM kernels: NHWC rows in place for 1x1/stride 1, an
// implicit GEMM over the zero-point-padded input for int8 convs the int8 kernel can read that way
// (gemm_s8_conv_runs), im2col otherwise; bias, clamp and requantization fused in the GEMM epilogue.
class ConvOp : public Op {
 public:
  enum class Mode { float_weights, int8_activations, weight_only };
  void run(RunContext& ctx) const override;
  int64_t scratch_bytes(const RunContext& ctx) const override;
  Mode mode = Mode::float_weights;
  int64_t KH = 1, KW = 1, SH = 1, SW = 1, PH = 0, PW = 0, DH = 1, DW = 1, groups = 1;
  bool flatten_input = false;  // a linear layer over each sample's flattened (H, W, C) input
  bool has_residual = false;   // inputs[1] (shaped like the output) is added before the clamp
  std::vector<PackedWeight> weights;  // one per group: [C_out/groups, KH*KW*C_in/groups]
  std::vector<float> bias;
  float lo = -__builtin_inff(), hi = __builtin_inff();
  // An int8 conv whose kernel rows are not whole k steps (KW * C % 4 != 0: an RGB or grey stem)
  // keeps the implicit GEMM with a copy of its weights with zero taps appended to each kernel row
  // (at most a third more work instead of an im2col): it reads a few bytes past each row's window,
  // which meet zero weights. Called once the op's input (C channels) is known.
  void add_zero_taps(int64_t C);

 private:
  PackedWeight wide_;    // weights[0] with read_kw_ taps per kernel row, when read_kw_ > 0
  int64_t read_kw_ = 0;  // taps per kernel row the implicit GEMM reads (0: KW)
  int64_t read_kw() const { return read_kw_ ? read_kw_ : KW; }
  const PackedWeight& implicit_weight() const { return read_kw_ ? wide_ : weights[0]; }
  int64_t padded_width(const RunContext& ctx) const;  // of the implicit GEMM's padded input rows
  bool direct() const { return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0; }
  Epilogue epilogue(const RunContext& ctx, int64_t r0, int64_t c0) const;
  bool implicit(const RunContext& ctx) const;        // run by gemm_s8_conv
  void run_implicit(RunContext& ctx) const;
  int64_t row_stride(const RunContext& ctx) const;  // im2col row length (elements)
  int64_t chunk_rows(const RunContext& ctx) const;  // output pixels gathered per im2col chunk
};

class DepthwiseOp : public Op {
 public:
  void run(RunContext& ctx) const override;
  int64_t KH = 3, KW = 3, SH = 1, SW = 1, PH = 0, PW = 0, DH = 1, DW = 1;
  DwWeights weights;
  std::vector<float> mult;  // int8: input scale * weight scale per channel
  std::vector<float> bias;
  float lo = -__builtin_inff(), hi = __builtin_inff();
};

class AddOp : public Op {
 public:
  void run(RunContext& ctx) const override;
  float lo = -__builtin_inff(), hi = __builtin_inff();
};

class ConcatOp : public Op {  // along channels
 public:
  void run(RunContext& ctx) const override;
};

class PoolOp : public Op {  // max or average; a global average is a pool over the whole image
 public:
  void run(RunContext& ctx) const override;
  bool is_max = true, count_include_pad = true;
  int64_t KH = 1, KW = 1, SH = 1, SW = 1, PH = 0, PW = 0, DH = 1, DW = 1;
};

class ConvertOp : public Op {  // quantize f32 -> u8 or dequantize u8 -> f32
 public:
  void run(RunContext& ctx) const override;
};

class ActOp : public Op {  // f32 activation, or a u8 -> u8 lookup table
 public:
  void run(RunContext& ctx) const override;
  ActKind act = ActKind::silu;
  float lo = 0.f, hi = 0.f;
  std::vector<uint8_t> table;  // u8 tensors: 256 entries
};

class Plan {
 public:
  int add_tensor(const TensorInfo& t);
  void add_op(std::unique_ptr<Op> op);  // ops run in the order added; validated here
  void set_io(int input, int output);
  // input: N samples of the input tensor, float32 NHWC (or NCHW with input_nchw: transposed here,
  // in parallel); output: N samples of the output tensor as float32 NHWC. op_seconds (optional):
  // wall time of each op; op_im2col_seconds (optional): the part of it a conv spent in im2col.
  void run(const float* input, int64_t N, float* output, bool input_nchw = false,
           std::vector<double>* op_seconds = nullptr, std::vector<double>* op_im2col_seconds = nullptr);
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::vector<std::unique_ptr<Op>>& ops() const { return ops_; }
  int input() const { return input_; }
  int output() const { return output_; }
  int64_t arena_bytes() const {
    std::lock_guard<std::mutex> lock(run_mutex_);  // a run may be resizing it
    return int64_t(arena_.size());
  }

 private:
  void prepare(int64_t N);  // arena offsets for batch N, reusing memory of dead tensors
  std::vector<TensorInfo> tensors_;
  std::vector<std::unique_ptr<Op>> ops_;
  int input_ = -1, output_ = -1;
  int64_t prepared_N_ = 0;
  int input_quantize_op_ = -1;  // the input's only reader when it quantizes it (fused with NCHW -> NHWC)
  std::vector<int64_t> offset_;
  AlignedBuffer arena_, scratch_, input_nhwc_;
  mutable std::mutex run_mutex_;  // runs share arena_, scratch_, input_nhwc_ and the layout
};

}  // namespace mixq
