// The shared helpers (ops_impl.h) compiled for the ref level.
#include "kernels/ops_impl.h"

MIXQ_DEFINE_ISA_OPS(ops__ref, Isa::ref)
