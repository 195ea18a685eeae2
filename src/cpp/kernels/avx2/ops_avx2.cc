// The shared helpers (ops_impl.h) compiled for the avx2 level.
#include "kernels/ops_impl.h"

MIXQ_DEFINE_ISA_OPS(ops__avx2, Isa::avx2)
