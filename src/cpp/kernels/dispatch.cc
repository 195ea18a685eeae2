#include "kernels/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "core/cpu_features.h"

namespace mixq {
namespace {

bool compiled_in(Isa isa) {
  for (const auto* ops : isa_ops_list())
    if (ops->isa == isa) return true;
  for (const auto& k : gemm_kernels())
    if (k.isa == isa) return true;
  return false;
}

// Highest-level kernel of a kind at or below the level (ref is always there).
const GemmKernelInfo* pick(KernelKind kind, Isa isa) {
  const GemmKernelInfo* best = nullptr;
  for (const auto& k : gemm_kernels()) {
    if (k.kind != kind || int(k.isa) > int(isa)) continue;
    if (k.needs_bf16 && !cpu_features().avx512bf16) continue;
    if (!best || int(k.isa) > int(best->isa)) best = &k;
  }
  return best;
}

Dispatch make_dispatch(Isa isa) {
  Dispatch d{isa, pick(KernelKind::s8, isa), pick(KernelKind::f32, isa), pick(KernelKind::bf16, isa),
             pick(KernelKind::u4, isa), pick(KernelKind::u2, isa), pick(KernelKind::f32u4, isa),
             pick(KernelKind::f32u2, isa), pick(KernelKind::s8g, isa), pick(KernelKind::bf16u4, isa), pick(KernelKind::bf16u2, isa), nullptr};
  for (const auto* ops : isa_ops_list())
    if (int(ops->isa) <= int(isa) && (!d.ops || int(ops->isa) > int(d.ops->isa))) d.ops = ops;
  d.s8w = pick(KernelKind::s8w, isa);
  if (d.s8w && d.s8w->isa != d.s8->isa) d.s8w = nullptr;  // the AVX-512 int8 kernels need no widening
  return d;
}

Isa initial_isa() {
  const char* env = std::getenv("MIXQ_ISA");
  if (env && *env) {
    Isa isa = isa_from_name(env);
    if (!isa_supported(isa) || !compiled_in(isa))
      throw std::invalid_argument(std::string("MIXQ_ISA=") + env + " but this CPU or build cannot run it");
    return isa;
  }
  auto avail = available_isas();
  return avail.back();
}

std::mutex g_mu;
Dispatch g_dispatch;
std::atomic<bool> g_ready{false};
std::atomic<const char*> g_last_kernel{"none"};

}  // namespace

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::ref, Isa::avx2, Isa::avx512, Isa::avx512vnni})
    if (isa_supported(isa) && compiled_in(isa)) out.push_back(isa);
  return out;
}

const Dispatch& active_dispatch() {
  if (!g_ready.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lk(g_mu);
    if (!g_ready.load()) {
      g_dispatch = make_dispatch(initial_isa());
      g_ready.store(true, std::memory_order_release);
    }
  }
  return g_dispatch;
}

void set_isa(Isa isa) {
  if (!isa_supported(isa)) throw std::invalid_argument(std::string("this CPU cannot run ISA '") + isa_name(isa) + "'");
  if (!compiled_in(isa)) throw std::invalid_argument(std::string("this build has no kernels for ISA '") + isa_name(isa) + "'");
  std::lock_guard<std::mutex> lk(g_mu);
  g_dispatch = make_dispatch(isa);
  g_ready.store(true, std::memory_order_release);
}

const char* last_kernel() { return g_last_kernel.load(); }
void note_kernel(const char* name) { g_last_kernel.store(name, std::memory_order_relaxed); }

}  // namespace mixq
