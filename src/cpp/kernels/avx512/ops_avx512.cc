// The shared helpers (ops_impl.h) compiled for the avx512 level.
#include "kernels/ops_impl.h"

MIXQ_DEFINE_ISA_OPS(ops__avx512, Isa::avx512)
