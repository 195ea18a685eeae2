// The encoder's element-wise ops (encoder_ops_impl.h) compiled for AVX-512.
#include "kernels/encoder_ops_impl.h"

MIXQ_DEFINE_ENCODER_OPS(encoder_ops__avx512, "avx512")
