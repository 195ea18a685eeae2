// The kernel tester (testing/kernel_tester.h) over every kernel of this build's list, as a
// program needing no Python: how the Arm and RISC-V kernels are checked under qemu-user.
//   mixq_kernel_test [--require UNIT[,UNIT...]] [--levels "LEVEL LEVEL..."] [--seed N]
// Prints the detected features and levels, then one line per kernel (ran or not runnable on this
// CPU, cases, mismatches, first mismatch), and exits 1 on any mismatch, on a kernel that ran no
// case, when a kernel of a --require'd unit could not run (so an emulated CPU model that lacks an
// extension cannot pass by skipping), or when the levels this CPU and build run are not exactly
// --levels (the feature detection is checked too).
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>

#include "core/cpu_features.h"
#include "kernels/dispatch.h"
#include "testing/kernel_tester.h"

namespace {

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--require UNIT[,UNIT...]] [--levels \"LEVEL LEVEL...\"] [--seed N]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mixq;
  std::set<std::string> required;
  uint64_t seed = 1;
  const char* expected_levels = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--require" && i + 1 < argc) {
      std::stringstream list(argv[++i]);
      for (std::string unit; std::getline(list, unit, ',');)
        if (!unit.empty()) required.insert(unit);
    } else if (arg == "--levels" && i + 1 < argc) {
      expected_levels = argv[++i];
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      return usage(argv[0]);
    }
  }
  const CpuFeatures& f = cpu_features();
  std::printf("features: neon=%d dotprod=%d i8mm=%d sve=%d (%d-bit) sve2=%d rvv=%d (VLEN %d) avx2=%d avx512vnni=%d\n",
              f.neon, f.dotprod, f.i8mm, f.sve, 8 * f.sve_bytes, f.sve2, f.rvv, f.rvv_vlen_bits, f.avx2, f.avx512vnni);
  std::string levels;
  for (Isa isa : available_isas()) levels += std::string(levels.empty() ? "" : " ") + isa_name(isa);
  std::printf("levels this CPU and build run: %s\n", levels.c_str());
  int failures = 0, ran = 0;
  if (expected_levels && levels != expected_levels) {
    std::printf("FAIL levels: expected \"%s\"\n", expected_levels);
    ++failures;
  }
  std::set<std::string> units_seen;
  for (const KernelInfo& k : kernel_table()) {
    units_seen.insert(k.unit);
    const KernelTestReport r = test_kernel(k, seed);
    const bool must_run = required.count(k.unit) > 0;
    bool bad = r.mismatches > 0 || (r.runnable && r.cases == 0) || (must_run && !r.runnable);
    std::printf("%-4s %-48s %-10s %s cases=%lld mismatches=%lld max_error=%g tolerance=%g%s%s\n", bad ? "FAIL" : "ok",
                k.name, k.unit, r.runnable ? "ran" : "not-runnable", (long long)r.cases, (long long)r.mismatches,
                r.max_error, r.tolerance, r.first_mismatch.empty() ? "" : " first: ", r.first_mismatch.c_str());
    failures += bad;
    ran += r.runnable;
  }
  for (const std::string& unit : required)
    if (!units_seen.count(unit)) {
      std::printf("FAIL required unit %s has no kernel in this build\n", unit.c_str());
      ++failures;
    }
  std::printf("%d kernels, %d ran, %d failed\n", int(kernel_table().size()), ran, failures);
  return failures ? 1 : 0;
}
