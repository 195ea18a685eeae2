// The table of kernels.inc: only what this build compiled is listed.
#include <cstring>

#include "core/cpu_features.h"
#include "kernels/kernels.h"

namespace mixq {

const char* kind_name(KernelKind kind) {
  static const char* const names[] = {
#define MIXQ_KERNEL_KIND(kind, family, type) #kind,
#include "kernels/kernels.inc"
  };
  return names[int(kind)];
}

const char* kind_family(KernelKind kind) {
  static const char* const families[] = {
#define MIXQ_KERNEL_KIND(kind, family, type) #family,
#include "kernels/kernels.inc"
  };
  return families[int(kind)];
}

const std::vector<KernelInfo>& kernel_table() {
  static const std::vector<KernelInfo> table = {
#define MIXQ_ENTRY(name, kind, unit, mr, nr, kr, ops, mr_narrow)                                              \
  MIXQ_WHEN(MIXQ_BUILT_##unit, KernelInfo{#name, KernelKind::kind, #unit, kUnit_##unit.level, kUnit_##unit.needs_bf16, mr, \
                                          nr, kr, ops, reinterpret_cast<const void*>(&name), mr_narrow}, )
#define MIXQ_GEMM_KERNEL(name, kind, unit, mr, nr, kr) MIXQ_ENTRY(name, kind, unit, mr, nr, kr, 0, 0)
#define MIXQ_GEMM_KERNEL_NARROW(name, kind, unit, mr, nr, kr, mr_narrow) \
  MIXQ_ENTRY(name, kind, unit, mr, nr, kr, 0, mr_narrow)
#define MIXQ_KERNEL(name, kind, unit) MIXQ_ENTRY(name, kind, unit, 0, 0, 0, 0, 0)
#define MIXQ_OPS_SET(name, kind, unit) MIXQ_ENTRY(name, kind, unit, 0, 0, 0, 0, 0)
#define MIXQ_PEAK_LOOP(name, kind, unit, ops_per_iter) MIXQ_ENTRY(name, kind, unit, 0, 0, 0, ops_per_iter, 0)
#include "kernels/kernels.inc"
#undef MIXQ_ENTRY
  };
  return table;
}

const KernelInfo* find_kernel(const std::string& name) {
  for (const auto& k : kernel_table())
    if (name == k.name) return &k;
  return nullptr;
}

bool kernel_runnable(const KernelInfo& k) {
  return isa_supported(k.isa) && (!k.needs_bf16 || cpu_features().avx512bf16);
}

}  // namespace mixq
