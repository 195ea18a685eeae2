#include "core/probes.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "kernels/dispatch.h"

namespace mixq {

double measure_peak_gops(const char* kind_c, double seconds) {
  const std::string kind = kind_c;
  if (kind != "int8" && kind != "int8_narrow" && kind != "fp32" && kind != "bf16")
    throw std::invalid_argument("measure_peak: kind must be int8, int8_narrow, fp32 or bf16");
  const Dispatch d = active_dispatch();
  const KernelInfo* k = d[kind == "int8"          ? KernelKind::peak_int8
                          : kind == "int8_narrow" ? KernelKind::peak_int8_narrow
                          : kind == "fp32"        ? KernelKind::peak_fp32
                                                  : KernelKind::peak_bf16];
  if (!k) throw std::invalid_argument("measure_peak: no " + kind + " peak loop for ISA " + isa_name(d.isa));
  const PeakLoopFn loop = k->fn_as<PeakLoopFn>();
  const double ops_per_iter = k->ops_per_iter;
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


double measure_read_bandwidth(double seconds, size_t bytes) {
  using clock = std::chrono::steady_clock;
  const IsaOps* ops = active_dispatch().ops;
  // 8x the L3 (at least 256 MiB): the L3 is not strictly LRU, so a smaller buffer partly hits it.
  if (bytes == 0) bytes = std::max<size_t>(size_t(256) << 20, size_t(cpu_features().l3_bytes) * 8);
  AlignedBuffer buf(bytes);
  const int threads = get_num_threads();
  const size_t slice = bytes / size_t(threads) / 64 * 64;
  parallel_for(threads, [&](int64_t t, int) { std::memset(buf.as<uint8_t>() + size_t(t) * slice, 1, slice); });
  std::atomic<uint64_t> sink{0};
  double best = 0;
  const auto start = clock::now();
  // Cache-sized buffers are re-read many times per timing so each sample is long enough to time.
  const int inner = int(std::max<size_t>(1, (size_t(64) << 20) / bytes));
  for (int rep = 0; rep < 20; ++rep) {
    const auto t0 = clock::now();
    parallel_for(threads, [&](int64_t t, int) {
      for (int i = 0; i < inner; ++i) sink += ops->sum_bytes(buf.as<uint8_t>() + size_t(t) * slice, slice);
    });
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, double(slice) * threads * inner / dt / 1e9);
    if (rep >= 2 && std::chrono::duration<double>(clock::now() - start).count() > seconds) break;
  }
  if (sink.load() == 0) throw std::runtime_error("bandwidth probe read nothing");
  return best;
}

}  // namespace mixq
