// Measured machine roofs, with mixq's own code at the current thread count.
#pragma once
#include <cstddef>

namespace mixq {

// Compute roof in GOPS (kind: "int8", "fp32", "bf16"): tight loops of independent chains.
double measure_peak_gops(const char* kind, double seconds);
// Read bandwidth in GB/s: every thread streams its slice of a buffer of `bytes` (0: far larger
// than the L3, i.e. DRAM; a buffer that fits a cache level measures that level).
double measure_read_bandwidth(double seconds, size_t bytes = 0);

}  // namespace mixq
