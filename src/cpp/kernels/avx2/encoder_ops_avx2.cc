// The encoder's element-wise ops (encoder_ops_impl.h) compiled for AVX2 + FMA: CPUs without AVX-512
// get vectorized LayerNorm, softmax and attention packing instead of the baseline build's.
#include "kernels/encoder_ops_impl.h"

MIXQ_DEFINE_ENCODER_OPS(encoder_ops__avx2, "avx2")
