// Which kernels run: the best the CPU supports, or what MIXQ_ISA / set_isa() forces.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace mixq {

struct Dispatch {
  Isa isa;
  // Per kind, the list's entry of the highest level at or below isa that this CPU runs; nullptr
  // where none is (s8g below avx512vnni, dw_s8_3x3, peak loops at ref). s8w only where the s8
  // kernel is of the same level (the AVX-512 int8 kernels need no widening) and the selected
  // widen_s8 helper is of its unit.
  std::array<const KernelInfo*, kKernelKinds> kernels;
  const IsaOps* ops;  // kernels[isa_ops]'s set
  // One-row GEMMs on u2 weights run the u2lut kernel instead of the u2 one (the level rule in
  // dispatch.cc: only where it measured faster). gemm.h's set_u2_lut can force either way.
  bool u2lut_gemv = false;

  const KernelInfo* operator[](KernelKind kind) const { return kernels[size_t(kind)]; }
  // The selected kernel of a GEMM kind (one exists for every kind but s8g and s8w).
  const KernelInfo& gemm(KernelKind kind) const { return *kernels[size_t(kind)]; }
};

// The kernels in use. Initialized on first use from MIXQ_ISA (error if the CPU lacks it).
const Dispatch& active_dispatch();
// Forces a level; throws std::invalid_argument if this CPU or build cannot run it.
void set_isa(Isa isa);
// Levels this CPU and build can run, lowest first.
std::vector<Isa> available_isas();
// The reference (ref level) entry of a kind, or nullptr.
const KernelInfo* reference_kernel(KernelKind kind);

// Name of the micro-kernel used by the most recent GEMM call (any thread).
const char* last_kernel();
void note_kernel(const char* name);

}  // namespace mixq
