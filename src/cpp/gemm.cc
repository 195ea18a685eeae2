#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "aligned_buffer.h"
#include "cpu_features.h"
#include "dispatch.h"
#include "parallel.h"
#include "peak.h"

namespace mixq {
namespace {

// Per-thread working memory, reused across calls.
struct Scratch {
  AlignedBuffer apack;               // packed A rows of the current block, full K
  AlignedBuffer acc;                 // accumulator tile [MC][NC]
  std::vector<int32_t> rowsum;
  const void* packed_src = nullptr;  // which A block apack holds
  int64_t packed_row = -1;
  uint64_t packed_call = 0;
};
thread_local Scratch t_scratch;
std::atomic<uint64_t> g_call_id{1};

// Cache-derived block sizes (in k steps of the kernel and in rows/columns).
struct Blocking {
  int64_t mc, nc, kc_steps;
};

Blocking choose_blocking(int mr, int64_t M, int64_t N, int64_t k_step_bytes_b) {
  const CpuFeatures& f = cpu_features();
  // B micro-panel (kc x 32) in half of L1: reused by every A micro-panel of the block.
  int64_t kc = std::max<int64_t>(16, (f.l1d_bytes / 2) / k_step_bytes_b);
  // A block mc x full-K lives in L2 next to the accumulator tile; mc a multiple of mr.
  int64_t mc = std::max<int64_t>(mr, (144 / mr) * mr);
  int64_t nc = 256;
  const int threads = get_num_threads();
  // Small problems: split N finer so every thread gets work.
  int64_t m_blocks = (M + mc - 1) / mc;
  while (nc > kPanelN && m_blocks * ((N + nc - 1) / nc) < 2 * threads) nc /= 2;
  return {mc, nc, kc};
}

// The blocked loop nest shared by every kernel kind. Tasks are (row block, column chunk), row
// block major; each thread packs a row block of A once and reuses it for its column chunks.
//   pack(rows, r0, mr_rows, dst, rowsum): pack mr_rows rows starting at r0 into dst.
//   kernel(mr, steps, a, b, acc, ldacc, accumulate); epilogue(acc, ldacc, m0, mr, n0, nc, rowsum).
template <typename AElem, typename BElem, typename Acc, typename Pack, typename Kernel, typename Epi>
void run_blocked(const PackedWeight& w, int64_t M, int mr_max, const void* a_key, Pack pack, Kernel kernel,
                 Epi epilogue) {
  const int64_t N = w.N, ks = w.k_steps(), kr = w.kr();
  const int64_t b_step = kPanelN * kr;  // B elements per k step
  const Blocking blk = choose_blocking(mr_max, M, N, b_step * int64_t(sizeof(BElem)));
  const int64_t m_blocks = (M + blk.mc - 1) / blk.mc, n_chunks = (N + blk.nc - 1) / blk.nc;
  const int64_t a_panel_elems = ks * mr_max * kr;  // one MR-row panel over all of K
  const uint64_t call = g_call_id.fetch_add(1);
  const BElem* wdata = w.data.as<BElem>();
  const int64_t panel_elems = ks * b_step;

  parallel_for(m_blocks * n_chunks, [&](int64_t task, int) {
    Scratch& s = t_scratch;
    const int64_t ib = task / n_chunks, jb = task % n_chunks;
    const int64_t m0 = ib * blk.mc, mc = std::min(blk.mc, M - m0);
    const int64_t n0 = jb * blk.nc, nc = std::min(blk.nc, N - n0);
    const int64_t n_panels = (nc + kPanelN - 1) / kPanelN;
    if (s.packed_call != call || s.packed_row != m0 || s.packed_src != a_key) {
      const int64_t n_apanels = (mc + mr_max - 1) / mr_max;
      s.apack.resize(size_t(n_apanels * a_panel_elems) * sizeof(AElem));
      s.rowsum.resize(size_t(blk.mc));
      for (int64_t r = 0; r < mc; r += mr_max)
        pack(m0 + r, int(std::min<int64_t>(mr_max, mc - r)), s.apack.as<AElem>() + (r / mr_max) * a_panel_elems,
             s.rowsum.data() + r);
      s.packed_call = call, s.packed_row = m0, s.packed_src = a_key;
    }
    const int64_t ldacc = n_panels * kPanelN;
    s.acc.resize(size_t(mc * ldacc) * sizeof(Acc));
    Acc* acc = s.acc.as<Acc>();
    const AElem* apack = s.apack.as<AElem>();
    for (int64_t p0 = 0; p0 < ks; p0 += blk.kc_steps) {
      const int64_t steps = std::min(blk.kc_steps, ks - p0);
      for (int64_t j = 0; j < n_panels; ++j) {
        const BElem* bp = wdata + (n0 / kPanelN + j) * panel_elems + p0 * b_step;
        for (int64_t r = 0; r < mc; r += mr_max) {
          const int mr = int(std::min<int64_t>(mr_max, mc - r));
          kernel(mr, steps, apack + (r / mr_max) * a_panel_elems + p0 * mr * kr, bp, acc + r * ldacc + j * kPanelN,
                 ldacc, p0 > 0);
        }
      }
    }
    epilogue(acc, ldacc, m0, mc, n0, nc, s.rowsum.data());
  });
}

void check_format(const PackedWeight& w, WeightFormat f, const char* what) {
  if (w.format != f) throw std::invalid_argument(std::string(what) + ": packed weight has the wrong format");
}

}  // namespace

void gemm_s8(const PackedWeight& w, const QuantizedRows& a, Epilogue e) {
  check_format(w, WeightFormat::s8_x32c4, "gemm_s8");
  const Dispatch d = active_dispatch();
  const auto kernel = reinterpret_cast<GemmS8Fn>(d.s8->fn);
  note_kernel(d.s8->name);
  if (a.M == 0) return;
  // Zero points move to the u8 domain when s8 activations are shifted by +128.
  std::vector<int32_t> a_zp(static_cast<size_t>(a.zp_stride ? a.M : 1));
  for (size_t i = 0; i < a_zp.size(); ++i)
    a_zp[i] = (a.zero_point ? a.zero_point[i * a.zp_stride] : 0) + (a.is_signed ? 128 : 0);
  e.K = w.K;
  e.a_zp = a_zp.data();
  e.a_zp_stride = a.zp_stride ? 1 : 0;
  e.a_scale = a.scale;
  e.a_scale_stride = a.scale_stride;
  e.colsum = w.colsum.data();
  e.b_zp = w.zero_point.empty() ? nullptr : w.zero_point.data();
  e.b_scale = w.scale.data();
  const IsaOps* ops = d.ops;
  run_blocked<uint8_t, int8_t, int32_t>(
      w, a.M, d.s8->mr, a.data,
      [&](int64_t r0, int rows, uint8_t* dst, int32_t* rowsum) {
        ops->pack_a_u8c4(rows, w.K, a.data + r0 * a.lda, a.lda, a.is_signed, dst, rowsum);
      },
      kernel,
      [&](const int32_t* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc, const int32_t* rowsum) {
        Epilogue tile = e;
        tile.rowsum = rowsum;
        ops->epilogue_s32(tile, acc, ldacc, m0, mc, n0, nc);
      });
}

void gemm_dynamic_s8(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e) {
  check_format(w, WeightFormat::s8_x32c4, "gemm_dynamic_s8");
  const IsaOps* ops = active_dispatch().ops;
  const int64_t K = w.K;
  AlignedBuffer q(static_cast<size_t>(M * K));
  std::vector<float> scale(static_cast<size_t>(M));
  std::vector<int32_t> zp(static_cast<size_t>(M));
  std::atomic<bool> finite{true};
  const int64_t rows_per_task = std::max<int64_t>(1, (1 << 16) / K);
  parallel_for((M + rows_per_task - 1) / rows_per_task, [&](int64_t t, int) {
    const int64_t m0 = t * rows_per_task, rows = std::min(rows_per_task, M - m0);
    if (!ops->quantize_rows_u8(rows, K, x + m0 * ldx, ldx, q.as<uint8_t>() + m0 * K, K, scale.data() + m0, zp.data() + m0))
      finite = false;
  });
  if (!finite) throw std::invalid_argument("input contains NaN or Inf");
  QuantizedRows a;
  a.data = q.as<uint8_t>(), a.M = M, a.lda = K;
  a.scale = scale.data(), a.scale_stride = 1;
  a.zero_point = zp.data(), a.zp_stride = 1;
  gemm_s8(w, a, e);
}

void gemm_float(const PackedWeight& w, const float* x, int64_t M, int64_t ldx, Epilogue e) {
  const Dispatch d = active_dispatch();
  const IsaOps* ops = d.ops;
  const int64_t K = w.K;
  auto epi = [&](const float* acc, int64_t ldacc, int64_t m0, int64_t mc, int64_t n0, int64_t nc, const int32_t*) {
    ops->epilogue_f32(e, acc, ldacc, m0, mc, n0, nc);
  };
  if (M == 0) return;
  if (w.format == WeightFormat::f32_x32) {
    note_kernel(d.f32->name);
    run_blocked<float, float, float>(
        w, M, d.f32->mr, x,
        [&](int64_t r0, int rows, float* dst, int32_t*) { ops->pack_a_f32(rows, K, x + r0 * ldx, ldx, dst); },
        reinterpret_cast<GemmF32Fn>(d.f32->fn), epi);
  } else if (w.format == WeightFormat::bf16_x32c2) {
    note_kernel(d.bf16->name);
    run_blocked<uint16_t, uint16_t, float>(
        w, M, d.bf16->mr, x,
        [&](int64_t r0, int rows, uint16_t* dst, int32_t*) { ops->pack_a_bf16c2(rows, K, x + r0 * ldx, ldx, dst); },
        reinterpret_cast<GemmBf16Fn>(d.bf16->fn), epi);
  } else {
    throw std::invalid_argument("gemm_float: weights are not fp32 or bf16");
  }
}

double measure_peak_gops(const char* kind_c, double seconds) {
  const std::string kind = kind_c;
  const Dispatch d = active_dispatch();
  const CpuFeatures& f = cpu_features();
  int64_t (*loop)(int64_t) = nullptr;
  double ops_per_iter = 0;
#if MIXQ_HAVE_AVX512VNNI
  if (kind == "int8" && d.isa >= Isa::avx512vnni) loop = peak_loop_int8_avx512vnni, ops_per_iter = 2048;
#endif
#if MIXQ_HAVE_AVX512
  if (kind == "fp32" && d.isa >= Isa::avx512) loop = peak_loop_fp32_avx512, ops_per_iter = 512;
#endif
#if MIXQ_HAVE_AVX2
  if (kind == "fp32" && !loop && d.isa >= Isa::avx2) loop = peak_loop_fp32_avx2, ops_per_iter = 192;
#endif
#if MIXQ_HAVE_AVX512BF16
  if (kind == "bf16" && d.isa >= Isa::avx512 && f.avx512bf16) loop = peak_loop_bf16_avx512bf16, ops_per_iter = 1024;
#endif
  (void)f;
  if (kind != "int8" && kind != "fp32" && kind != "bf16")
    throw std::invalid_argument("measure_peak: kind must be int8, fp32 or bf16");
  if (!loop) throw std::invalid_argument("measure_peak: no " + kind + " peak loop for ISA " + isa_name(d.isa));
  using clock = std::chrono::steady_clock;
  // Calibrate the iteration count on one thread, then time all threads running it together.
  int64_t iters = 1 << 16;
  for (;;) {
    auto t0 = clock::now();
    volatile int64_t sink = loop(iters);
    (void)sink;
    double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt > 0.02 || iters > (int64_t(1) << 40)) {
      iters = int64_t(double(iters) * std::max(seconds, 0.01) / std::max(dt, 1e-9));
      break;
    }
    iters *= 4;
  }
  const int threads = get_num_threads();
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = clock::now();
    parallel_for(threads, [&](int64_t, int) {
      volatile int64_t sink = loop(iters / 3 + 1);
      (void)sink;
    });
    double dt = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, double(iters / 3 + 1) * ops_per_iter * threads / dt / 1e9);
  }
  return best;
}

}  // namespace mixq
