// Calls one kernel of the list directly (not through the dispatcher, so coverage does not depend
// on which paths the thresholds pick) on edge shapes, against its kind's reference:
//  - GEMM kinds: every row count 1..mr, 1..max(4, nr/32) panels, k steps from 1 with odd counts,
//    overwrite and accumulate, strides wider than the tile; low-bit kinds with group sizes 32, 64,
//    128 and partial last groups; random and extreme operands (u8 0/255 x s8 -128/127, codes at
//    their limits). Compared with a scalar reference computed from the unpacked operands and with
//    the ref kernel of the kind: integer outputs bit-exact, float outputs within a tolerance
//    relative to the sum of the terms' magnitudes. Writes outside the tile are mismatches.
//  - depthwise: geometries with stride, padding, dilation and odd channel counts against the ref
//    kernel (int8: the int32 accumulator bit-exact through mult 1, then requantized codes +-1).
//  - ops sets (IsaOps, EncoderOps): each op against the ref set's.
//  - peak loops: run, and report a finite positive throughput.
// A kernel this CPU cannot run is reported as not runnable and not called.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/kernels.h"

namespace mixq {

struct KernelTestReport {
  bool runnable = false;
  std::string reference;       // what it was compared with
  int64_t cases = 0;           // kernel calls checked
  int64_t mismatches = 0;      // output values outside the tolerance (or written outside the tile)
  double max_error = 0;        // largest error seen, in the unit of the tolerance
  double tolerance = 0;        // 0: bit-exact
  std::string first_mismatch;  // where, for the first one
  double gops = 0;             // peak loops: measured throughput of one thread
  int64_t checksum = 0;        // peak loops
};

KernelTestReport test_kernel(const KernelInfo& k, uint64_t seed);

}  // namespace mixq
