#include "kernels/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "core/cpu_features.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

bool compiled_in(Isa isa) {
  for (const auto& k : kernel_table())
    if (k.isa == isa) return true;
  return false;
}

// Highest-level entry of a kind at or below the level that this CPU runs (ref is always there).
const KernelInfo* pick(KernelKind kind, Isa isa) {
  const KernelInfo* best = nullptr;
  for (const auto& k : kernel_table()) {
    if (k.kind != kind || int(k.isa) > int(isa)) continue;
    if (k.needs_bf16 && !cpu_features().avx512bf16) continue;
    if (!best || int(k.isa) > int(best->isa)) best = &k;
  }
  return best;
}

Dispatch make_dispatch(Isa isa) {
  Dispatch d{isa, {}, nullptr, false};
  for (int kind = 0; kind < kKernelKinds; ++kind) d.kernels[size_t(kind)] = pick(KernelKind(kind), isa);
  // s8w runs on panels widened by the widen_s8 helper of its own unit.
  const KernelInfo*& s8w = d.kernels[size_t(KernelKind::s8w)];
  const KernelInfo* widen = d[KernelKind::widen_s8];
  if (s8w && (s8w->isa != d[KernelKind::s8]->isa || !widen || std::string(widen->unit) != s8w->unit)) s8w = nullptr;
  // s7 (narrow weights on vpmaddubsw) replaces an s8 kernel of its own level only: a VNNI level's
  // vpdpbusd is faster and exact on any code.
  const KernelInfo*& s7 = d.kernels[size_t(KernelKind::s7)];
  const KernelInfo*& s7q = d.kernels[size_t(KernelKind::s7q)];
  if (s7 && s7->isa != d[KernelKind::s8]->isa) s7 = nullptr;
  if (!s7 || (s7q && s7q->isa != s7->isa)) s7q = nullptr;
  // u2lut needs the table builder of its layout (u2lut_tables).
  const KernelInfo*& lut = d.kernels[size_t(KernelKind::u2lut)];
  if (lut && !d[KernelKind::u2lut_tables]) lut = nullptr;
  // ... and would replace the u2 kernel for one-row GEMMs only on levels where it measured faster
  // than that level's u2 kernel: none. On Zen 4 it ran 1.2-2.8x slower at avx2, avx512 and
  // avx512vnni, weights in L2, L3 or DRAM, 1 and 2 threads (docs/design-notes.md, "Lookup-table").
  d.u2lut_gemv = false;
  d.ops = &d[KernelKind::isa_ops]->ops_as<IsaOps>();
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
  for (Isa isa : kAllIsas)
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

const KernelInfo* reference_kernel(KernelKind kind) {
  for (const auto& k : kernel_table())
    if (k.kind == kind && k.isa == Isa::ref) return &k;
  return nullptr;
}

const char* last_kernel() { return g_last_kernel.load(); }
void note_kernel(const char* name) { g_last_kernel.store(name, std::memory_order_relaxed); }

}  // namespace mixq
