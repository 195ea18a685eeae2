// The ISA-neutral half of the SIMD depthwise kernels (avx2/depthwise_avx2.cc,
// avx512/depthwise_avx512.cc, avx512vnni/depthwise_avx512vnni.cc): the split of a call into tasks,
// the walk over a row's micro-tiles, the staging of input rows in a per-thread ring, and the u8
// output's clamp codes. Everything has internal linkage: each including translation unit is
// compiled with its own ISA flags and must get its own copy.
#pragma once
#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "ops/depthwise_impl.h"

#define MIXQ_DW_INLINE inline __attribute__((always_inline))

namespace mixq {
namespace {

// ------------------------------------------------------------------------------------ planning
// A task is (image, band of output rows, group of 16-channel blocks). It walks its output rows in
// order, staging input rows in per-thread slots of [block][padded column][64 bytes] (each kernel
// has its own layout within that size), and computes the blocks of each output row one by one.
struct Plan {
  int64_t wb;            // padded row width in columns
  int64_t ring;          // the input rows one output row spans
  int64_t group_blocks;  // channel blocks per task
  int64_t n_groups;
  int64_t band;          // output rows per task
  int64_t n_bands;
  int64_t tasks() const { return n_groups * n_bands; }
};

// slots: the row slots a task keeps (each group_blocks x wb x 64 bytes).
Plan make_plan(const DwCall& c, int64_t slots) {
  const DwShape& s = c.s;
  const int64_t NB = c.w->c_blocks();
  Plan p;
  p.wb = (c.OW - 1) * s.SW + (s.KW - 1) * s.DW + 1;
  p.ring = (s.KH - 1) * s.DH + 1;
  p.group_blocks = NB;
  p.band = c.OH;
  // A task's row slots stay within a quarter of L2.
  const int64_t budget = std::max<int64_t>(cpu_features().l2_bytes / 4, 128 << 10);
  while (p.group_blocks > 1 && slots * p.group_blocks * p.wb * kDwBlock * 4 > budget)
    p.group_blocks = (p.group_blocks + 1) / 2;
  // Enough tasks for an even finish: split channels first (free), then rows (a band boundary
  // converts the overlapping input rows twice). Groups keep >= 4 blocks: 64 u8 channels = a line.
  const int threads = get_num_threads();
  const int64_t target = threads > 1 ? 4 * int64_t(threads) : 1;
  auto count = [&] { return s.N * ((NB + p.group_blocks - 1) / p.group_blocks) * ((c.OH + p.band - 1) / p.band); };
  while (count() < target) {
    if (p.group_blocks >= 8) p.group_blocks = (p.group_blocks + 1) / 2;
    else if (p.band > 1) p.band = (p.band + 1) / 2;
    else break;
  }
  p.n_groups = (NB + p.group_blocks - 1) / p.group_blocks;
  p.n_bands = (c.OH + p.band - 1) / p.band;
  return p;
}

// The image, the channel blocks [cb0, cb0 + nbk) and the output rows [oh0, oh1) of a task.
struct TaskSpan {
  int64_t n, cb0, nbk, oh0, oh1;
};

MIXQ_DW_INLINE TaskSpan task_span(const DwCall& c, const Plan& p, int64_t task) {
  const int64_t g = task % p.n_groups, b = (task / p.n_groups) % p.n_bands;
  const int64_t cb0 = g * p.group_blocks, oh0 = b * p.band;
  return {task / (p.n_groups * p.n_bands), cb0, std::min(p.group_blocks, c.w->c_blocks() - cb0), oh0,
          std::min(c.OH, oh0 + p.band)};
}

// Covers output pixels [0, OW) of a row with micro-tiles of T pixels, then one each of 8 (when
// T > 8), 4, 2 and 1 as the rest needs: calls tile(std::integral_constant<int, n>{}, ow) for a
// tile of n pixels at ow.
template <int T, typename Tile>
MIXQ_DW_INLINE void for_each_tile(int64_t OW, Tile tile) {
  int64_t ow = 0;
  for (; ow + T <= OW; ow += T) tile(std::integral_constant<int, T>{}, ow);
  if constexpr (T > 8)
    if (OW - ow >= 8) tile(std::integral_constant<int, 8>{}, ow), ow += 8;
  if (OW - ow >= 4) tile(std::integral_constant<int, 4>{}, ow), ow += 4;
  if (OW - ow >= 2) tile(std::integral_constant<int, 2>{}, ow), ow += 2;
  if (OW - ow >= 1) tile(std::integral_constant<int, 1>{}, ow);
}

// Runs fn(task) for every task of the call. Tasks are handed out from both ends (0, last, 1,
// last-1, ...): with two threads each works through one contiguous half of the tensor, so
// neighbouring tasks (which share cache lines of the output at group boundaries) rarely run at the
// same time, and each core keeps its data.
template <typename Fn>
void for_each_task(const DwCall& c, const Plan& p, Fn fn) {
  const int64_t n_tasks = c.s.N * p.tasks();
  parallel_for(n_tasks, [&](int64_t t, int) { fn(t % 2 == 0 ? t / 2 : n_tasks - 1 - t / 2); });
}

// ---------------------------------------------------------------------------------- input rows
// The input rows of a task, each converted once to fp32 into a per-thread ring of slots, so the
// micro-kernels read padded rows with no bounds checks. A slot is n_sub sub-blocks of [wb padded
// columns][lanes channels] (lanes: the kernel's vector width); its padding columns, and one pad row
// that kernel rows above and below the image read, hold the pad value. Input row ih sits in slot
// ih % ring. The buffers are the calling thread's, reused from task to task.
thread_local AlignedBuffer t_ring;
thread_local std::vector<int64_t> t_ring_tags;      // per slot: the input row it holds
thread_local std::vector<const float*> t_kh_slots;  // per kernel row: its slot (or the pad row)
thread_local std::vector<const float*> t_kh_rows;   // per kernel row: what rows() returns

class RowRing {
 public:
  RowRing(const DwShape& s, const Plan& p, int64_t n_sub, int64_t lanes, float pad)
      : s_(s), ring_(p.ring), sub_floats_(p.wb * lanes), slot_floats_(n_sub * p.wb * lanes), pad_(pad),
        j0_(std::min(s.PW, p.wb)), j1_(std::min(s.PW + s.W, p.wb)) {
    // The thread-local buffers' addresses are taken once: each access to a thread_local costs a
    // __tls_get_addr call in a shared library.
    t_ring.resize(size_t((ring_ + 1) * slot_floats_) * sizeof(float));
    base_ = t_ring.as<float>();
    t_ring_tags.assign(size_t(ring_), INT64_MIN);
    tags_ = t_ring_tags.data();
    t_kh_slots.resize(size_t(s.KH));
    kh_slots_ = t_kh_slots.data();
    t_kh_rows.resize(size_t(s.KH));
    kh_rows_ = t_kh_rows.data();
    for (int64_t r = 0; r < ring_; ++r)
      for (int64_t k = 0; k < n_sub; ++k) {
        float* sub = base_ + r * slot_floats_ + k * sub_floats_;
        std::fill(sub, sub + j0_ * lanes, pad);
        std::fill(sub + j1_ * lanes, sub + sub_floats_, pad);
      }
  }
  // The padded columns that hold image columns [0, W): [j0, j1) (column j is image column j - PW).
  int64_t j0() const { return j0_; }
  int64_t j1() const { return j1_; }

