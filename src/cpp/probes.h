// Measured machine roofs, with mixq's own code at the current thread count.
#pragma once

namespace mixq {

// Compute roof in GOPS (kind: "int8", "fp32", "bf16"): tight loops of independent chains.
double measure_peak_gops(const char* kind, double seconds);
// DRAM read bandwidth in GB/s: every thread streams its slice of a buffer far larger than the L3.
double measure_read_bandwidth(double seconds);

}  // namespace mixq
