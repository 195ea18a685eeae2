#include "core/cpu_features.h"

#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MIXQ_X86 1
#endif
#if defined(__aarch64__) || defined(__riscv)
#include <sys/auxv.h>
#endif
#if defined(__aarch64__)
#include <sys/prctl.h>
#endif

namespace mixq {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::ref: return "ref";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512vnni: return "avx512vnni";
    case Isa::neon: return "neon";
    case Isa::dotprod: return "dotprod";
    case Isa::i8mm: return "i8mm";
    case Isa::sve: return "sve";
    case Isa::rvv: return "rvv";
  }
  return "?";
}

Isa isa_from_name(const std::string& name) {
  std::string names;
  for (Isa isa : kAllIsas) {
    if (name == isa_name(isa)) return isa;
    names += std::string(names.empty() ? "" : ", ") + isa_name(isa);
  }
  throw std::invalid_argument("unknown ISA '" + name + "'; expected one of " + names);
}

namespace {

#ifdef MIXQ_X86
uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}
#endif

int64_t sysfs_cache_size(int level, const char* type) {
  // /sys/devices/system/cpu/cpu0/cache/indexN/{level,type,size}
  for (int i = 0; i < 8; ++i) {
    std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream lf(dir + "level"), tf(dir + "type"), sf(dir + "size");
    int lv = 0;
    std::string ty, sz;
    if (!(lf >> lv) || !(tf >> ty) || !(sf >> sz)) continue;
    if (lv != level || (ty != type && ty != "Unified")) continue;
    int64_t v = std::stoll(sz);
    char unit = sz.back();
    if (unit == 'K') v <<= 10;
    if (unit == 'M') v <<= 20;
    return v;
  }
  return 0;
}

int count_physical_cores() {
  std::set<std::pair<int, int>> cores;
  cpu_set_t mask;
  bool have_mask = sched_getaffinity(0, sizeof(mask), &mask) == 0;
  long n = sysconf(_SC_NPROCESSORS_CONF);
  for (long c = 0; c < n; ++c) {
    if (have_mask && !CPU_ISSET(c, &mask)) continue;
    std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    std::ifstream pf(dir + "physical_package_id"), cf(dir + "core_id");
    int pkg = 0, core = int(c);
    if (pf >> pkg && cf >> core) cores.insert({pkg, core});
    else cores.insert({0, int(c)});
  }
  int count = int(cores.size());
  if (have_mask) count = std::min(count, CPU_COUNT(&mask));
  return count > 0 ? count : 1;
}

CpuFeatures detect() {
  CpuFeatures f;
#ifdef MIXQ_X86
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    bool osxsave = c & (1u << 27);
    f.fma = c & (1u << 12);
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    bool os_avx = (xcr0 & 0x6) == 0x6;
    bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    bool os_amx = (xcr0 & 0x60000) == 0x60000;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      f.avx2 = os_avx && (b & (1u << 5)) && f.fma;
      f.avx512f = os_avx512 && (b & (1u << 16));
      f.avx512dq = f.avx512f && (b & (1u << 17));
      f.avx512bw = f.avx512f && (b & (1u << 30));
      f.avx512vl = f.avx512f && (b & (1u << 31));
      f.avx512vnni = f.avx512f && (c & (1u << 11));
      f.amx_bf16 = os_amx && (d & (1u << 22));
      f.amx_tile = os_amx && (d & (1u << 24));
      f.amx_int8 = os_amx && (d & (1u << 25));
      unsigned a1, b1, c1, d1;
      if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = f.avx512f && (a1 & (1u << 5));
    }
  }
#endif
#if defined(__aarch64__)
  // Linux's arm64 hwcap bits (asm/hwcap.h); Advanced SIMD is part of the aarch64 baseline.
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  f.neon = hw & (1ul << 1);           // HWCAP_ASIMD
  f.dotprod = hw & (1ul << 20);       // HWCAP_ASIMDDP
  f.sve = hw & (1ul << 22);           // HWCAP_SVE
  f.sve2 = hw2 & (1ul << 1);          // HWCAP2_SVE2
  f.i8mm = hw2 & (1ul << 13);         // HWCAP2_I8MM
  if (f.sve) f.sve_bytes = prctl(51 /* PR_SVE_GET_VL */, 0, 0, 0, 0) & 0xffff;
#endif
#if defined(__riscv)
  // The single-letter extensions are hwcap bits 'A'..'Z'; older kernels leave V out, so the isa
  // string of /proc/cpuinfo (rv64imafdcv...) is read too.
  f.rvv = getauxval(AT_HWCAP) & (1ul << ('V' - 'A'));
  if (!f.rvv) {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (!f.rvv && std::getline(cpuinfo, line)) {
      if (line.compare(0, 3, "isa") != 0) continue;
      const size_t colon = line.find("rv64");
      if (colon == std::string::npos) continue;
      // Single letters run up to the first '_' (multi-letter extensions follow it).
      const std::string letters = line.substr(colon + 4, line.find('_', colon) - colon - 4);
      f.rvv = letters.find('v') != std::string::npos;
    }
  }
  if (f.rvv) {  // the vlenb CSR (0xc22) by number: this file is built without V
    unsigned long vlenb;
    __asm__ volatile("csrr %0, 0xc22" : "=r"(vlenb));
    f.rvv_vlen_bits = int(8 * vlenb);
  }
#endif
  if (int64_t v = sysfs_cache_size(1, "Data")) f.l1d_bytes = v;
  if (int64_t v = sysfs_cache_size(2, "Unified")) f.l2_bytes = v;
  if (int64_t v = sysfs_cache_size(3, "Unified")) f.l3_bytes = v;
  f.physical_cores = count_physical_cores();
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  bool avx512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  switch (isa) {
    case Isa::ref: return true;
    case Isa::avx2: return f.avx2;
    case Isa::avx512: return f.avx2 && avx512;
    case Isa::avx512vnni: return f.avx2 && avx512 && f.avx512vnni;
    case Isa::neon: return f.neon;
    case Isa::dotprod: return f.neon && f.dotprod;
    case Isa::i8mm: return f.neon && f.dotprod && f.i8mm;
    case Isa::sve: return f.neon && f.dotprod && f.i8mm && f.sve;
    case Isa::rvv: return f.rvv;
  }
  return false;
}

}  // namespace mixq