  // Points the kernel rows of output row oh at their slots; convert(ih, slot) fills columns
  // [j0, j1) of each sub-block of a slot with input row ih, for the rows the ring lacks.
  template <typename Convert>
  MIXQ_DW_INLINE void select(int64_t oh, Convert convert) {
    for (int64_t kh = 0; kh < s_.KH; ++kh) {
      const int64_t ih = oh * s_.SH - s_.PH + kh * s_.DH;
      if (ih < 0 || ih >= s_.H) {
        float* pad_row = base_ + ring_ * slot_floats_;
        if (!pad_ready_) std::fill(pad_row, pad_row + slot_floats_, pad_), pad_ready_ = true;
        kh_slots_[kh] = pad_row;
        continue;
      }
      const int64_t r = ih % ring_;
      float* slot = base_ + r * slot_floats_;
      if (tags_[r] != ih) convert(ih, slot), tags_[r] = ih;
      kh_slots_[kh] = slot;
    }
  }
  // Per kernel row, sub-block `sub` of its slot at column 0: what a micro-kernel reads.
  const float* const* rows(int64_t sub) {
    for (int64_t kh = 0; kh < s_.KH; ++kh) kh_rows_[kh] = kh_slots_[kh] + sub * sub_floats_;
    return kh_rows_;
  }
  int64_t sub_floats() const { return sub_floats_; }

 private:
  const DwShape& s_;
  int64_t ring_, sub_floats_, slot_floats_;
  float pad_;
  int64_t j0_, j1_;
  float* base_;
  int64_t* tags_;
  const float** kh_slots_;
  const float** kh_rows_;
  bool pad_ready_ = false;
};

// -------------------------------------------------------------------------------- u8 output
// Requantization constants of a call; the codes of lo and hi bound the one clamp (the kernels'
// u8 epilogues clamp the code, not y: requantization is monotonic, so that is the same).
struct OutCodes {
  float inv;
  int qlo, qhi;
};

OutCodes out_codes(const DwCall& c) {
  const float inv = 1.f / c.out_scale, zpf = float(c.out_zp);
  auto code = [&](float y) {
    const float v = std::nearbyint(y * inv) + zpf;
    return v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
  };
  return {inv, int(code(c.lo)), int(code(c.hi))};
}

}  // namespace
}  // namespace mixq
