// Instruction-set levels mixq can dispatch to. Each architecture has its own ladder above ref, on
// which a higher level implies the lower ones: x86-64 avx2 < avx512 < avx512vnni, aarch64
// neon < dotprod (Armv8.2 sdot/udot) < i8mm (usdot/usmmla) < sve (SVE with I8MM), riscv64 rvv (vector 1.0). A build
// compiles one architecture's kernels, so levels of different ladders never meet.
#pragma once
#include <string>

namespace mixq {

enum class Isa : int { ref = 0, avx2 = 1, avx512 = 2, avx512vnni = 3, neon = 4, dotprod = 5, i8mm = 6, sve = 7, rvv = 8 };

// Every level, in enum order.
constexpr Isa kAllIsas[] = {Isa::ref,  Isa::avx2,    Isa::avx512, Isa::avx512vnni, Isa::neon,
                            Isa::dotprod, Isa::i8mm, Isa::sve, Isa::rvv};

const char* isa_name(Isa isa);
// Throws std::invalid_argument for an unknown name.
Isa isa_from_name(const std::string& name);

}  // namespace mixq
