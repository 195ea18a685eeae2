#include "testing/kernel_tester.h"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/bf16.h"
#include "core/packed_weight.h"
#include "kernels/dispatch.h"
#include "ops/depthwise.h"

namespace mixq {
namespace {

using Rng = std::mt19937_64;

int rand_int(Rng& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
float rand_float(Rng& rng, float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

// err > allowed (or NaN) is a mismatch; where() describes it, asked for the first one only.
void record(KernelTestReport& r, double err, double allowed, const std::function<std::string()>& where) {
  if (!(err <= allowed)) {
    if (r.mismatches++ == 0) r.first_mismatch = where();
  }
  if (std::isnan(err)) err = std::numeric_limits<double>::infinity();
  r.max_error = std::max(r.max_error, err);
  r.tolerance = std::max(r.tolerance, allowed);
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// Float outputs: |got - want| relative to the sum of the magnitudes of the terms (and of the
// accumulated start value), so the tolerance covers summation order and FMA contraction.
constexpr double kFloatTol = 1e-5;

bool is_lowbit_kind(KernelKind k) {
  return k == KernelKind::u4 || k == KernelKind::u2 || k == KernelKind::f32u4 || k == KernelKind::f32u2 ||
         k == KernelKind::bf16u4 || k == KernelKind::bf16u2 || k == KernelKind::s8g || k == KernelKind::u2lut;
}

// The u2 kernel a level runs (the highest at or below it this CPU runs): u2lut kernels must equal
// it bit for bit, since the dispatcher swaps one for the other.
const KernelInfo* u2_kernel_of_level(Isa isa) {
  const KernelInfo* best = nullptr;
  for (const auto& k : kernel_table())
    if (k.kind == KernelKind::u2 && int(k.isa) <= int(isa) && kernel_runnable(k) && (!best || int(k.isa) > int(best->isa)))
      best = &k;
  return best;
}

// ------------------------------------------------------------------------------------- GEMM
// The C tile: mr x (32 np) outputs at row stride ldc, inside a buffer with one more row and spare
// columns holding a sentinel, so writes outside the tile are seen.
template <typename C>
struct TileBuffer {
  int rows, ldc;
  std::vector<C> c;
  TileBuffer(int mr, int np) : rows(mr + 1), ldc(32 * np + 16), c(static_cast<size_t>((mr + 1) * (32 * np + 16))) {}
};

template <typename C>
C sentinel() {
  if constexpr (std::is_same_v<C, float>) return -1234.5f;
  else return int32_t(0x5A5A5A5A);
}

// Compares a kernel's tile with want (and mag: each output's magnitude for float tolerances).
template <typename C>
void compare_tile(KernelTestReport& r, const TileBuffer<C>& got, int mr, int ncols, const std::vector<double>& want,
                  const std::vector<double>& mag, const std::string& what, int cols = -1) {
  for (int i = 0; i < got.rows; ++i)
    for (int n = 0; n < got.ldc; ++n) {
      const C v = got.c[static_cast<size_t>(i * got.ldc + n)];
      if (i < mr && n >= cols && cols >= 0 && n < ncols) continue;  // columns the caller does not read
      if (i < mr && n < ncols) {
        const double w = want[static_cast<size_t>(i * ncols + n)];
        double err = std::fabs(double(v) - w);
        double allowed = 0;
        if constexpr (std::is_same_v<C, float>) err /= std::max(mag[static_cast<size_t>(i * ncols + n)], 1e-30), allowed = kFloatTol;
        record(r, err, allowed, [&] { return fmt("%s: row %d col %d got %.9g want %.9g", what.c_str(), i, n, double(v), w); });
      } else if (!(v == sentinel<C>())) {
        record(r, 1, 0, [&] { return fmt("%s: wrote outside the tile at row %d col %d", what.c_str(), i, n); });
      }
    }
}

// The tile against the same tile from the kind's reference kernel (exp), as compare_tile does.
template <typename C>
void compare_with_ref(KernelTestReport& r, const TileBuffer<C>& got, const TileBuffer<C>& exp, int mr, int ncols,
                      const std::vector<double>& mag, const std::string& what, int cols = -1) {
  std::vector<double> want(static_cast<size_t>(mr * ncols));
  for (int i = 0; i < mr; ++i)
    for (int n = 0; n < ncols; ++n) want[static_cast<size_t>(i * ncols + n)] = exp.c[static_cast<size_t>(i * exp.ldc + n)];
  compare_tile(r, got, mr, ncols, want, mag, what, cols);
}

template <typename C>
void fill_tile(TileBuffer<C>& t, int mr, int ncols, bool accumulate, const std::vector<double>& init) {
  std::fill(t.c.begin(), t.c.end(), sentinel<C>());
  if (accumulate)
    for (int i = 0; i < mr; ++i)
      for (int n = 0; n < ncols; ++n) t.c[static_cast<size_t>(i * t.ldc + n)] = C(init[static_cast<size_t>(i * ncols + n)]);
}

// One tile's shapes and operand pattern.
struct GemmCase {
  int mr, np;
  int64_t k_steps;  // plain kinds: k steps; low-bit kinds: unused (from K and the group)
  bool accumulate;
  int pattern;      // 0 random, 1.. extremes
  int64_t group = 0, K = 0;
  std::string str(const KernelInfo& k) const {
    return fmt("%s mr=%d np=%d k_steps=%lld K=%lld group=%lld accumulate=%d pattern=%d", k.name, mr, np,
               (long long)k_steps, (long long)K, (long long)group, int(accumulate), pattern);
  }
};

// Every case of a kernel: all row counts and panel counts on random operands, and the corners on
// each extreme pattern.
template <typename Fn>
void for_each_case(const KernelInfo& k, const std::vector<std::pair<int64_t, int64_t>>& depths, int patterns, Fn fn) {
  const int np_max = std::max(4, k.nr / 32);
  for (int pattern = 0; pattern < patterns; ++pattern)
    for (int mr = 1; mr <= k.mr; ++mr)
      for (int np = 1; np <= np_max; ++np) {
        if (pattern > 0 && !((mr == 1 || mr == k.mr) && (np == 1 || np == np_max))) continue;
        for (size_t d = 0; d < depths.size(); ++d) {
          if (pattern > 0 && d % 2 == 1) continue;
          for (bool acc : {false, true}) {
            GemmCase c{mr, np, depths[d].first, acc, pattern, depths[d].second, depths[d].first};
            fn(c);
          }
        }
      }
}

// Plain kinds (s8, s7, s8w, f32, bf16): random tiles against the scalar product of the unpacked
// operands, and against the ref kernel of the kind (s8 for s7 and s8w). s7 weights are codes in
// [-64, 64] (its contract), extremes against all-255 activations included.
void test_plain_gemm(const KernelInfo& k, Rng& rng, KernelTestReport& r) {
  const KernelKind kind = k.kind;
  const bool s8_rows = kind == KernelKind::s8 || kind == KernelKind::s7;  // GemmS8Fn: runs and cols
  const bool int8 = s8_rows || kind == KernelKind::s8w;
  const int kr = k.kr;
  const KernelInfo* ref = reference_kernel(kind == KernelKind::f32 || kind == KernelKind::bf16 ? kind : KernelKind::s8);
  const auto widen = reference_kernel(KernelKind::widen_s8)->fn_as<WidenS8Fn>();
  r.reference = "scalar product; " + std::string(ref->name);
  std::vector<std::pair<int64_t, int64_t>> depths = {{1, 0}, {2, 0}, {3, 0}, {7, 0}, {16, 0}, {33, 0}, {67, 0}};
  for_each_case(k, depths, int8 ? 4 : 2, [&](const GemmCase& c) {
    const int64_t ks = c.k_steps, K = ks * kr, ncols = 32 * c.np;
    // s8 rows in runs (GemmS8Fn's seg_steps): random cases split k into its smallest prime factor
    // of runs, each 8 bytes of 0xAB past the previous (a read outside the runs changes the sums).
    int64_t runs = 1;
    if (s8_rows && c.pattern == 0)
      for (int64_t f = 2; f <= ks; ++f)
        if (ks % f == 0) {
          runs = f;
          break;
        }
    const int64_t seg_steps = ks / runs, seg_stride = 4 * seg_steps + 8;
    const int64_t lda = runs * seg_stride + 3 * kr;  // a stride wider than the row
    // s8 cases on one panel with an odd depth read only its first 16 columns (GemmS8Fn's cols).
    const int cols = s8_rows && c.np == 1 && ks % 2 == 1 ? 16 : int(ncols);
    const int64_t panel = (ks + 1) * 32 * kr;  // elements between panels
    // Unpacked operands: a[i][k], b[k][n].
    std::vector<double> a(static_cast<size_t>(c.mr * K)), b(static_cast<size_t>(K * ncols));
    for (size_t i = 0; i < a.size(); ++i) {
      if (int8) {
        const int pat[] = {rand_int(rng, 0, 255), 255, 255, int(i % 2) * 255};
        a[i] = pat[c.pattern];
      } else if (c.pattern == 0) {
        a[i] = rand_float(rng, -1.f, 1.f);
      } else {
        a[i] = rand_float(rng, -1.f, 1.f) * (i % 3 == 0 ? 1e4f : 1e-3f);
      }
      if (kind == KernelKind::bf16) a[i] = bf16_to_float(float_to_bf16(float(a[i])));
    }
    for (size_t i = 0; i < b.size(); ++i) {
      if (kind == KernelKind::s7) {
        const int pat[] = {rand_int(rng, -64, 64), -64, 64, (i % 3) ? 64 : -64};
        b[i] = pat[c.pattern];
      } else if (int8) {
        const int pat[] = {rand_int(rng, -128, 127), -128, 127, (i % 3) ? 127 : -128};
        b[i] = pat[c.pattern];
      } else {
        b[i] = rand_float(rng, -1.f, 1.f) * (c.pattern == 1 && i % 5 == 0 ? 1e3f : 1.f);
      }
      if (kind == KernelKind::bf16) b[i] = bf16_to_float(float_to_bf16(float(b[i])));
    }
    // Packed: B panels [ks][32][kr] per panel.
    const int64_t esize = kind == KernelKind::f32 ? 4 : kind == KernelKind::bf16 ? 2 : 1;
    AlignedBuffer bp(static_cast<size_t>(c.np * panel * esize) + 256);
    std::memset(bp.as<uint8_t>(), 0, bp.size());
    for (int64_t kk = 0; kk < K; ++kk)
      for (int64_t n = 0; n < ncols; ++n) {
        const int64_t off = (n / 32) * panel + (kk / kr) * 32 * kr + (n % 32) * kr + kk % kr;
        const double v = b[static_cast<size_t>(kk * ncols + n)];
        if (kind == KernelKind::f32) bp.as<float>()[off] = float(v);
        else if (kind == KernelKind::bf16) bp.as<uint16_t>()[off] = float_to_bf16(float(v));
        else bp.as<int8_t>()[off] = int8_t(v);
      }
    std::vector<double> init(static_cast<size_t>(c.mr * ncols)), want(init.size()), mag(init.size());
    for (auto& v : init) v = int8 ? rand_int(rng, -1000000, 1000000) : rand_float(rng, -1.f, 1.f);
    for (int i = 0; i < c.mr; ++i)
      for (int64_t n = 0; n < ncols; ++n) {
        double s = c.accumulate ? init[static_cast<size_t>(i * ncols + n)] : 0, m = std::fabs(s);
        for (int64_t kk = 0; kk < K; ++kk) {
          const double t = a[static_cast<size_t>(i * K + kk)] * b[static_cast<size_t>(kk * ncols + n)];
          s += t, m += std::fabs(t);
        }
        want[static_cast<size_t>(i * ncols + n)] = s, mag[static_cast<size_t>(i * ncols + n)] = m;
      }
    const std::string what = c.str(k);
    if (int8) {
      std::vector<uint8_t> a8(static_cast<size_t>(c.mr * lda) + 64, runs > 1 ? 0xAB : 0);
      for (int i = 0; i < c.mr; ++i)
        for (int64_t kk = 0; kk < K; ++kk)
          a8[static_cast<size_t>(i * lda + kk / 4 / seg_steps * seg_stride + kk % (4 * seg_steps))] =
              uint8_t(a[static_cast<size_t>(i * K + kk)]);
      TileBuffer<int32_t> got(c.mr, c.np), exp(c.mr, c.np);
      fill_tile(got, c.mr, int(ncols), c.accumulate, init);
      fill_tile(exp, c.mr, int(ncols), c.accumulate, init);
      if (kind == KernelKind::s8w) {
        std::vector<int16_t> a16(static_cast<size_t>(c.mr * lda) + 64, 0);
        for (size_t i = 0; i < a8.size(); ++i) a16[i] = int16_t(a8[i]);
        const int64_t wide_panel = ks * 128 + 128;
        AlignedBuffer wb(static_cast<size_t>(c.np * wide_panel) * 2 + 256);
        for (int j = 0; j < c.np; ++j) widen(bp.as<int8_t>() + j * panel, ks, wb.as<int16_t>() + j * wide_panel);
        k.fn_as<GemmS8WideFn>()(c.mr, c.np, ks, a16.data(), lda, wb.as<int16_t>(), wide_panel, got.c.data(), got.ldc,
                                c.accumulate);
      } else {
        k.fn_as<GemmS8Fn>()(c.mr, c.np, ks, a8.data(), lda, bp.as<int8_t>(), panel, got.c.data(), got.ldc,
                            c.accumulate, seg_steps, seg_stride, cols);
      }
      ref->fn_as<GemmS8Fn>()(c.mr, c.np, ks, a8.data(), lda, bp.as<int8_t>(), panel, exp.c.data(), exp.ldc,
                             c.accumulate, seg_steps, seg_stride, int(ncols));
      compare_tile(r, got, c.mr, int(ncols), want, mag, what, cols);
      compare_with_ref(r, got, exp, c.mr, int(ncols), mag, what + " vs " + ref->name, cols);
    } else {
      TileBuffer<float> got(c.mr, c.np), exp(c.mr, c.np);
      fill_tile(got, c.mr, int(ncols), c.accumulate, init);
      fill_tile(exp, c.mr, int(ncols), c.accumulate, init);
      if (kind == KernelKind::f32) {
        std::vector<float> af(static_cast<size_t>(c.mr * lda) + 64, 0.f);
        for (int i = 0; i < c.mr; ++i)
          for (int64_t kk = 0; kk < K; ++kk) af[static_cast<size_t>(i * lda + kk)] = float(a[static_cast<size_t>(i * K + kk)]);
        k.fn_as<GemmF32Fn>()(c.mr, c.np, ks, af.data(), lda, bp.as<float>(), panel, got.c.data(), got.ldc,
                             c.accumulate);
        ref->fn_as<GemmF32Fn>()(c.mr, c.np, ks, af.data(), lda, bp.as<float>(), panel, exp.c.data(), exp.ldc,
                                c.accumulate);
      } else {
        std::vector<uint16_t> ab(static_cast<size_t>(c.mr * lda) + 64, 0);
        for (int i = 0; i < c.mr; ++i)
          for (int64_t kk = 0; kk < K; ++kk) ab[static_cast<size_t>(i * lda + kk)] = float_to_bf16(float(a[static_cast<size_t>(i * K + kk)]));
        k.fn_as<GemmBf16Fn>()(c.mr, c.np, ks, ab.data(), lda, bp.as<uint16_t>(), panel, got.c.data(), got.ldc,
                              c.accumulate);
        ref->fn_as<GemmBf16Fn>()(c.mr, c.np, ks, ab.data(), lda, bp.as<uint16_t>(), panel, exp.c.data(), exp.ldc,
                                 c.accumulate);
      }
      compare_tile(r, got, c.mr, int(ncols), want, mag, what);
      compare_with_ref(r, got, exp, c.mr, int(ncols), mag, what + " vs " + ref->name);
    }
    ++r.cases;
  });
}

// s8q, s7q: every case of the int8 tile (runs of A, column counts down to a 16-column half and ragged
// tails) requantized by the folded epilogue with random column terms, each residual kind, clamps
// and zero points: the exact integer products through folded_u8_code (the definition), and the
// ref kernel, byte for byte; bytes outside the tile stay untouched.
void test_s8q(const KernelInfo& k, Rng& rng, KernelTestReport& r) {
  const KernelInfo* ref = reference_kernel(KernelKind::s8q);
  const int code_max = k.kind == KernelKind::s7q ? 64 : 127;  // s7q: narrow codes (its contract)
  r.reference = "integer product through folded_u8_code; " + std::string(ref->name);
  const std::vector<std::pair<int64_t, int64_t>> depths = {{1, 0}, {3, 0}, {16, 0}, {33, 0}};
  int variant = 0;
  // One tile of c.mr rows and `cols` columns (-1: chosen by the variant: all, 16, or 9 short), rows
  // lda_rows bytes apart (0: apart by more than a row's runs; 16 or 32 overlap them as a conv's
  // pixels do).
  const auto run_case = [&](const GemmCase& c, int cols, int64_t lda_rows) {
    if (c.accumulate) return;  // the whole of K in one call
    const int64_t ks = c.k_steps, K = 4 * ks, ncols = 32 * c.np;
    const int v = variant++;
    if (cols < 0) cols = v % 3 == 0 ? int(ncols) : v % 3 == 1 ? std::min<int>(int(ncols), 16) : int(ncols) - 9;
    const int64_t runs = ks % 3 == 0 ? 3 : 1, seg_steps = ks / runs, seg_stride = 4 * seg_steps + 8;
    const int64_t lda = lda_rows > 0 ? lda_rows : runs * seg_stride + 12;
    // The bytes first, then each row's K values read back from them (overlapping rows share bytes).
    std::vector<uint8_t> a8(size_t(c.mr * lda + runs * seg_stride) + 64);
    for (size_t at = 0; at < a8.size(); ++at)
      a8[at] = uint8_t(c.pattern == 0 ? rand_int(rng, 0, 255) : c.pattern == 1 ? 255 : int(at % 2) * 255);
    std::vector<int64_t> av(size_t(c.mr * K));
    for (int i = 0; i < c.mr; ++i)
      for (int64_t kk = 0; kk < K; ++kk)
        av[size_t(i * K + kk)] = a8[size_t(i * lda + kk / 4 / seg_steps * seg_stride + kk % (4 * seg_steps))];
    const int64_t panel = (ks + 1) * 128;
    AlignedBuffer bp(size_t(c.np * panel) + 256);
    std::memset(bp.as<uint8_t>(), 0, bp.size());
    std::vector<int64_t> bv(size_t(K * ncols));
    for (int64_t kk = 0; kk < K; ++kk)
      for (int64_t n = 0; n < ncols; ++n) {
        const int val = c.pattern == 0 ? rand_int(rng, -code_max - 1 + (code_max == 64), code_max)
                        : c.pattern == 1 ? code_max : -code_max - (code_max == 127);
        bv[size_t(kk * ncols + n)] = val;
        bp.as<int8_t>()[(n / 32) * panel + (kk / 4) * 128 + (n % 32) * 4 + kk % 4] = int8_t(val);
      }
    // Epilogue at output rows m0.., columns n0.. of a larger output (ldo > columns).
    const int64_t m0 = 3, n0 = 32, ldo = n0 + ncols + 16, rows = m0 + c.mr + 2;
    std::vector<float> scale(static_cast<size_t>(ldo)), bias(static_cast<size_t>(ldo)), res_f(static_cast<size_t>(rows * ldo));
    std::vector<int32_t> offset(static_cast<size_t>(ldo));
    std::vector<uint8_t> res_u(static_cast<size_t>(rows * ldo));
    for (int64_t n = 0; n < ldo; ++n) {
      scale[size_t(n)] = rand_float(rng, 1e-5f, 3e-4f) * (c.pattern == 0 ? 1.f : 0.05f);
      bias[size_t(n)] = rand_float(rng, -40.f, 40.f);
      offset[size_t(n)] = rand_int(rng, -300000, 300000);
    }
    if (v % 5 == 4) {  // non-finite values and overflow: NaN ends on q_lo, +-inf on the clamps
      const float special[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(), 3e38f, -3e38f};
      for (int64_t n = 0; n < ldo; ++n)
        if (n % 3 == 0) bias[size_t(n)] = special[(n / 3) % 5];
        else if (n % 3 == 1) scale[size_t(n)] = n % 2 ? 3e38f : -3e38f;
    }
    for (auto& x : res_u) x = uint8_t(rand_int(rng, 0, 255));
    for (auto& x : res_f) x = rand_float(rng, -30.f, 30.f);
    Epilogue e;
    e.type = OutType::u8;
    e.col_scale = scale.data(), e.col_bias = bias.data(), e.col_offset = offset.data();
    e.out_scale = 1.f / rand_float(rng, 0.5f, 2.f), e.out_zp = rand_int(rng, 0, 255);
    e.q_lo = v % 2 ? float(e.out_zp) : 0.f, e.q_hi = v % 4 == 3 ? 200.f : 255.f;
    if (e.q_lo > e.q_hi) e.q_lo = e.q_hi;
    e.ld_residual = ldo;
    if (v % 3 == 1) e.residual_u8 = res_u.data(), e.residual_scale = 0.07f, e.residual_zp = 9;
    if (v % 3 == 2) e.residual_f32 = res_f.data();
    e.ldo = ldo;
    if (v % 7 == 5) std::fill(offset.begin(), offset.end(), 0);  // an activation zero point of 0
    e.y_bounded = folded_y_bounded(e, K, ldo);  // not with the special values
    e.zero_offsets = std::all_of(offset.begin(), offset.end(), [](int32_t o) { return o == 0; });
    std::vector<uint8_t> got(size_t(rows * ldo), 0x5A), exp(got);
    e.out = got.data();
    k.fn_as<GemmS8QFn>()(c.mr, c.np, ks, a8.data(), lda, bp.as<int8_t>(), panel, seg_steps, seg_stride, cols, e, m0, n0);
    e.out = exp.data();
    ref->fn_as<GemmS8QFn>()(c.mr, c.np, ks, a8.data(), lda, bp.as<int8_t>(), panel, seg_steps, seg_stride, cols, e,
                            m0, n0);
    const std::string what = c.str(k) + fmt(" cols=%d runs=%lld lda=%lld", cols, (long long)runs, (long long)lda);
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t n = 0; n < ldo; ++n) {
        const size_t at = size_t(m * ldo + n);
        const bool inside = m >= m0 && m < m0 + c.mr && n >= n0 && n < n0 + cols;
        int want = 0x5A;
        if (inside) {
          int64_t acc = 0;
          for (int64_t kk = 0; kk < K; ++kk) acc += av[size_t((m - m0) * K + kk)] * bv[size_t(kk * ncols + n - n0)];
          want = folded_u8_code(e, int32_t(acc), m, n);
        }
        record(r, got[at] != want, 0, [&] { return fmt("%s: (%lld, %lld) got %d want %d%s", what.c_str(), (long long)m, (long long)n, got[at], want, inside ? "" : " (outside the tile)"); });
        record(r, got[at] != exp[at], 0, [&] { return fmt("%s vs %s: (%lld, %lld) got %d want %d", what.c_str(), ref->name, (long long)m, (long long)n, got[at], exp[at]); });
      }
    ++r.cases;
  };
  for_each_case(k, depths, 3, [&](const GemmCase& c) { run_case(c, -1, 0); });
  // Narrow tiles (every row count up to the taller ones: 16 columns or fewer, and 17-32 up to half)
  // with rows apart, and 16 or 32 bytes apart.
  for (int pattern = 0; pattern < 3; ++pattern)
    for (int mr = 1; mr <= k.rows_for(16); ++mr)
      for (const auto& d : depths)
        for (int cols : {16, 7, 32, 23})
          for (int64_t lda : {0, 16, 32}) {
            if (mr > k.rows_for(cols) || (pattern > 0 && mr != k.rows_for(cols)) || (mr <= k.mr && lda == 0)) continue;
            run_case(GemmCase{mr, 1, d.first, false, pattern, d.second, d.first}, cols, lda);
          }
}

// Low-bit kinds: weights packed by pack_lowbit (u4/u2 x32c4 group blocks), K with partial last
// groups. u4/u2: u8 activations, group row sums (LowBitArgs); f32u*/bf16u*: float activations;
// s8g: the panels unpacked to s8 by the ref helper set, k steps only up to K.
void test_lowbit_gemm(const KernelInfo& k, Rng& rng, KernelTestReport& r) {
  const KernelKind kind = k.kind;
  const bool lut = kind == KernelKind::u2lut;
  const bool u8_act = kind == KernelKind::u4 || kind == KernelKind::u2 || kind == KernelKind::s8g || lut;
  const bool bf16_act = kind == KernelKind::bf16u4 || kind == KernelKind::bf16u2;
  const int bits = (kind == KernelKind::u2 || kind == KernelKind::f32u2 || kind == KernelKind::bf16u2 || lut) ? 2 : 4;
  const KernelInfo* ref = kind == KernelKind::s8g ? nullptr : reference_kernel(lut ? KernelKind::u2 : kind);
  const IsaOps& ref_ops = reference_kernel(KernelKind::isa_ops)->ops_as<IsaOps>();
  // u2lut: also bit for bit against the level's u2 kernel, with the kernel's own tables and with
  // tables from each u2lut_tables helper this CPU runs.
  const KernelInfo* same_level = lut ? u2_kernel_of_level(k.isa) : nullptr;
  std::vector<const KernelInfo*> builders;
  if (lut)
    for (const auto& b : kernel_table())
      if (b.kind == KernelKind::u2lut_tables && kernel_runnable(b)) builders.push_back(&b);
  r.reference = std::string("scalar product of the unpacked weights") + (ref ? std::string("; ") + ref->name : "") +
                (same_level ? std::string("; bit for bit ") + same_level->name : "");
  std::vector<std::pair<int64_t, int64_t>> depths;  // (K, group)
  for (int64_t g : {32, 64, 128})
    for (int64_t K : {g, 2 * g - 5, 3 * g + 3}) depths.push_back({K, g});
  if (lut)  // groups of more than 64 units of 16 k: int32 partial sums between the kernel's k blocks
    for (std::pair<int64_t, int64_t> d : {std::pair<int64_t, int64_t>{1040, 1040}, {2100, 1088}, {1500, 1504}, {4096, 16}})
      depths.push_back(d);
  for_each_case(k, depths, 3, [&](const GemmCase& c) {
    const int64_t K = c.K, group = c.group, N = 32 * c.np, G = (K + group - 1) / group, gs = group / 4;
    const int qmax = (1 << bits) - 1;
    std::vector<uint8_t> codes(static_cast<size_t>(N * K)), zp(static_cast<size_t>(N * G));
    std::vector<float> scale(static_cast<size_t>(N * G));
    for (auto& q : codes) q = uint8_t(c.pattern == 0 ? rand_int(rng, 0, qmax) : c.pattern == 1 ? qmax : 0);
    for (auto& z : zp) z = uint8_t(c.pattern == 0 ? rand_int(rng, 0, qmax) : c.pattern == 1 ? 0 : qmax);
    for (auto& s : scale) s = rand_float(rng, 0.001f, 0.1f) * (rand_int(rng, 0, 1) ? 1.f : -1.f);
    const PackedWeight w = pack_lowbit(codes.data(), N, K, bits, group, scale.data(), zp.data());
    const int64_t ks = w.k_steps(), Kp = ks * 4, lda = Kp + 12;
    std::vector<double> a(static_cast<size_t>(c.mr * Kp), 0.0);
    for (int i = 0; i < c.mr; ++i)
      for (int64_t kk = 0; kk < K; ++kk) {
        double v;
        if (u8_act) v = c.pattern == 0 ? rand_int(rng, 0, 255) : 255;
        else v = rand_float(rng, -1.f, 1.f);
        if (bf16_act) v = bf16_to_float(float_to_bf16(float(v)));
        a[static_cast<size_t>(i * Kp + kk)] = v;
      }
    const int64_t ncols = N;
    std::vector<double> init(static_cast<size_t>(c.mr * ncols)), want(init.size()), mag(init.size());
    for (auto& v : init) v = rand_float(rng, -1.f, 1.f);
    for (int i = 0; i < c.mr; ++i)
      for (int64_t n = 0; n < N; ++n) {
        double s = c.accumulate ? init[static_cast<size_t>(i * ncols + n)] : 0, m = std::fabs(s);
        for (int64_t g = 0; g < G; ++g) {
          const double sc = w.group_scale(g, n), z = w.group_zp[static_cast<size_t>(g * w.n_pad() + n)];
          double dot = 0, dm = 0;
          for (int64_t kk = g * group; kk < std::min(K, (g + 1) * group); ++kk) {
            const double x = a[static_cast<size_t>(i * Kp + kk)], q = codes[static_cast<size_t>(n * K + kk)];
            dot += x * (q - z), dm += std::fabs(x) * (q + z);
          }
          s += sc * dot, m += std::fabs(sc) * dm;
        }
        want[static_cast<size_t>(i * ncols + n)] = s, mag[static_cast<size_t>(i * ncols + n)] = m;
      }
    TileBuffer<float> got(c.mr, c.np), exp(c.mr, c.np);
    fill_tile(got, c.mr, int(ncols), c.accumulate, init);
    fill_tile(exp, c.mr, int(ncols), c.accumulate, init);
    const uint8_t* b = w.lowbit_block(0, 0);
    const int64_t b_stride = w.panel_bytes();
    if (u8_act) {
      std::vector<uint8_t> a8(static_cast<size_t>(c.mr * lda) + 64, 0);
      for (int i = 0; i < c.mr; ++i)
        for (int64_t kk = 0; kk < Kp; ++kk) a8[static_cast<size_t>(i * lda + kk)] = uint8_t(a[static_cast<size_t>(i * Kp + kk)]);
      if (kind == KernelKind::s8g) {
        const int64_t group_bytes = gs * 128 + 128, stride = G * group_bytes;
        AlignedBuffer unpacked(static_cast<size_t>(c.np * stride) + 256);
        for (int j = 0; j < c.np; ++j)
          ref_ops.unpack_lowbit_s8(bits, w.lowbit_block(j * 32, 0), gs, G, unpacked.as<int8_t>() + j * stride);
        k.fn_as<GemmGroupwiseFn>()(c.mr, c.np, (K + 3) / 4, a8.data(), lda, unpacked.as<int8_t>(), stride, gs,
                                   got.c.data(), got.ldc, c.accumulate);
      } else {
        std::vector<float> rowsum(static_cast<size_t>(c.mr * G), 0.f);
        for (int i = 0; i < c.mr; ++i)
          for (int64_t kk = 0; kk < K; ++kk) rowsum[static_cast<size_t>(i * G + kk / group)] += float(a8[static_cast<size_t>(i * lda + kk)]);
        const LowBitArgs args{gs, rowsum.data(), G, (K + 3) / 4};
        k.fn_as<GemmLowBitFn>()(c.mr, c.np, ks, a8.data(), lda, b, b_stride, args, got.c.data(), got.ldc,
                                c.accumulate);
        ref->fn_as<GemmLowBitFn>()(c.mr, c.np, ks, a8.data(), lda, b, b_stride, args, exp.c.data(), exp.ldc,
                                   c.accumulate);
        if (same_level) {
          TileBuffer<float> lvl(c.mr, c.np), with_tables(c.mr, c.np);
          fill_tile(lvl, c.mr, int(ncols), c.accumulate, init);
          same_level->fn_as<GemmLowBitFn>()(c.mr, c.np, ks, a8.data(), lda, b, b_stride, args, lvl.c.data(), lvl.ldc,
                                            c.accumulate);
          const std::string what = c.str(k) + " vs " + same_level->name;
          const auto bitwise = [&](const TileBuffer<float>& t, const std::string& w) {
            for (size_t i = 0; i < t.c.size(); ++i)
              record(r, std::memcmp(&t.c[i], &lvl.c[i], 4) != 0, 0, [&] {
                return fmt("%s: element %zu got %.9g want %.9g (bit for bit)", w.c_str(), i, double(t.c[i]), double(lvl.c[i]));
              });
          };
          bitwise(got, what);
          for (const KernelInfo* bld : builders) {
            AlignedBuffer tables(size_t(ks / 4 * kU2LutUnitBytes));
            bld->fn_as<BuildU2LutFn>()(a8.data(), ks / 4, tables.as<uint8_t>());
            LowBitArgs with = args;
            with.lut = tables.as<uint8_t>();
            fill_tile(with_tables, c.mr, int(ncols), c.accumulate, init);
            k.fn_as<GemmLowBitFn>()(c.mr, c.np, ks, a8.data(), lda, b, b_stride, with, with_tables.c.data(),
                                    with_tables.ldc, c.accumulate);
            bitwise(with_tables, what + " tables of " + bld->name);
          }
        }
      }
    } else if (bf16_act) {
      std::vector<uint16_t> ab(static_cast<size_t>(c.mr * lda) + 64, 0);
      for (int i = 0; i < c.mr; ++i)
        for (int64_t kk = 0; kk < Kp; ++kk) ab[static_cast<size_t>(i * lda + kk)] = float_to_bf16(float(a[static_cast<size_t>(i * Kp + kk)]));
      k.fn_as<GemmWeightOnlyBf16Fn>()(c.mr, c.np, ks, ab.data(), lda, b, b_stride, gs, got.c.data(), got.ldc,
                                      c.accumulate);
      ref->fn_as<GemmWeightOnlyBf16Fn>()(c.mr, c.np, ks, ab.data(), lda, b, b_stride, gs, exp.c.data(), exp.ldc,
                                         c.accumulate);
    } else {
      std::vector<float> af(static_cast<size_t>(c.mr * lda) + 64, 0.f);
      for (int i = 0; i < c.mr; ++i)
        for (int64_t kk = 0; kk < Kp; ++kk) af[static_cast<size_t>(i * lda + kk)] = float(a[static_cast<size_t>(i * Kp + kk)]);
      k.fn_as<GemmWeightOnlyFn>()(c.mr, c.np, ks, af.data(), lda, b, b_stride, gs, got.c.data(), got.ldc,
                                  c.accumulate);
      ref->fn_as<GemmWeightOnlyFn>()(c.mr, c.np, ks, af.data(), lda, b, b_stride, gs, exp.c.data(), exp.ldc,
                                     c.accumulate);
    }
    const std::string what = c.str(k);
    compare_tile(r, got, c.mr, int(ncols), want, mag, what);
    if (ref) {
      compare_with_ref(r, got, exp, c.mr, int(ncols), mag, what + " vs " + ref->name);
    }
    ++r.cases;
  });
}

// u2lut_tables: random and all-255 activations against the layout of kernels.h, byte for byte.
void test_u2lut_tables(const KernelInfo& k, Rng& rng, KernelTestReport& r) {
  r.reference = "the u2lut table layout (kernels.h), scalar";
  for (int64_t units : {1, 2, 5, 64, 131})
    for (int pattern = 0; pattern < 2; ++pattern) {
      std::vector<uint8_t> a(size_t(16 * units));
      for (auto& v : a) v = uint8_t(pattern == 0 ? rand_int(rng, 0, 255) : 255);
      AlignedBuffer got(size_t(units * kU2LutUnitBytes));
      std::memset(got.as<uint8_t>(), 0xA5, size_t(units * kU2LutUnitBytes));
      k.fn_as<BuildU2LutFn>()(a.data(), units, got.as<uint8_t>());
      for (int64_t u = 0; u < units; ++u)
        for (int h = 0; h < 2; ++h)
          for (int q = 0; q < 4; ++q)
            for (int n = 0; n < 16; ++n) {
              const int t = a[size_t(16 * u + 8 * h + q)] * (n & 3) + a[size_t(16 * u + 8 * h + 4 + q)] * (n >> 2);
              for (int p = 0; p < 2; ++p) {
                const int want = p == 0 ? t & 63 : t >> 6;
                const int v = got.as<uint8_t>()[u * kU2LutUnitBytes + 128 * h + 64 * p + 16 * q + n];
                record(r, v != want, 0, [&] {
                  return fmt("units=%lld unit %lld h=%d plane %d q=%d entry %d: got %d want %d", (long long)units,
                             (long long)u, h, p, q, n, v, want);
                });
              }
            }
      ++r.cases;
    }
}

// widen_s8: panels of random and extreme int8 values against the ref helper, bit for bit.
void test_widen(const KernelInfo& k, Rng& rng, KernelTestReport& r) {
  const KernelInfo* ref = reference_kernel(KernelKind::widen_s8);
  r.reference = ref->name;
  for (int64_t steps : {1, 2, 5, 64}) {
    AlignedBuffer src(static_cast<size_t>(steps * 128)), got(static_cast<size_t>(steps * 256)), want(static_cast<size_t>(steps * 256));
    for (int64_t i = 0; i < steps * 128; ++i)
      src.as<int8_t>()[i] = int8_t(i % 7 == 0 ? -128 : i % 7 == 1 ? 127 : rand_int(rng, -128, 127));
    k.fn_as<WidenS8Fn>()(src.as<int8_t>(), steps, got.as<int16_t>());
    ref->fn_as<WidenS8Fn>()(src.as<int8_t>(), steps, want.as<int16_t>());
    for (int64_t i = 0; i < steps * 128; ++i)
      record(r, std::abs(got.as<int16_t>()[i] - want.as<int16_t>()[i]), 0,
             [&] { return fmt("steps=%lld element %lld", (long long)steps, (long long)i); });
    ++r.cases;
  }
}

// -------------------------------------------------------------------------------- depthwise
struct DwGeometry {
  int64_t N, H, W, C, KH, KW, SH, SW, PH, PW, DH, DW;
};

// int8 operands: random, or every tap at an extreme product (x - zp) * w of +-255 * 128 / 127.
enum class DwOperands { random, x255_wmin, x0_wmax_zp255, x255_wmax, x0_wmin_zp255 };
// int8 epilogues: the accumulator itself (mult 1, no bias, no clamp); float y = acc * mult + bias,
// clamped (two roundings, so an FMA contraction shows); u8 codes from random scales; u8 codes from
// a dyadic mult and half-integer biases, which put many values on exact rounding ties; u8 codes
// that are ties only after both roundings (float(acc) * mult rounded, then + bias), which an FMA
// would round once and move off the tie.
enum class DwEpilogue { accumulator, float_out, u8_random, u8_ties, u8_two_roundings };

void test_depthwise(const KernelInfo& k, Rng& rng, KernelTestReport& r) {
  const bool int8 = k.kind != KernelKind::dw_f32;
  const KernelInfo* ref = reference_kernel(int8 ? KernelKind::dw_s8 : KernelKind::dw_f32);
  r.reference = ref->name;
  // Channel counts cover every tail of a 16- and an 8-channel vector; widths every micro-tile
  // remainder (tiles of 16, 12 or 8 pixels, then 8, 4, 2, 1).
  const DwGeometry geometries[] = {
      {1, 7, 9, 19, 3, 3, 1, 1, 1, 1, 1, 1},   {2, 8, 8, 35, 3, 3, 2, 2, 1, 1, 1, 1},
      {1, 20, 21, 24, 3, 3, 1, 1, 1, 1, 1, 1}, {1, 6, 5, 17, 3, 3, 2, 1, 0, 0, 1, 1},
      {1, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1},    {1, 3, 40, 16, 3, 3, 1, 2, 1, 1, 1, 1},
      {1, 9, 7, 16, 5, 5, 1, 1, 2, 2, 1, 1},   {1, 10, 11, 7, 3, 3, 1, 2, 2, 1, 2, 2},
      {1, 12, 12, 33, 7, 7, 2, 2, 3, 3, 1, 1}, {1, 5, 6, 3, 1, 3, 1, 1, 0, 1, 1, 1},
      {1, 6, 9, 5, 3, 2, 1, 3, 1, 0, 1, 1},    {1, 5, 31, 13, 3, 3, 1, 1, 1, 1, 1, 1},
      {1, 4, 27, 8, 3, 3, 1, 1, 1, 1, 1, 1},   {1, 6, 61, 9, 3, 3, 2, 2, 1, 1, 1, 1},
      {1, 5, 29, 23, 3, 3, 1, 1, 1, 1, 1, 1},  {1, 9, 30, 12, 7, 7, 1, 1, 3, 3, 1, 1},
      {1, 11, 36, 10, 5, 5, 2, 2, 2, 2, 1, 1}, {1, 12, 19, 17, 3, 3, 1, 1, 2, 1, 2, 1},
      {1, 10, 17, 6, 3, 3, 3, 3, 3, 3, 3, 3},  {1, 4, 5, 2, 3, 3, 1, 1, 4, 5, 1, 1},
      {1, 17, 18, 11, 16, 16, 1, 1, 0, 0, 1, 1},  // 256 taps: the SIMD kernels' exact-fp32 limit
      {1, 18, 17, 4, 17, 17, 1, 1, 0, 0, 1, 1},   // 289 taps: the reference only, for int8
  };
  const std::vector<DwOperands> operands =
      int8 ? std::vector<DwOperands>{DwOperands::random, DwOperands::x255_wmin, DwOperands::x0_wmax_zp255,
                                     DwOperands::x255_wmax, DwOperands::x0_wmin_zp255}
           : std::vector<DwOperands>{DwOperands::random};
  const std::vector<DwEpilogue> epilogues =
      int8 ? std::vector<DwEpilogue>{DwEpilogue::accumulator, DwEpilogue::float_out, DwEpilogue::u8_random,
                                     DwEpilogue::u8_ties, DwEpilogue::u8_two_roundings}
           : std::vector<DwEpilogue>{DwEpilogue::accumulator, DwEpilogue::float_out};
  for (const DwGeometry& g : geometries)
    for (const DwOperands pattern : operands)
      for (const DwEpilogue epi : epilogues) {
        DwShape s{g.N, g.H, g.W, g.C, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW};
        const int64_t C = g.C, taps = g.KH * g.KW, ld_in = C + 3, ld_out = C + 5, OH = s.OH(), OW = s.OW();
        if (int8 && k.isa != Isa::ref && taps > kDwMaxExactTaps) continue;
        const bool u8_out = epi != DwEpilogue::accumulator && epi != DwEpilogue::float_out;
        if (pattern != DwOperands::random && u8_out) continue;
        // Outputs: the tensor and a guard zone after it, both holding a sentinel where nothing may be
        // written (the gaps between pixels, the guard), so a store past the end is a mismatch.
        const int64_t in_elems = g.N * g.H * g.W * ld_in, out_elems = g.N * OH * OW * ld_out + 64;
        const auto outside = [&](size_t i) {
          return i >= size_t(g.N * OH * OW * ld_out) || (i % static_cast<size_t>(ld_out)) >= static_cast<size_t>(C);
        };
        DwCall c;
        c.s = s, c.OH = OH, c.OW = OW, c.int8 = int8, c.ld_in = ld_in, c.ld_out = ld_out;
        c.lo = -std::numeric_limits<float>::infinity(), c.hi = std::numeric_limits<float>::infinity();
        std::vector<float> bias(static_cast<size_t>(C)), mult(static_cast<size_t>(C), 1.f);
        std::vector<uint8_t> x8(static_cast<size_t>(in_elems));
        std::vector<float> xf(static_cast<size_t>(in_elems)), xabs(static_cast<size_t>(in_elems));
        std::vector<int8_t> w8(static_cast<size_t>(taps * C));
        std::vector<float> wf(static_cast<size_t>(taps * C)), wabs(static_cast<size_t>(taps * C));
        const bool x255 = pattern == DwOperands::x255_wmin || pattern == DwOperands::x255_wmax;
        const bool wmin = pattern == DwOperands::x255_wmin || pattern == DwOperands::x0_wmin_zp255;
        for (auto& v : x8) v = uint8_t(pattern == DwOperands::random ? rand_int(rng, 0, 255) : x255 ? 255 : 0);
        for (auto& v : w8) v = int8_t(pattern == DwOperands::random ? rand_int(rng, -128, 127) : wmin ? -128 : 127);
        for (size_t i = 0; i < xf.size(); ++i) xf[i] = rand_float(rng, -1.f, 1.f), xabs[i] = std::fabs(xf[i]);
        for (size_t i = 0; i < wf.size(); ++i) wf[i] = rand_float(rng, -1.f, 1.f), wabs[i] = std::fabs(wf[i]);
        for (auto& v : bias) v = rand_float(rng, -1.f, 1.f);
        const DwWeights w = int8 ? pack_depthwise_s8(w8.data(), g.KH, g.KW, C) : pack_depthwise_f32(wf.data(), g.KH, g.KW, C);
        c.w = &w;
        if (int8) {
          c.in_u8 = x8.data(), c.in_zp = pattern == DwOperands::random ? rand_int(rng, 0, 255) : x255 ? 0 : 255;
          c.mult = mult.data();
          if (epi == DwEpilogue::float_out) {  // random scales, bias and clamp
            for (auto& m : mult) m = rand_float(rng, 1e-5f, 1e-3f);
            c.bias = bias.data(), c.lo = -1.5f, c.hi = 2.f;
          } else if (epi == DwEpilogue::u8_random) {
            for (auto& m : mult) m = rand_float(rng, 1e-4f, 1e-2f);
            c.bias = bias.data(), c.lo = 0.f, c.hi = 6.f, c.out_scale = 0.025f, c.out_zp = rand_int(rng, 0, 20);
          } else if (epi == DwEpilogue::u8_ties) {
            // y = acc / 512 + k / 2 exactly, codes y + zp: a tie wherever acc = 256 mod 512.
            std::fill(mult.begin(), mult.end(), 1.f / 512.f);
            for (auto& v : bias) v = float(rand_int(rng, -8, 8)) * 0.5f;
            c.bias = bias.data(), c.out_scale = 1.f, c.out_zp = rand_int(rng, 100, 150);
          } else if (epi == DwEpilogue::u8_two_roundings) {
            // One input value per channel, zp 0: an output whose taps are all inside the image has
            // acc = x * sum(w). Its rounded product p_r = float(acc) * mult is near 100-1000 and the
            // bias k + 0.5 - p_r (exact: a multiple of p_r's ulp, smaller than p_r) makes y a tie.
            c.in_zp = 0;
            for (int64_t ch = 0; ch < C; ++ch) {
              const int xv = rand_int(rng, 100, 255);
              for (int64_t px = 0; px < g.N * g.H * g.W; ++px) x8[static_cast<size_t>(px * ld_in + ch)] = uint8_t(xv);
              int64_t wsum = 0;
              for (int64_t t = 0; t < taps; ++t) wsum += w8[static_cast<size_t>(t * C + ch)];
              if (wsum == 0) continue;  // no tie to make: random mult and bias
              const float acc = float(xv * wsum);
              mult[size_t(ch)] = rand_float(rng, 100.f, 1000.f) / acc;
              const float p_r = acc * mult[size_t(ch)];
              bias[size_t(ch)] = float(rand_int(rng, 0, 60)) + 0.5f - p_r;
            }
            c.bias = bias.data(), c.out_scale = 1.f, c.out_zp = rand_int(rng, 100, 150);
          }
        } else {
          c.in_f32 = xf.data(), c.bias = bias.data();
          if (epi == DwEpilogue::float_out) c.lo = -0.5f, c.hi = 0.75f;
        }
        if (k.kind == KernelKind::dw_s8_3x3 && !dwconv3x3_vnni_fits(c)) continue;
        static const char* const kOperands[] = {"random", "x255 w-128", "x0 w127 zp255", "x255 w127", "x0 w-128 zp255"};
        static const char* const kEpilogues[] = {"accumulator", "float epilogue", "u8 random scales", "u8 ties",
                                                 "u8 ties after two roundings"};
        const std::string what = fmt("%s N=%lld H=%lld W=%lld C=%lld kernel %lldx%lld stride %lldx%lld pad %lldx%lld "
                                     "dilation %lldx%lld, %s, %s", k.name, (long long)g.N, (long long)g.H,
                                     (long long)g.W, (long long)C, (long long)g.KH, (long long)g.KW, (long long)g.SH,
                                     (long long)g.SW, (long long)g.PH, (long long)g.PW, (long long)g.DH,
                                     (long long)g.DW, int8 ? kOperands[int(pattern)] : "random",
                                     kEpilogues[int(epi)]);
        const auto run = [&](const KernelInfo& kern, DwCall call) { kern.fn_as<DwKernelFn>()(call); };
        if (u8_out) {  // bit for bit
          std::vector<uint8_t> got(static_cast<size_t>(out_elems), 77), want(static_cast<size_t>(out_elems), 77);
          DwCall cg = c, cw = c;
          cg.out_u8 = got.data(), cw.out_u8 = want.data();
          run(k, cg), run(*ref, cw);
          for (size_t i = 0; i < got.size(); ++i) {
            const int expect = outside(i) ? 77 : want[i];
            record(r, std::abs(int(got[i]) - expect), 0,
                   [&] { return fmt("%s: output %zu got %d want %d", what.c_str(), i, got[i], expect); });
          }
        } else {
          std::vector<float> got(static_cast<size_t>(out_elems), -77.f), want(static_cast<size_t>(out_elems), -77.f), mag(static_cast<size_t>(out_elems), 0.f);
          DwCall cg = c, cw = c;
          cg.out_f32 = got.data(), cw.out_f32 = want.data();
          run(k, cg), run(*ref, cw);
          if (!int8) {  // each output's magnitude: the reference on |x| and |w|, plus |bias|
            const DwWeights wa = pack_depthwise_f32(wabs.data(), g.KH, g.KW, C);
            std::vector<float> babs(bias.size());
            for (size_t i = 0; i < bias.size(); ++i) babs[i] = std::fabs(bias[i]);
            DwCall cm = c;
            cm.w = &wa, cm.in_f32 = xabs.data(), cm.bias = babs.data(), cm.out_f32 = mag.data();
            cm.lo = -std::numeric_limits<float>::infinity(), cm.hi = std::numeric_limits<float>::infinity();
            run(*ref, cm);
          }
          // int8: bit for bit (exact sums, then the reference's two float roundings). fp32: within
          // kFloatTol of the terms' magnitude (summation order and FMA contraction differ).
          for (size_t i = 0; i < got.size(); ++i) {
            const double err = int8 ? std::fabs(double(got[i]) - double(want[i]))
                                    : std::fabs(double(got[i]) - double(want[i])) / std::max(double(mag[i]), 1e-30);
            const bool pad = outside(i);
            record(r, pad ? std::fabs(double(got[i]) + 77.0) : err, int8 || pad ? 0 : kFloatTol, [&] {
              return fmt("%s: output %zu got %.9g want %.9g", what.c_str(), i, got[i], pad ? -77.f : want[i]);
            });
          }
        }
        ++r.cases;
      }
}

// ------------------------------------------------------------------------------------ ops sets
void compare_values(KernelTestReport& r, const std::string& what, const float* got, const float* want, size_t n,
                    double rel_tol) {
  for (size_t i = 0; i < n; ++i) {
    const double err = std::fabs(double(got[i]) - double(want[i])) / std::max(1.0, std::fabs(double(want[i])));
    record(r, err, rel_tol, [&] { return fmt("%s: element %zu got %.9g want %.9g", what.c_str(), i, got[i], want[i]); });
  }
}

template <typename T>
void compare_ints(KernelTestReport& r, const std::string& what, const T* got, const T* want, size_t n, int allowed) {
  for (size_t i = 0; i < n; ++i)
    record(r, std::fabs(double(got[i]) - double(want[i])), allowed,
           [&] { return fmt("%s: element %zu got %g want %g", what.c_str(), i, double(got[i]), double(want[i])); });
}

void test_isa_ops(const KernelInfo& k, Rng& rng, KernelTestReport& r) {
  const KernelInfo* refk = reference_kernel(KernelKind::isa_ops);
  const IsaOps& t = k.ops_as<IsaOps>();
  const IsaOps& ref = refk->ops_as<IsaOps>();
  r.reference = refk->name;
  for (int64_t K : {1, 3, 4, 31, 64, 130}) {
    const int64_t rows = 5, lda = K + 7, ldd = (K + 3) / 4 * 4, ld2 = (K + 1) / 2 * 2;
    std::vector<uint8_t> a(static_cast<size_t>(rows * lda));
    for (size_t i = 0; i < a.size(); ++i) a[i] = uint8_t(i % 11 == 0 ? 255 : i % 13 == 0 ? 0 : rand_int(rng, 0, 255));
    for (bool flip : {false, true}) {
      std::vector<uint8_t> got(static_cast<size_t>(rows * ldd), 1), want(static_cast<size_t>(rows * ldd), 2);
      t.prepare_a_u8(rows, K, a.data(), lda, flip, got.data(), ldd);
      ref.prepare_a_u8(rows, K, a.data(), lda, flip, want.data(), ldd);
      compare_ints(r, fmt("prepare_a_u8 K=%lld flip=%d", (long long)K, int(flip)), got.data(), want.data(), got.size(), 0);
    }
    std::vector<int32_t> sg(static_cast<size_t>(rows)), sw(static_cast<size_t>(rows));
    t.row_sums_u8(rows, K, a.data(), lda, sg.data());
    ref.row_sums_u8(rows, K, a.data(), lda, sw.data());
    compare_ints(r, fmt("row_sums_u8 K=%lld", (long long)K), sg.data(), sw.data(), sg.size(), 0);
    for (int64_t group : {32, 128}) {
      const int64_t G = (K + group - 1) / group;
      std::vector<float> gg(static_cast<size_t>(rows * G), -1.f), gw(static_cast<size_t>(rows * G), -2.f);
      t.group_sums_u8(rows, K, a.data(), lda, group, gg.data(), G);
      ref.group_sums_u8(rows, K, a.data(), lda, group, gw.data(), G);
      compare_values(r, fmt("group_sums_u8 K=%lld group=%lld", (long long)K, (long long)group), gg.data(), gw.data(),
                     gg.size(), 0);
    }
    std::vector<float> x(static_cast<size_t>(rows * lda));
    for (auto& v : x) v = rand_float(rng, -3.f, 3.f);
    std::vector<uint16_t> bg(static_cast<size_t>(rows * ld2), 1), bw(static_cast<size_t>(rows * ld2), 2);
    t.prepare_a_bf16(rows, K, x.data(), lda, bg.data(), ld2);
    ref.prepare_a_bf16(rows, K, x.data(), lda, bw.data(), ld2);
    compare_ints(r, fmt("prepare_a_bf16 K=%lld", (long long)K), bg.data(), bw.data(), bg.size(), 0);
    // Quantization: the scale may differ in its last bits between builds, so a code by one.
    std::vector<uint8_t> qg(static_cast<size_t>(rows * ldd), 1), qw(static_cast<size_t>(rows * ldd), 2);
    std::vector<float> scg(static_cast<size_t>(rows)), scw(static_cast<size_t>(rows));
    std::vector<int32_t> zg(static_cast<size_t>(rows)), zw(static_cast<size_t>(rows));
    const bool okg = t.quantize_rows_u8(rows, K, x.data(), lda, qg.data(), ldd, scg.data(), zg.data(), nullptr);
    const bool okw = ref.quantize_rows_u8(rows, K, x.data(), lda, qw.data(), ldd, scw.data(), zw.data(), nullptr);
    record(r, okg == okw ? 0 : 1, 0, [&] { return std::string("quantize_rows_u8: finiteness differs"); });
    compare_ints(r, fmt("quantize_rows_u8 codes K=%lld", (long long)K), qg.data(), qw.data(), qg.size(), 1);
    compare_ints(r, fmt("quantize_rows_u8 zero points K=%lld", (long long)K), zg.data(), zw.data(), zg.size(), 1);
    compare_values(r, fmt("quantize_rows_u8 scales K=%lld", (long long)K), scg.data(), scw.data(), scg.size(), 1e-6);
    ++r.cases;
  }
  for (size_t n : {static_cast<size_t>(64), static_cast<size_t>(4096), static_cast<size_t>(4096 + 64)}) {
    AlignedBuffer buf(n);
    for (size_t i = 0; i < n; ++i) buf.as<uint8_t>()[i] = uint8_t(rand_int(rng, 0, 255));
    const uint64_t g = t.sum_bytes(buf.as<uint8_t>(), n), w = ref.sum_bytes(buf.as<uint8_t>(), n);
    record(r, g == w ? 0 : 1, 0, [&] { return fmt("sum_bytes n=%zu", n); });
    ++r.cases;
  }
  for (int bits : {4, 2})
    for (int64_t group : {32, 64, 128}) {
      const int64_t N = 64, K = 2 * group + 16, G = 3, gs = group / 4, qmax = (1 << bits) - 1;
      std::vector<uint8_t> codes(static_cast<size_t>(N * K)), zp(static_cast<size_t>(N * G));
      std::vector<float> scale(static_cast<size_t>(N * G));
      for (auto& q : codes) q = uint8_t(rand_int(rng, 0, int(qmax)));
      for (auto& z : zp) z = uint8_t(rand_int(rng, 0, int(qmax)));
      for (auto& s : scale) s = rand_float(rng, -0.1f, 0.1f);
      const PackedWeight w = pack_lowbit(codes.data(), N, K, bits, group, scale.data(), zp.data());
      const size_t bytes = static_cast<size_t>(G * (gs * 128 + 128));
      AlignedBuffer got(bytes), want(bytes);
      for (int64_t p = 0; p < w.n_panels(); ++p) {
        t.unpack_lowbit_s8(bits, w.lowbit_block(p * 32, 0), gs, G, got.as<int8_t>());
        ref.unpack_lowbit_s8(bits, w.lowbit_block(p * 32, 0), gs, G, want.as<int8_t>());
        compare_ints(r, fmt("unpack_lowbit_s8 bits=%d group=%lld", bits, (long long)group), got.as<uint8_t>(),
                     want.as<uint8_t>(), bytes, 0);
      }
      ++r.cases;
    }
}

void test_encoder_ops(const KernelInfo& k, Rng& rng, KernelTestReport& r) {
  const KernelInfo* refk = reference_kernel(KernelKind::encoder_ops);
  const EncoderOps& t = k.ops_as<EncoderOps>();
  const EncoderOps& ref = refk->ops_as<EncoderOps>();
  r.reference = refk->name;
  for (int64_t n : {1, 5, 16, 17, 33, 128, 384}) {
    const int64_t rows = 3, ld = n + 3;
    std::vector<float> x(static_cast<size_t>(rows * ld)), gamma(static_cast<size_t>(n)), beta(static_cast<size_t>(n));
    for (auto& v : x) v = rand_float(rng, -4.f, 4.f);
    for (auto& v : gamma) v = rand_float(rng, 0.5f, 1.5f);
    for (auto& v : beta) v = rand_float(rng, -0.5f, 0.5f);
    std::vector<float> yg(static_cast<size_t>(rows * ld), 9.f), yw(static_cast<size_t>(rows * ld), 9.f);
    t.layernorm(rows, n, x.data(), ld, gamma.data(), beta.data(), 1e-5f, yg.data(), ld);
    ref.layernorm(rows, n, x.data(), ld, gamma.data(), beta.data(), 1e-5f, yw.data(), ld);
    compare_values(r, fmt("layernorm n=%lld", (long long)n), yg.data(), yw.data(), yg.size(), kFloatTol);
    std::vector<float> sg = x, sw = x;
    t.softmax(rows, n, sg.data(), ld);
    ref.softmax(rows, n, sw.data(), ld);
    compare_values(r, fmt("softmax n=%lld", (long long)n), sg.data(), sw.data(), sg.size(), kFloatTol);
    // Scores -> softmax codes: the AVX-512 exp differs from the reference's by up to 3e-6 relative,
    // so a code near a rounding tie may differ by one.
    const int64_t ldq = (n + 63) / 64 * 64 + 64;
    std::vector<int32_t> acc(static_cast<size_t>(rows * ld)), a_zp(static_cast<size_t>(rows)), colsum(static_cast<size_t>(n));
    std::vector<float> a_scale(static_cast<size_t>(rows)), bias(static_cast<size_t>(n)), scratch(static_cast<size_t>(rows * n));
    std::vector<float> b_scale(static_cast<size_t>(n));
    for (auto& v : b_scale) v = rand_float(rng, 0.001f, 0.003f);
    for (auto& v : acc) v = rand_int(rng, -200000, 200000);
    for (auto& v : a_zp) v = rand_int(rng, 0, 255);
    for (auto& v : colsum) v = rand_int(rng, -3000, 3000);
    for (auto& v : a_scale) v = rand_float(rng, 0.001f, 0.01f);
    for (auto& v : bias) v = rand_float(rng, -2.f, 2.f);
    std::vector<uint8_t> qg(static_cast<size_t>(rows * ldq), 7), qw(static_cast<size_t>(rows * ldq), 7);
    std::vector<float> scg(static_cast<size_t>(rows)), scw(static_cast<size_t>(rows));
    t.scores_softmax_u8(rows, n, acc.data(), ld, a_zp.data(), a_scale.data(), colsum.data(), b_scale.data(), bias.data(),
                        scratch.data(), qg.data(), ldq, scg.data());
    ref.scores_softmax_u8(rows, n, acc.data(), ld, a_zp.data(), a_scale.data(), colsum.data(), b_scale.data(), bias.data(),
                          scratch.data(), qw.data(), ldq, scw.data());
    compare_ints(r, fmt("scores_softmax_u8 codes n=%lld", (long long)n), qg.data(), qw.data(), qg.size(), 1);
    compare_values(r, fmt("scores_softmax_u8 scales n=%lld", (long long)n), scg.data(), scw.data(), scg.size(), 1e-4);
    // Keys and values as int8 panels: codes by one (the scale's last bits), column sums that match.
    for (bool keys : {true, false}) {
      const int64_t L = 37, d = n;
      std::vector<float> kv(static_cast<size_t>(L * (d + 3)));
      for (auto& v : kv) v = rand_float(rng, -2.f, 2.f);
      PackedWeight shape;
      shape.format = WeightFormat::s8_x32c4;
      shape.N = keys ? L : d, shape.K = keys ? d : L;
      const size_t bytes = shape.expected_data_bytes();
      std::vector<int8_t> pg(bytes, 0), pw(bytes, 0);
      std::vector<float> sg2(static_cast<size_t>(shape.n_pad())), sw2(static_cast<size_t>(shape.n_pad()));
      std::vector<int32_t> cg(static_cast<size_t>(shape.n_pad()), 0), cw(static_cast<size_t>(shape.n_pad()), 0);
      if (keys) {
        t.pack_keys_s8(L, d, kv.data(), d + 3, 0.125f, pg.data(), shape.panel_bytes(), sg2.data(), cg.data());
        ref.pack_keys_s8(L, d, kv.data(), d + 3, 0.125f, pw.data(), shape.panel_bytes(), sw2.data(), cw.data());
      } else {
        t.pack_values_s8(L, d, kv.data(), d + 3, pg.data(), shape.panel_bytes(), sg2.data(), cg.data());
        ref.pack_values_s8(L, d, kv.data(), d + 3, pw.data(), shape.panel_bytes(), sw2.data(), cw.data());
      }
      const std::string what = fmt("%s n=%lld", keys ? "pack_keys_s8" : "pack_values_s8", (long long)n);
      compare_ints(r, what + " codes", pg.data(), pw.data(), bytes, 1);
      compare_values(r, what + " scales", sg2.data(), sw2.data(), static_cast<size_t>(shape.N), 1e-6);
      // The column sums must be those of the kernel's own codes.
      std::vector<int32_t> own(cg.size(), 0);
      for (size_t i = 0; i < bytes; ++i) own[(i / static_cast<size_t>(shape.panel_bytes())) * 32 + (i % 128) / 4] += pg[i];
      compare_ints(r, what + " column sums", cg.data(), own.data(), static_cast<size_t>(shape.N), 0);
    }
    ++r.cases;
  }
}

void test_peak(const KernelInfo& k, KernelTestReport& r) {
  r.reference = "runs; finite positive throughput";
  const auto loop = k.fn_as<PeakLoopFn>();
  const int64_t iters = 1 << 16;
  const auto t0 = std::chrono::steady_clock::now();
  r.checksum = loop(iters);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.gops = double(iters) * k.ops_per_iter / std::max(dt, 1e-9) / 1e9;
  record(r, std::isfinite(r.gops) && r.gops > 0 ? 0 : 1, 0, [&] { return fmt("throughput %g", r.gops); });
  ++r.cases;
}

}  // namespace

KernelTestReport test_kernel(const KernelInfo& k, uint64_t seed) {
  KernelTestReport r;
  r.runnable = kernel_runnable(k);
  if (!r.runnable) {
    r.reference = "not runnable on this CPU";
    return r;
  }
  Rng rng(seed ^ std::hash<std::string>()(k.name));
  switch (k.kind) {
    case KernelKind::s8:
    case KernelKind::s7:
    case KernelKind::s8w:
    case KernelKind::f32:
    case KernelKind::bf16: test_plain_gemm(k, rng, r); break;
    case KernelKind::s8q:
    case KernelKind::s7q: test_s8q(k, rng, r); break;
    case KernelKind::widen_s8: test_widen(k, rng, r); break;
    case KernelKind::u2lut_tables: test_u2lut_tables(k, rng, r); break;
    case KernelKind::dw_s8:
    case KernelKind::dw_s8_3x3:
    case KernelKind::dw_f32: test_depthwise(k, rng, r); break;
    case KernelKind::isa_ops: test_isa_ops(k, rng, r); break;
    case KernelKind::encoder_ops: test_encoder_ops(k, rng, r); break;
    case KernelKind::peak_int8:
    case KernelKind::peak_int8_narrow:
    case KernelKind::peak_fp32:
    case KernelKind::peak_bf16: test_peak(k, r); break;
    default:
      if (is_lowbit_kind(k.kind)) test_lowbit_gemm(k, rng, r);
      else r.first_mismatch = "no test for this kind", r.mismatches = 1;
  }
  return r;
}

}  // namespace mixq
