// The lane mask of the last, partial step of a 16-lane loop: `left` values remain (all 16 when
// left >= 16, none when left <= 0). Shared by the AVX-512 epilogues, quantizers and encoder ops.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace mixq {
namespace {

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}

}  // namespace
}  // namespace mixq
