// Which kernels run: the best the CPU supports, or what MIXQ_ISA / set_isa() forces.
#pragma once
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace mixq {

struct Dispatch {
  Isa isa;
  const GemmKernelInfo* s8;
  const GemmKernelInfo* f32;
  const GemmKernelInfo* bf16;
  const GemmKernelInfo* u4;
  const GemmKernelInfo* u2;
  const GemmKernelInfo* f32u4;
  const GemmKernelInfo* f32u2;
  const GemmKernelInfo* s8g;  // nullptr where the level has no groupwise kernel
  const GemmKernelInfo* bf16u4;
  const GemmKernelInfo* bf16u2;
  const IsaOps* ops;
  const GemmKernelInfo* s8w;  // nullptr unless the level's s8 kernel is of the same ISA
};

// The kernels in use. Initialized on first use from MIXQ_ISA (error if the CPU lacks it).
const Dispatch& active_dispatch();
// Forces a level; throws std::invalid_argument if this CPU or build cannot run it.
void set_isa(Isa isa);
// Levels this CPU and build can run, lowest first.
std::vector<Isa> available_isas();

// Name of the micro-kernel used by the most recent GEMM call (any thread).
const char* last_kernel();
void note_kernel(const char* name);

}  // namespace mixq
