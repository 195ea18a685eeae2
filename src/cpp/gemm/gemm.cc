#include "gemm/gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "gemm/gemm_paths.h"
#include "kernels/dispatch.h"

namespace mixq {
namespace {

// Cache-derived block sizes (in k steps of the kernel and in rows/columns).
struct Blocking {
  int64_t mc, nc, kc_steps;
};

// tall_a_row_bytes > 0 (groupwise path, which unpacks B once per row block): row blocks up to 192
// rows while their A (rows x bytes) fits half the L2, split evenly (measured 2-4 % faster at
// M = 128..2048 than 96-row blocks).
// small_m_a_row_bytes > 0 (int8 path): up to 192 rows in one block while their A fits half the L2, so
// the weights stream once instead of once per 96-row block (interleaved A/B, end to end: BERT-Large
// w8a8 at batch 1 0.8 % faster, MiniLM 5 % at batch 1 and 3 % at batch 8 through its 128-row FFN
// blocks; BERT-Large at batch 8 alike).
Blocking choose_blocking(int mr, int nr, int64_t M, int64_t N, int64_t k_step_bytes_b, int64_t tall_a_row_bytes = 0,
                         int64_t small_m_a_row_bytes = 0) {
  const CpuFeatures& f = cpu_features();
  // Depth: one 32-column B panel of kc steps fills 1/8 of L2. The micro-kernels keep their
  // speed with B streaming from L2 (measured), and a deep kc avoids re-reading the accumulators:
  // K up to 4096 for int8 and 1024 for fp32 runs in one pass on a 1 MiB L2.
  int64_t kc = std::max<int64_t>(64, (f.l2_bytes / 8) / k_step_bytes_b);
  // Rows per block: the A rows of a block (mc x K) and the accumulator tile stay in L2.
  int64_t mc = std::max<int64_t>(mr, (96 / mr) * mr);
  const int threads = inside_parallel() ? 1 : get_num_threads();
  if (tall_a_row_bytes > 0) {
    const int64_t cap = std::clamp<int64_t>(int64_t(f.l2_bytes / 2) / tall_a_row_bytes, mc, 192);
    const int64_t blocks = (M + cap - 1) / cap;
    // Only while the tasks stay 2 panels wide or more (narrower ones re-read A per panel).
    if (blocks * ((N + 2 * kPanelN - 1) / (2 * kPanelN)) >= 16 * threads)
      mc = ((M + blocks - 1) / blocks + mr - 1) / mr * mr;
  }
  if (small_m_a_row_bytes > 0 && M <= 192 && M * small_m_a_row_bytes <= int64_t(f.l2_bytes / 2))
    mc = std::max<int64_t>(mc, (M + mr - 1) / mr * mr);
  // int8 layers of one tile's width (N <= nr: a CNN's 16-64 channel convs) over many rows: taller
  // row blocks while each thread keeps 32 or more of them and their A fits a quarter of L2. 96-row
  // tasks of a 16-channel conv took ~1 us each, and handing them out cost the second thread most of
  // its gain (ResNet-20 at batch 64 on 2 threads: 0.94x the time; MobileNetV2 bs8 0.98x).
  if (small_m_a_row_bytes > 0 && N <= nr) {
    const int64_t cap = std::max<int64_t>(mc, int64_t(f.l2_bytes / 4) / small_m_a_row_bytes / mr * mr);
    while (2 * mc <= cap && (M + 2 * mc - 1) / (2 * mc) >= 32 * threads) mc *= 2;
  }
  int64_t nc = 256;
  // Split N finer until there are enough tasks for an even finish across threads (not for a
  // nested call: it runs serially, and narrow chunks only cost kernel width).
  int64_t m_blocks = (M + mc - 1) / mc;
  // Chunks narrower than the kernel's tile only once some thread would have fewer than four
  // tasks: narrow tiles halve the VNNI kernel's accumulators (ResNet-50 and MobileNetV2 at batch 1,
  // 2 threads: 1-2 % faster end to end than splitting down to 32 columns).
  while (threads > 1 && nc > kPanelN && m_blocks * ((N + nc - 1) / nc) < 16 * threads) {
    if (nc / 2 < nr && m_blocks * ((N + nc - 1) / nc) >= 4 * threads) break;
    nc /= 2;
  }
  return {mc, nc, kc};
}

// Per-thread buffers, reused across calls so steady-state inference allocates nothing.
thread_local AlignedBuffer t_acc;        // accumulator tile of a task
thread_local AlignedBuffer t_prepared;   // converted activations of a call
thread_local DynamicRows t_quantized;    // dynamically quantized activations of a call
thread_local AlignedBuffer t_unpacked;   // low-bit B panels of a block, unpacked to s8 (groupwise path)
thread_local AlignedBuffer t_wide_a;     // activations widened to int16 (s8w path)
thread_local AlignedBuffer t_wide_b;     // B panels of a block widened to int16 (s8w path)
thread_local AlignedBuffer t_lut;        // u2lut tables of a call's row (built by the calling thread)
thread_local AlignedBuffer t_band;       // zero-point-padded input rows of an implicit conv's task

// The blocked loop nest shared by every kernel kind. Tasks are (row block, column chunk) tiles of
// C; in each, for every kc slice of K and every B micro-panel (np panels of 32 columns), the
// kernel sweeps the row micro-panels, so the B micro-panel is reused mc/mr times while hot.
//   kernel(mr, np, p0, steps, m, n, tile, ldtile, accumulate): rows [m, m+mr), columns
//     [n, n + 32*np), k steps [p0, p0+steps)
//   epilogue(tile, ldtile, m0, rows, n0, cols): output of a finished micro-tile
// kc_granule: kc slices are a multiple of it (low-bit groups must not straddle two slices).
//   prepare_b(p0, steps, n, np): called before the rows of each B micro-panel are swept (the
//     groupwise path unpacks the panels there, once per block).
//   prepare_rows(m0, mc): called as a task starts, before its first kernel call (the implicit conv
//     pads the input rows its task reads there).
struct NoPrepare {
  void operator()(int64_t, int64_t, int64_t, int) const {}
};
struct NoPrepareRows {
  void operator()(int64_t, int64_t) const {}
};

// run_blocked's blocks for a kernel over weights w and M rows.
Blocking blocking_for(const PackedWeight& w, int64_t M, const KernelInfo& kinfo, int64_t b_step_bytes,
                      int64_t kc_granule) {
  Blocking blk = choose_blocking(kinfo.mr, kinfo.nr, M, w.N, b_step_bytes, kinfo.kind == KernelKind::s8g ? 4 * w.k_steps() : 0,
                                 kinfo.kind == KernelKind::s8 || kinfo.kind == KernelKind::s7 ? 4 * w.k_steps() : 0);
  blk.kc_steps = std::max<int64_t>(1, blk.kc_steps / kc_granule) * kc_granule;
  return blk;
}

template <typename Acc, typename Kernel, typename Epi, typename Prepare = NoPrepare,
          typename PrepareRows = NoPrepareRows>
void run_blocked(const PackedWeight& w, int64_t M, const KernelInfo& kinfo, int64_t b_step_bytes,
                 int64_t kc_granule, Kernel kernel, Epi epilogue, Prepare prepare_b = {},
                 PrepareRows prepare_rows = {}) {
  // Decode (1-2 rows): up to 4 panels per kernel call, which the low-bit kernels stream side by side
  // (more DRAM requests in flight per core; the int8 kernel takes two at a time). Otherwise the
  // kernel's own tile width, so a B micro-panel stays in L1.
  const int mr_max = kinfo.mr, np_max = M <= 2 ? std::max(4, kinfo.nr / kPanelN) : kinfo.nr / kPanelN;
  const int64_t N = w.N, ks = w.k_steps();
  const Blocking blk = blocking_for(w, M, kinfo, b_step_bytes, kc_granule);
  const int64_t m_blocks = (M + blk.mc - 1) / blk.mc, n_chunks = (N + blk.nc - 1) / blk.nc;

  parallel_for(m_blocks * n_chunks, [&](int64_t task, int) {
    const int64_t m0 = (task / n_chunks) * blk.mc, mc = std::min(blk.mc, M - m0);
    const int64_t n0 = (task % n_chunks) * blk.nc, nc = std::min(blk.nc, N - n0);
    const int64_t n_panels = (nc + kPanelN - 1) / kPanelN;
    prepare_rows(m0, mc);
    // With all of K in one slice a micro-tile is finished before the next starts: one micro-tile of
    // accumulators, in L1, serves them all. (An mc x nc tile of 96 x 256 int32 left L1 and cost a
    // 25088 x 256 x 64 conv twice its 25088 x 64 x 64 rate per output.)
    const bool one_slice = ks <= blk.kc_steps;
    const int64_t ldacc = one_slice ? np_max * kPanelN : n_panels * kPanelN;
    t_acc.resize(size_t((one_slice ? mr_max : mc) * ldacc) * sizeof(Acc));
    Acc* acc = t_acc.as<Acc>();
    for (int64_t p0 = 0; p0 < ks; p0 += blk.kc_steps) {
      const int64_t steps = std::min(blk.kc_steps, ks - p0);
      for (int64_t j = 0; j < n_panels; j += np_max) {
        const int np = int(std::min<int64_t>(np_max, n_panels - j));
        prepare_b(p0, steps, n0 + j * kPanelN, np);
        for (int64_t r = 0; r < mc; r += mr_max) {
          const int mr = int(std::min<int64_t>(mr_max, mc - r));
          Acc* tile = one_slice ? acc : acc + r * ldacc + j * kPanelN;
          kernel(mr, np, p0, steps, m0 + r, n0 + j * kPanelN, tile, ldacc, p0 > 0);
          // Finish each micro-tile while it is still in L1.
          if (p0 + steps >= ks) epilogue(tile, ldacc, m0 + r, mr, n0 + j * kPanelN, std::min<int64_t>(np * kPanelN, nc - j * kPanelN));
        }
      }
    }
  });
}

// Kernel call for the plain kinds: A rows in place at (m, p0), B panels at (n, p0).
template <typename AElem, typename BElem, typename Acc, typename Fn>
auto plain_kernel(Fn fn, const AElem* a, int64_t lda, const PackedWeight& w) {
  const int64_t kr = w.kr(), panel_elems = w.panel_bytes() / int64_t(sizeof(BElem));
  const BElem* wdata = w.data.as<BElem>();
  return [=](int mr, int np, int64_t p0, int64_t steps, int64_t m, int64_t n, Acc* tile, int64_t ldt, bool accumulate) {
    fn(mr, np, steps, a + m * lda + p0 * kr, lda, wdata + (n / kPanelN) * panel_elems + p0 * kPanelN * kr,
       panel_elems, tile, ldt, accumulate);
  };
}

// Asks for the fp32 residual rows a micro-tile's epilogue adds, before the tile's last kernel call:
// they were written long before (the layer's input), and the epilogue's loads of them, rows
// ld_residual apart, stalled it (BERT-Large w8a8 at batch 8: a quarter of the epilogue's samples
// on that add). Into L1: a prefetch into L2 measured no gain. (The u8 residuals of CNN plans
// were not measured and are left alone.)
void prefetch_residual(const Epilogue& e, int64_t m0, int mr, int64_t n0, int64_t cols) {
  if (!e.residual_f32) return;
  for (int r = 0; r < mr; ++r) {
    const char* row = reinterpret_cast<const char*>(e.residual_f32 + (m0 + r) * e.ld_residual + n0);
    for (int64_t b = 0; b < cols * int64_t(sizeof(float)); b += 64) __builtin_prefetch(row + b, 0, 3);
  }
}

// Runs fn(r0, rows) over row chunks of about 64 KiB of input, in parallel.
template <typename Fn>
void parallel_rows(int64_t M, int64_t row_bytes, Fn fn) {
  parallel_chunks(M, (int64_t(1) << 16) / std::max<int64_t>(row_bytes, 1),
                  [&](int64_t r0, int64_t r1) { fn(r0, r1 - r0); });
}


// Per-column affine of a static-activation int8 GEMM (see Epilogue::col_scale):
//   y = (acc - a_zp * colsum) * a_scale * b_scale + bias, then / out_scale for u8 output; the int32
//   offset a_zp * colsum is subtracted before conversion to float (exact, as in the portable path).
void fold_column_affine(Epilogue& e, int64_t N, std::vector<float>& scale, std::vector<float>& bias,
                        std::vector<int32_t>& offset) {
  const bool u8 = e.type == OutType::u8;
  const double inv = u8 ? 1.0 / double(e.out_scale) : 1.0, zp = u8 ? double(e.out_zp) : 0.0;
  const double sa = double(e.a_scale[0]);
  const uint32_t azp = uint32_t(e.a_zp[0]);
  scale.resize(size_t(N)), bias.resize(size_t(N)), offset.resize(size_t(N));
  for (int64_t j = 0; j < N; ++j) {
    // float(acc - offset) stays exact like the portable epilogue; only the scaling is folded.
    scale[size_t(j)] = float(sa * double(e.b_scale[j]) * inv);
    bias[size_t(j)] = float((e.bias ? double(e.bias[j]) : 0.0) * inv);
    offset[size_t(j)] = int32_t(azp * uint32_t(e.colsum[j]));
  }
  // Clamp bounds in output codes: requantization is monotonic, so clamping before or after agrees.
  // (The zero point is added after rounding: round-half-even of y + zp is not round(y) + zp.)
  e.q_lo = u8 ? float(std::max(0.0, std::nearbyint(double(e.lo) * inv) + zp)) : e.lo;
  e.q_hi = u8 ? float(std::min(255.0, std::nearbyint(double(e.hi) * inv) + zp)) : e.hi;
}

// The int8 epilogue's per-column terms from the weight (column sums, scales, zero points) and, for
// activations with one scale and zero point and symmetric weights, the whole affine folded per
// column into `folded` (which must outlive the GEMM). The folded epilogue has no GELU step.
struct FoldedColumns {
  std::vector<float> scale, bias;
  std::vector<int32_t> offset;
};
void set_s8_columns(Epilogue& e, const PackedWeight& w, bool per_tensor_activations, FoldedColumns& folded) {
  e.colsum = w.colsum.data();
  e.b_zp = w.zero_point.empty() ? nullptr : w.zero_point.data();
  e.b_scale = w.scale.data();
  if (!e.b_zp && !e.gelu && per_tensor_activations && (e.type == OutType::u8 || e.type == OutType::f32)) {
    fold_column_affine(e, w.N, folded.scale, folded.bias, folded.offset);
    e.col_scale = folded.scale.data(), e.col_bias = folded.bias.data(), e.col_offset = folded.offset.data();
    e.y_bounded = e.type == OutType::u8 && folded_y_bounded(e, w.K, w.N);
    e.zero_offsets = e.a_zp[0] == 0;  // offset = a_zp * column sum
  }
}

// The kernel of an int8 GEMM's product (GemmS8Fn): on narrow codes the s7 one where the dispatch
// has it (CPUs without VNNI: vpmaddubsw, twice the exact vpmaddwd rate), else the s8 one.
const KernelInfo& s8_product_kernel(const Dispatch& d, const PackedWeight& w) {
  const KernelInfo* s7 = d[KernelKind::s7];
  return s7 && w.narrow_codes ? *s7 : d.gemm(KernelKind::s8);
}

// The kernel that finishes tiles of this int8 GEMM in registers (s8q, or s7q after an s7
// product), or nullptr: a folded u8 epilogue (set_s8_columns), all of K in one slice, and a SIMD
// kernel of the product kernel's own level (the ref one defines s8q for the tester; the portable
// path keeps its own epilogue).
const KernelInfo* fused_u8_kernel(const Dispatch& d, const KernelInfo& s8, const PackedWeight& w, int64_t M,
                                  int64_t kc_granule, const Epilogue& e) {
  const KernelInfo* q = d[s8.kind == KernelKind::s7 ? KernelKind::s7q : KernelKind::s8q];
  if (!q || q->isa != s8.isa || q->isa == Isa::ref || !e.col_scale || e.type != OutType::u8 || e.col_block)
    return nullptr;
  return w.k_steps() <= blocking_for(w, M, s8, kPanelN * 4, kc_granule).kc_steps ? q : nullptr;
}

// The s8 kernel's entry as run_blocked plans with it: with the fused kernel's rows per tile for an
// N-column GEMM (taller when narrow, KernelInfo::rows_for).
KernelInfo with_tile_rows(const KernelInfo& s8, const KernelInfo* fused, int64_t N) {
  KernelInfo k = s8;
  if (fused) k.mr = fused->rows_for(N);
  return k;
}

// The weight-only kernels (fp32 or bf16 rows a of stride lda, zero padded to whole groups) over
// the blocked loop, float epilogue.
template <typename Fn, typename AElem>
void run_weight_only(const PackedWeight& w, int64_t M, const KernelInfo& kinfo, Fn fn, const AElem* a,
                     int64_t lda, const IsaOps& ops, const Epilogue& e) {
  const int64_t group_steps = w.group_size / 4;
  run_blocked<float>(
      w, M, kinfo, w.group_block_bytes() / group_steps, group_steps,
      [&](int mr, int np, int64_t p0, int64_t steps, int64_t m, int64_t n, float* tile, int64_t ldt, bool accumulate) {
        fn(mr, np, steps, a + m * lda + p0 * 4, lda, w.lowbit_block(n, p0), w.panel_bytes(), group_steps, tile, ldt,
           accumulate);
      },
      [&](const float* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
        ops.epilogue_f32(e, acc, ldacc, m0, mc, n0, nc);
      });
}

}  // namespace

int64_t conflict_free_stride(int64_t row_elems, int64_t elem_bytes) {
  return (row_elems * elem_bytes) % 4096 == 0 ? row_elems + 64 / elem_bytes : row_elems;
}

// Writing a line not in cache first reads it from DRAM (read for ownership), and those misses
// stall the epilogue's stores; non-temporal stores skip the read. Only worth it when the next
// reader would not find the output in cache anyway: BERT-Large w8a8 at batch 8 (layer outputs of
// 4-16 MiB, a layer's working set past L3) ran ~3-6 % faster end to end, while a CNN plan at
// batch 128 (activations that stay in L3 for the next layer) ran up to 13 % slower: so callers
// decide, by this rule, for outputs they know are not read back at once.
bool streaming_pays(int64_t out_bytes) { return out_bytes >= int64_t(cpu_features().l2_bytes); }

namespace {

// A low-bit weight whose one group spans all of K, as the int8 weight it equals: codes minus zero
// points, with the group's scale per column. Written into `s8` (a thread's, reused across calls:
// at batch 1 a layer takes a few microseconds, so the conversion must allocate nothing).
void single_group_as_s8(const PackedWeight& w, const IsaOps* ops, PackedWeight& s8) {
  thread_local std::vector<int8_t> unpacked;  // one panel's group block: codes, then fp32 scales
  const int64_t group_steps = w.group_size / 4;
  unpacked.resize(size_t(group_steps * 128 + 128));
  s8.format = WeightFormat::s8_x32c4;
  s8.N = w.N, s8.K = w.K;
  s8.data.resize(s8.expected_data_bytes());
  s8.scale.resize(size_t(w.n_pad()));
  s8.colsum.resize(size_t(w.n_pad()));
  s8.zero_point.clear();
  s8.narrow_codes = true;  // codes minus zero points of at most 4 bits: |c| <= 15
  const int64_t panel = s8.panel_bytes();
  for (int64_t j = 0; j < w.n_panels(); ++j) {
    ops->unpack_lowbit_s8(w.bits(), w.lowbit_block(j * kPanelN, 0), group_steps, 1, unpacked.data());
    int8_t* dst = s8.data.as<int8_t>() + j * panel;
    std::memcpy(dst, unpacked.data(), size_t(panel));
    std::memcpy(s8.scale.data() + j * kPanelN, unpacked.data() + group_steps * 128, kPanelN * sizeof(float));
  }
  // Column sums of the codes from the packed sums of the dequantized weights: with one group,
  // wsum = scale * sum exactly up to float rounding (|sum| <= 15 K < 2^22), so the division rounds
  // back to the integer. (The packing pads k >= K with the zero point: those codes are 0 here.)
  // A zero scale zeroes the column's output whatever its sum.
  // (Rounded by +-0.5 and truncation, not nearbyint: this file is built for the baseline ISA, where
  // nearbyint is a libm call per column, and it cost more than the GEMM at M = 16.)
  for (int64_t n = 0; n < w.n_pad(); ++n) {
    const float sc = s8.scale[size_t(n)], v = sc != 0.f ? w.wsum[size_t(n)] / sc : 0.f;
    s8.colsum[size_t(n)] = int32_t(v < 0.f ? v - 0.5f : v + 0.5f);
  }
}

thread_local PackedWeight t_single_group;  // single_group_as_s8's output, reused across calls

std::atomic<int> g_u2_lut{0};

// The kernel of a u2 GEMM of M rows: u2lut for one row where the dispatcher's rule (or set_u2_lut)
// says, else the level's u2 kernel.
const KernelInfo& u2_kernel(const Dispatch& d, int64_t M) {
  const int mode = g_u2_lut.load(std::memory_order_relaxed);
  const KernelInfo* lut = d[KernelKind::u2lut];
  if (M == 1 && lut && (mode == 1 || (mode == 0 && d.u2lut_gemv))) return *lut;
  return d.gemm(KernelKind::u2);
}

}  // namespace

void gemm_s8(const PackedWeight& w, const QuantizedRows& a, Epilogue e) {
  if (w.format != WeightFormat::s8_x32c4 && !w.low_bit())
    throw std::invalid_argument("gemm_s8: weights are not int8 or low-bit");
  const Dispatch d = active_dispatch();
  const GemmPaths& paths = gemm_paths(d.isa);
  const KernelInfo* s8g = d[KernelKind::s8g];
  const int64_t min_rows = w.N * w.K <= paths.small_weight_codes ? paths.small_weight_min_rows : paths.groupwise_min_rows;
  const bool groupwise = w.low_bit() && s8g && a.M >= min_rows;
  // A small weight with one group over all of K (a CNN's 1x1 convs with K <= 128 at group 128) is
  // an int8 GEMM: unpacked by the caller once per call, it runs on the int8 kernel and its folded
  // epilogue instead of the fp32 group fold.
  if (groupwise && w.n_groups() == 1 && a.M >= paths.groupwise_min_rows && w.N * w.K <= paths.single_group_max_codes) {
    single_group_as_s8(w, d.ops, t_single_group);
    gemm_s8(t_single_group, a, e);
    return;
  }
  const KernelInfo& kinfo = groupwise                             ? *s8g
                            : w.format == WeightFormat::u4_x32c4 ? d.gemm(KernelKind::u4)
                            : w.format == WeightFormat::u2_x32c4 ? u2_kernel(d, a.M)
                                                                 : s8_product_kernel(d, w);
  note_kernel(kinfo.name);
  if (a.M == 0) return;
  const IsaOps* ops = d.ops;
  // The kernels read K_read values per row (groupwise: K to the k step, it skips group padding).
  const int64_t M = a.M, K = w.K, K_read = groupwise ? (K + 3) / 4 * 4 : w.padded_k();
  // The kernels read u8 rows in place; s8 input (shift by 128) or K_read != K (zero padding) is
  // converted first.
  const uint8_t* rows = a.data;
  int64_t lda = a.lda;
  if (a.is_signed || (K_read != K && !a.padded)) {
    const int64_t ldd = conflict_free_stride(K_read, 1);
    t_prepared.resize(size_t(M * ldd));
    uint8_t* dst = t_prepared.as<uint8_t>();
    parallel_rows(M, K, [&](int64_t r0, int64_t n) {
      ops->prepare_a_u8(n, K, a.data + r0 * a.lda, a.lda, a.is_signed, dst + r0 * ldd, ldd);
    });
    rows = dst, lda = ldd;
  }
  // Zero points move to the u8 domain when s8 activations are shifted by +128.
  std::vector<int32_t> a_zp(static_cast<size_t>(a.zp_stride ? M : 1));
  for (size_t i = 0; i < a_zp.size(); ++i)
    a_zp[i] = (a.zero_point ? a.zero_point[i * a.zp_stride] : 0) + (a.is_signed ? 128 : 0);
  e.K = K;
  e.a_zp = a_zp.data();
  e.a_zp_stride = a.zp_stride ? 1 : 0;
  e.a_scale = a.scale;
  e.a_scale_stride = a.scale_stride;
  if (w.low_bit()) e.wsum = w.wsum.data();  // the activation zero point's term (epilogue_lowbit)

  if (groupwise) {
    const auto fn = kinfo.fn_as<GemmGroupwiseFn>();
    const int64_t group_steps = w.group_size / 4, group_bytes = group_steps * 128 + 128, k4 = (K + 3) / 4;
    // B panels unpacked to s8 `code - zp`, with each group's scales after its codes. A small weight
    // under many row blocks (a CNN layer at a large batch) is unpacked once, by the caller, into
    // panels of all of K that every task reads (at 3136x64x576 the 33 tasks' own unpacks took 1.6 %
    // of the call); otherwise each task unpacks the panels of its kc slice into its thread's buffer.
    const bool unpack_once = w.N * w.K <= paths.small_weight_codes && M >= 2 * paths.groupwise_min_rows;
    const int64_t whole_k_panel = conflict_free_stride(w.n_groups() * group_bytes, 1);
    int8_t* whole_k = nullptr;
    if (unpack_once) {
      t_unpacked.resize(size_t(w.n_panels() * whole_k_panel));
      whole_k = t_unpacked.as<int8_t>();
      for (int64_t j = 0; j < w.n_panels(); ++j)
        ops->unpack_lowbit_s8(w.bits(), w.lowbit_block(j * kPanelN, 0), group_steps, w.n_groups(),
                              whole_k + j * whole_k_panel);
    }
    // Bytes between the unpacked panels of a kc slice (the thread's own buffer, t_unpacked).
    auto slice_bytes = [&](int64_t steps) { return conflict_free_stride(steps / group_steps * group_bytes, 1); };
    run_blocked<float>(
        w, M, kinfo, group_bytes / group_steps, group_steps,
        [&](int mr, int np, int64_t p0, int64_t steps, int64_t m, int64_t n, float* tile, int64_t ldt, bool accumulate) {
          const int8_t* b = unpack_once ? whole_k + (n / kPanelN) * whole_k_panel + p0 / group_steps * group_bytes
                                        : t_unpacked.as<int8_t>();
          // Only the k steps that hold K: the padding of a last partial group is skipped.
          fn(mr, np, std::min(steps, k4 - p0), rows + m * lda + p0 * 4, lda, b,
             unpack_once ? whole_k_panel : slice_bytes(steps), group_steps, tile, ldt, accumulate);
        },
        [&](const float* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
          ops->epilogue_lowbit(e, acc, ldacc, m0, mc, n0, nc);
        },
        [&](int64_t p0, int64_t steps, int64_t n, int np) {
          if (unpack_once) return;
          const int64_t slice = slice_bytes(steps);
          t_unpacked.resize(size_t(np * slice));
          for (int j = 0; j < np; ++j)
            ops->unpack_lowbit_s8(w.bits(), w.lowbit_block(n + j * kPanelN, p0), group_steps, steps / group_steps,
                                  t_unpacked.as<int8_t>() + j * slice);
        });
    return;
  }
  if (w.low_bit()) {
    // Per-group activation row sums fold the weight zero points (LowBitArgs).
    const int64_t G = w.n_groups();
    std::vector<float> group_sums(size_t(M * G));
    parallel_rows(M, K, [&](int64_t r0, int64_t n) {
      ops->group_sums_u8(n, K, rows + r0 * lda, lda, w.group_size, group_sums.data() + r0 * G, G);
    });
    const auto fn = kinfo.fn_as<GemmLowBitFn>();
    const int64_t group_steps = w.group_size / 4;
    // u2lut: the row's tables, built once per call (in chunks across threads) for every column.
    const uint8_t* lut = nullptr;
    if (kinfo.kind == KernelKind::u2lut) {
      const int64_t units = w.k_steps() / 4;
      t_lut.resize(size_t(units * kU2LutUnitBytes));
      uint8_t* tables = t_lut.as<uint8_t>();
      const auto build = d[KernelKind::u2lut_tables]->fn_as<BuildU2LutFn>();
      parallel_chunks(units, 128, [&](int64_t u0, int64_t u1) { build(rows + 16 * u0, u1 - u0, tables + u0 * kU2LutUnitBytes); });
      lut = tables;
    }
    run_blocked<float>(
        w, M, kinfo, w.group_block_bytes() / group_steps, group_steps,
        [&](int mr, int np, int64_t p0, int64_t steps, int64_t m, int64_t n, float* tile, int64_t ldt, bool accumulate) {
          LowBitArgs args{group_steps, group_sums.data() + m * G + p0 / group_steps, G, (K + 3) / 4 - p0};
          if (lut) args.lut = lut + p0 / 4 * kU2LutUnitBytes;
          fn(mr, np, steps, rows + m * lda + p0 * 4, lda, w.lowbit_block(n, p0), w.panel_bytes(), args, tile, ldt,
             accumulate);
        },
        [&](const float* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
          ops->epilogue_lowbit(e, acc, ldacc, m0, mc, n0, nc);
        });
    return;
  }

  std::vector<int32_t> rowsum;
  if (!w.zero_point.empty()) {  // weight zero points need the activation row sums
    rowsum.resize(size_t(M));
    parallel_rows(M, K, [&](int64_t r0, int64_t n) { ops->row_sums_u8(n, K, rows + r0 * lda, lda, rowsum.data() + r0); });
  }
  e.rowsum = rowsum.empty() ? nullptr : rowsum.data();
  FoldedColumns folded;
  set_s8_columns(e, w, e.a_zp_stride == 0 && a.scale_stride == 0, folded);
  const auto epilogue = [&](const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
    ops->epilogue_s32(e, acc, ldacc, m0, mc, n0, nc);
  };
  const int64_t ks = w.k_steps();
  // Without VNNI (where an s8w kernel is selected): activations widened to int16 once per call and
  // each B panel once per block (reused by all its rows), so the kernel is vpmaddwd and adds alone
  // (the in-place kernel sign-extends B per row tile: 207-227 GOPS at the compute-bound shapes on
  // Zen 3, 232-255 this way).
  const KernelInfo* s8w = kinfo.kind == KernelKind::s7 ? nullptr : d[KernelKind::s8w];
  if (s8w && M >= paths.wide_min_rows && w.N >= paths.wide_min_cols) {
    const int64_t K_read = w.padded_k(), ld16 = conflict_free_stride(K_read, 2);
    t_wide_a.resize(size_t(M * ld16) * sizeof(int16_t));
    int16_t* a16 = t_wide_a.as<int16_t>();
    parallel_rows(M, K_read, [&](int64_t r0, int64_t n) {
      for (int64_t r = r0; r < r0 + n; ++r)
        for (int64_t k = 0; k < K_read; ++k) a16[r * ld16 + k] = int16_t(rows[r * lda + k]);
    });
    const auto fn = s8w->fn_as<GemmS8WideFn>();
    const auto widen = d[KernelKind::widen_s8]->fn_as<WidenS8Fn>();
    const int8_t* wdata = w.data.as<int8_t>();
    const int64_t panel_elems = w.panel_bytes();
    note_kernel(s8w->name);
    // Blocking as for 1 KiB per step: kc = 64 steps on a 512 KiB L2, so a widened panel (256 bytes a
    // step) fills half of L1 while the row tiles sweep it.
    run_blocked<int32_t>(
        w, M, *s8w, 1024, 1,
        [&](int mr, int np, int64_t p0, int64_t steps, int64_t m, int64_t n, int32_t* tile, int64_t ldt,
            bool accumulate) {
          if (p0 + steps >= ks) prefetch_residual(e, m, mr, n, std::min<int64_t>(np * kPanelN, w.N - n));
          fn(mr, np, steps, a16 + m * ld16 + p0 * 4, ld16, t_wide_b.as<int16_t>(), steps * 128, tile, ldt, accumulate);
        },
        epilogue,
        [&](int64_t p0, int64_t steps, int64_t n, int np) {
          t_wide_b.resize(size_t(np * steps * 128) * sizeof(int16_t));
          for (int j = 0; j < np; ++j)
            widen(wdata + (n / kPanelN + j) * panel_elems + p0 * 128, steps, t_wide_b.as<int16_t>() + j * steps * 128);
        });
    return;
  }
  const auto fn = kinfo.fn_as<GemmS8Fn>();
  const KernelInfo* fused = fused_u8_kernel(d, kinfo, w, M, 1, e);
  if (fused) note_kernel(fused->name);
  const auto fn_u8 = fused ? fused->fn_as<GemmS8QFn>() : nullptr;
  const int8_t* wdata = w.data.as<int8_t>();
  const int64_t panel = w.panel_bytes();
  run_blocked<int32_t>(w, M, with_tile_rows(kinfo, fused, w.N), kPanelN * 4, 1,
                       [&](int mr, int np, int64_t p0, int64_t steps, int64_t m, int64_t n, int32_t* tile, int64_t ldt,
                           bool accumulate) {
                         const int cols = int(std::min<int64_t>(np * kPanelN, w.N - n));
                         const uint8_t* am = rows + m * lda + p0 * 4;
                         const int8_t* bn = wdata + (n / kPanelN) * panel + p0 * kPanelN * 4;
                         if (fn_u8) return fn_u8(mr, np, steps, am, lda, bn, panel, steps, 0, cols, e, m, n);
                         if (p0 + steps >= ks) prefetch_residual(e, m, mr, n, cols);
                         fn(mr, np, steps, am, lda, bn, panel, tile, ldt, accumulate, steps, 0, cols);
                       },
                       [&](const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
                         if (!fn_u8) epilogue(acc, ldacc, m0, mc, n0, nc);
                       });
}

namespace {
std::atomic<bool> g_implicit_conv{true};
}  // namespace

void set_implicit_conv(bool on) { g_implicit_conv.store(on); }

void set_u2_lut(int mode) {
  if (mode < 0 || mode > 2) throw std::invalid_argument("set_u2_lut: mode is 0 (auto), 1 (on) or 2 (off)");
  g_u2_lut.store(mode);
}

bool gemm_s8_conv_runs(const PackedWeight& w, int64_t KW, int64_t C) {
  // Symmetric int8 weights (no activation row sums needed) on a kernel that reads u8 rows in place:
  // not the widened int8 path (it reads A widened to int16, which an implicit GEMM would have to
  // widen per tap), unless the codes are narrow and run on s7 instead.
  const Dispatch& d = active_dispatch();
  return g_implicit_conv.load(std::memory_order_relaxed) && w.format == WeightFormat::s8_x32c4 &&
         w.zero_point.empty() && (KW * C) % 4 == 0 &&
         (d[KernelKind::s8w] == nullptr || s8_product_kernel(d, w).kind == KernelKind::s7);
}

// Padded input rows [R0, R1) of an implicit conv (row R = image R / HP, padded line R % HP) into
// band: the zero point outside the image, so every tap of the task's pixels is in bounds. The band
// is filled first, then the image lines copied in: one library call a line, not three (the small
// border fills cost as much as the copies).
void pad_rows(const ConvRows& a, int64_t R0, int64_t R1, uint8_t* band) {
  const int64_t HP = a.H + 2 * a.PH, row = a.WP * a.C, data = a.W * a.C;
  std::memset(band, int(a.zero_point), size_t((R1 - R0) * row));
  for (int64_t R = R0; R < R1; ++R) {
    const int64_t img = R / HP, y = R % HP - a.PH;
    if (y >= 0 && y < a.H) std::memcpy(band + (R - R0) * row + a.PW * a.C, a.data + (img * a.H + y) * data, size_t(data));
  }
}

void gemm_s8_conv(const PackedWeight& w, const ConvRows& a, Epilogue e) {
  if (!gemm_s8_conv_runs(w, a.KW, a.C) || w.K != a.KH * a.KW * a.C || a.WP < a.W + 2 * a.PW ||
      a.WP < (a.OW - 1) * a.SW + a.KW || a.H + 2 * a.PH < (a.OH - 1) * a.SH + a.KH)
    throw std::invalid_argument("gemm_s8_conv: weights and conv geometry do not fit the implicit int8 GEMM");
  const Dispatch d = active_dispatch();
  const IsaOps* ops = d.ops;
  const KernelInfo& s8 = s8_product_kernel(d, w);
  note_kernel(s8.name);
  const int64_t M = a.N * a.OH * a.OW;
  if (M == 0) return;
  const int32_t a_zp = a.zero_point;
  e.K = w.K;
  e.a_zp = &a_zp, e.a_zp_stride = 0;
  e.a_scale = &a.scale, e.a_scale_stride = 0;
  FoldedColumns folded;
  set_s8_columns(e, w, true, folded);
  const auto fn = s8.fn_as<GemmS8Fn>();
  const int8_t* wdata = w.data.as<int8_t>();
  const KernelInfo* fused = fused_u8_kernel(d, s8, w, M, a.KW * a.C / 4, e);
  if (fused) note_kernel(fused->name);
  const auto fn_u8 = fused ? fused->fn_as<GemmS8QFn>() : nullptr;
  // K steps per kernel row (its KW taps, contiguous in the padded input), rows' stride, image line.
  // kc slices are whole kernel rows, so each kernel call takes its slice's rows as runs of A.
  const int64_t seg = a.KW * a.C / 4, ks = w.k_steps(), panel = w.panel_bytes();
  const int64_t HP = a.H + 2 * a.PH, lda = a.SW * a.C, line = a.WP * a.C;
  // A padded input is built per task, the rows its pixels read, while the kernel is about to read
  // them (a whole padded copy before the GEMM was a pass of its own through L3: ~9 % of ResNet-20 at
  // batch 64). An unpadded input is read in place.
  const bool padded = a.PH > 0 || a.WP != a.W;
  std::atomic<int64_t> pad_ns{0};
  // A thread's band serves its later tasks of the same rows (other column chunks) in this call.
  static std::atomic<uint64_t> calls{0};
  const uint64_t call = calls.fetch_add(1, std::memory_order_relaxed) + 1;
  thread_local uint64_t band_call = 0;
  thread_local int64_t band_r0 = 0, band_r1 = 0;  // padded rows t_band holds
  const auto prepare_rows = [&](int64_t m0, int64_t mc) {
    if (!padded) return;
    const int64_t q1 = m0 + mc - 1, R0 = (m0 / (a.OW * a.OH)) * HP + (m0 / a.OW) % a.OH * a.SH;
    const int64_t R1 = (q1 / (a.OW * a.OH)) * HP + (q1 / a.OW) % a.OH * a.SH + a.KH;
    if (band_call == call && band_r0 == R0 && band_r1 == R1) return;
    band_call = 0;  // a failed resize leaves no band that looks valid
    const auto t0 = a.pad_seconds ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    t_band.resize(size_t((R1 - R0) * line));
    pad_rows(a, R0, R1, t_band.as<uint8_t>());
    band_call = call, band_r0 = R0, band_r1 = R1;
    if (a.pad_seconds)
      pad_ns.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  };
  run_blocked<int32_t>(
      w, M, with_tile_rows(s8, fused, w.N), kPanelN * 4, seg,
      [&](int mr, int np, int64_t p0, int64_t steps, int64_t m, int64_t n, int32_t* tile, int64_t ldt,
          bool accumulate) {
        const int cols = int(std::min<int64_t>(np * kPanelN, w.N - n));
        if (p0 + steps >= ks && !fn_u8) prefetch_residual(e, m, mr, n, cols);
        const int8_t* b = wdata + (n / kPanelN) * panel + p0 * kPanelN * 4;
        const uint8_t* rows = padded ? t_band.as<uint8_t>() : a.data;
        const int64_t row0 = padded ? band_r0 : 0;
        // The tile's pixels in runs along one output row (equally spaced in the input).
        for (int64_t r = 0; r < mr;) {
          const int64_t q = m + r, row = q / a.OW, ox = q - row * a.OW, img = row / a.OH, oy = row - img * a.OH;
          const int run = int(std::min<int64_t>(mr - r, a.OW - ox));
          const uint8_t* px = rows + ((img * HP + oy * a.SH + p0 / seg - row0) * a.WP + ox * a.SW) * a.C;
          if (fn_u8) fn_u8(run, np, steps, px, lda, b, panel, seg, line, cols, e, q, n);
          else fn(run, np, steps, px, lda, b, panel, tile + r * ldt, ldt, accumulate, seg, line, cols);
          r += run;
        }
      },
      [&](const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
        if (!fn_u8) ops->epilogue_s32(e, acc, ldacc, m0, mc, n0, nc);
      },
      NoPrepare{}, prepare_rows);
  if (a.pad_seconds) *a.pad_seconds += 1e-9 * double(pad_ns.load()) / double(std::max(1, get_num_threads()));
}

void DynamicRows::resize(const PackedWeight& w, int64_t M) {
  ldq = conflict_free_stride(w.padded_k(), 1);
  codes.resize(size_t(M * ldq));
  scale.resize(size_t(M)), zero_point.resize(size_t(M));
}

void DynamicRows::quantize(const float* x, int64_t r0, int64_t n, int64_t ldx, int64_t K, const float* col_mult) {
  const IsaOps* ops = active_dispatch().ops;
  std::atomic<bool> finite{true};
  parallel_rows(n, 4 * K, [&](int64_t i0, int64_t rows) {
    const int64_t r = r0 + i0;
    if (!ops->quantize_rows_u8(rows, K, x + i0 * ldx, ldx, codes.as<uint8_t>() + r * ldq, ldq, scale.data() + r,
                               zero_point.data() + r, col_mult))
      finite = false;
  });
  if (!finite) throw std::invalid_argument("input contains NaN or Inf");
}

QuantizedRows DynamicRows::rows(int64_t M) const {
  QuantizedRows a;
  a.data = codes.as<uint8_t>(), a.M = M, a.lda = ldq;
  a.scale = scale.data(), a.scale_stride = 1;
  a.zero_point = zero_point.data(), a.zp_stride = 1;
  return a;
}

void gemm_dynamic_s8(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e, const float* col_mult) {
  if (w.format != WeightFormat::s8_x32c4 && !w.low_bit())
    throw std::invalid_argument("gemm_dynamic_s8: weights are not int8 or low-bit");
  t_quantized.resize(w, M);
  t_quantized.quantize(x, 0, M, ldx, w.K, col_mult);
  gemm_s8(w, t_quantized.rows(M), e);
}

void gemm_float(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e) {
  const Dispatch d = active_dispatch();
  const IsaOps* ops = d.ops;
  const int64_t K = w.K;
  auto epi = [&](const float* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
    ops->epilogue_f32(e, acc, ldacc, m0, mc, n0, nc);
  };
  if (w.format == WeightFormat::f32_x32) {
    const KernelInfo& f32 = d.gemm(KernelKind::f32);
    note_kernel(f32.name);
    if (M == 0) return;
    const int64_t ld = conflict_free_stride(ldx, 4);
    if (ld != ldx && M > 1) {  // fp32 rows are read in place unless their stride aliases in L1
      t_prepared.resize(size_t(M * ld) * sizeof(float));
      float* dst = t_prepared.as<float>();
      parallel_rows(M, 4 * K, [&](int64_t r0, int64_t n) {
        for (int64_t r = r0; r < r0 + n; ++r) std::memcpy(dst + r * ld, x + r * ldx, size_t(K) * sizeof(float));
      });
      x = dst, ldx = ld;
    }
    run_blocked<float>(w, M, f32, kPanelN * 4, 1, plain_kernel<float, float, float>(f32.fn_as<GemmF32Fn>(), x, ldx, w), epi);
  } else if (w.format == WeightFormat::bf16_x32c2) {
    const KernelInfo& bf16 = d.gemm(KernelKind::bf16);
    note_kernel(bf16.name);
    if (M == 0) return;
    const int64_t K2 = conflict_free_stride(w.padded_k(), 2);
    t_prepared.resize(size_t(M * K2) * sizeof(uint16_t));
    uint16_t* xb = t_prepared.as<uint16_t>();
    parallel_rows(M, 4 * K, [&](int64_t r0, int64_t n) { ops->prepare_a_bf16(n, K, x + r0 * ldx, ldx, xb + r0 * K2, K2); });
    run_blocked<float>(w, M, bf16, kPanelN * 4, 1, plain_kernel<uint16_t, uint16_t, float>(bf16.fn_as<GemmBf16Fn>(), xb, K2, w), epi);
  } else {
    throw std::invalid_argument("gemm_float: weights are not fp32 or bf16");
  }
}

void gemm_weight_only(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e, bool padded) {
  if (!w.low_bit()) throw std::invalid_argument("weight-only matmul needs int4 or int2 weights");
  const Dispatch d = active_dispatch();
  const KernelInfo& kinfo = d.gemm(w.format == WeightFormat::u4_x32c4 ? KernelKind::f32u4 : KernelKind::f32u2);
  note_kernel(kinfo.name);
  if (M == 0) return;
  const IsaOps* ops = d.ops;
  const int64_t K = w.K, K_read = w.padded_k();
  int64_t ld = conflict_free_stride(ldx, 4);
  if ((K_read != K && !padded) || (ld != ldx && M > 1)) {  // zero padding to whole groups, or an aliasing stride
    ld = conflict_free_stride(K_read, 4);
    t_prepared.resize(size_t(M * ld) * sizeof(float));
    float* dst = t_prepared.as<float>();
    parallel_rows(M, 4 * K, [&](int64_t r0, int64_t n) {
      for (int64_t r = r0; r < r0 + n; ++r) {
        std::memcpy(dst + r * ld, x + r * ldx, size_t(K) * sizeof(float));
        std::memset(dst + r * ld + K, 0, size_t(K_read - K) * sizeof(float));
      }
    });
    x = dst, ldx = ld;
  }
  run_weight_only(w, M, kinfo, kinfo.fn_as<GemmWeightOnlyFn>(), x, ldx, *ops, e);
}

void gemm_weight_only_bf16(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e) {
  if (!w.low_bit()) throw std::invalid_argument("weight-only matmul needs int4 or int2 weights");
  const Dispatch d = active_dispatch();
  const KernelInfo& kinfo = d.gemm(w.format == WeightFormat::u4_x32c4 ? KernelKind::bf16u4 : KernelKind::bf16u2);
  note_kernel(kinfo.name);
  if (M == 0) return;
  const IsaOps* ops = d.ops;
  const int64_t K = w.K, ld = conflict_free_stride(w.padded_k(), 2);  // bf16 rows, zeros to whole groups
  t_prepared.resize(size_t(M * ld) * sizeof(uint16_t));
  uint16_t* xb = t_prepared.as<uint16_t>();
  parallel_rows(M, 4 * K, [&](int64_t r0, int64_t n) { ops->prepare_a_bf16(n, K, x + r0 * ldx, ldx, xb + r0 * ld, ld); });
  run_weight_only(w, M, kinfo, kinfo.fn_as<GemmWeightOnlyBf16Fn>(), xb, ld, *ops, e);
}

}  // namespace mixq
