// Instruction-set levels mixq can dispatch to, ordered: a higher level implies the lower ones.
#pragma once
#include <string>

namespace mixq {

enum class Isa : int { ref = 0, avx2 = 1, avx512 = 2, avx512vnni = 3 };

const char* isa_name(Isa isa);
// Throws std::invalid_argument for an unknown name.
Isa isa_from_name(const std::string& name);

}  // namespace mixq
