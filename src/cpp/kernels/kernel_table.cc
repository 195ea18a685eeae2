// The dispatch table, generated from kernels.inc: only what this build compiled is listed.
#include "kernels/kernels.h"

namespace mixq {

const std::vector<GemmKernelInfo>& gemm_kernels() {
  static const std::vector<GemmKernelInfo> table = {
#define MIXQ_GEMM_KERNEL(name, isa, kind, mr, nr, kr, guard)                                      \
  MIXQ_WHEN(guard, GemmKernelInfo{#name, Isa::isa, KernelKind::kind, mr, nr, kr,                  \
                                  reinterpret_cast<const void*>(&name),                            \
                                  KernelKind::kind == KernelKind::bf16 && int(Isa::isa) >= int(Isa::avx512)}, )
#define MIXQ_LOWBIT_KERNEL(name, isa, bits, mr, nr, guard)                                    \
  MIXQ_WHEN(guard, GemmKernelInfo{#name, Isa::isa, bits == 4 ? KernelKind::u4 : KernelKind::u2, mr, nr, 4, \
                                  reinterpret_cast<const void*>(&name), false}, )
#define MIXQ_WEIGHT_ONLY_KERNEL(name, isa, bits, mr, nr, guard)                                  \
  MIXQ_WHEN(guard, GemmKernelInfo{#name, Isa::isa, bits == 4 ? KernelKind::f32u4 : KernelKind::f32u2, mr, nr, \
                                  4, reinterpret_cast<const void*>(&name), false}, )
#define MIXQ_GROUPWISE_KERNEL(name, isa, mr, nr, guard)                                            \
  MIXQ_WHEN(guard, GemmKernelInfo{#name, Isa::isa, KernelKind::s8g, mr, nr, 4, reinterpret_cast<const void*>(&name), \
                                  false}, )
#define MIXQ_WEIGHT_ONLY_BF16_KERNEL(name, isa, bits, mr, nr, guard)                             \
  MIXQ_WHEN(guard, GemmKernelInfo{#name, Isa::isa, bits == 4 ? KernelKind::bf16u4 : KernelKind::bf16u2, mr, nr, \
                                  4, reinterpret_cast<const void*>(&name), int(Isa::isa) >= int(Isa::avx512)}, )
#define MIXQ_ISA_OPS(name, isa, guard)
#include "kernels/kernels.inc"
#undef MIXQ_GEMM_KERNEL
#undef MIXQ_LOWBIT_KERNEL
#undef MIXQ_WEIGHT_ONLY_KERNEL
#undef MIXQ_GROUPWISE_KERNEL
#undef MIXQ_WEIGHT_ONLY_BF16_KERNEL
#undef MIXQ_ISA_OPS
  };
  return table;
}

std::vector<const IsaOps*> isa_ops_list() {
  return {
#define MIXQ_GEMM_KERNEL(name, isa, kind, mr, nr, kr, guard)
#define MIXQ_LOWBIT_KERNEL(name, isa, bits, mr, nr, guard)
#define MIXQ_WEIGHT_ONLY_KERNEL(name, isa, bits, mr, nr, guard)
#define MIXQ_GROUPWISE_KERNEL(name, isa, mr, nr, guard)
#define MIXQ_WEIGHT_ONLY_BF16_KERNEL(name, isa, bits, mr, nr, guard)
#define MIXQ_ISA_OPS(name, isa, guard) MIXQ_WHEN(guard, &name, )
#include "kernels/kernels.inc"
#undef MIXQ_GEMM_KERNEL
#undef MIXQ_LOWBIT_KERNEL
#undef MIXQ_WEIGHT_ONLY_KERNEL
#undef MIXQ_GROUPWISE_KERNEL
#undef MIXQ_WEIGHT_ONLY_BF16_KERNEL
#undef MIXQ_ISA_OPS
  };
}

}  // namespace mixq
