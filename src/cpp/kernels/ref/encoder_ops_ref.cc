// The encoder's element-wise ops (encoder_ops_impl.h) for the portable baseline.
#include "kernels/encoder_ops_impl.h"

MIXQ_DEFINE_ENCODER_OPS(encoder_ops__ref, "ref")
