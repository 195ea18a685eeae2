// AVX2 + FMA micro-kernels for CPUs without AVX-512.
//  - int8: exact, vpmaddwd. In place (B sign-extended by shifts in the kernel, up to 2 rows x 32
//    columns per pass) for decode and narrow weights; on operands widened to int16 once per block
//    (kind s8w, 2 x 32) from 16 rows and 128 columns.
//  - fp32: 3 rows x the whole 32-wide panel per pass (12 ymm accumulators), two passes for 4-6 rows.
//  - bf16 (no AVX512-BF16): both operands widened to fp32 in registers (bf16 is the top half of an
//    fp32: a shift or a mask), FMA; up to 2 rows x 32 columns per pass.
#include <immintrin.h>

#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// MR rows x V chunks of 8 columns (chunk v: panel v / 4, its chunk v % 4), B read
// from memory once per pass. A 32-byte load holds 8 columns x 4 k steps; its even bytes (k0, k2)
// and odd bytes (k1, k3) are sign-extended in place to int16 by shifts, so both vpmaddwd results
// come out in column order and add into one accumulator per 8 columns. The 4 u8 activations of a
// step are one broadcast 32-bit word, split into int16 (a0, a2) and (a1, a3) by a mask and a shift.
// (Widening B by vpmovsxbw in 4 passes of 8 columns, with each step's activations widened in
// scalar code per pass, reached a third of the vpmaddwd roof.)
template <int MR, int V>
void gemm_s8_tile_avx2(int64_t k_steps, const uint8_t* a0, int64_t lda, const int8_t* b0, int64_t b_stride, int32_t* c,
                       int64_t ldc, bool accumulate, int64_t seg_steps, int64_t seg_stride) {
  const __m256i low_bytes = _mm256_set1_epi16(0x00FF);
  const auto chunk = [&](int v) { return v / 4 * b_stride + 32 * (v % 4); };
  __m256i acc[MR][V];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[i][v] = _mm256_setzero_si256();
  for_each_k_step(k_steps, seg_steps, seg_stride, [&](int64_t p, int64_t off) {
    __m256i a_even[MR], a_odd[MR];  // per 32-bit lane: int16 (a0, a2) and (a1, a3) of the step
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256i a4 = _mm256_set1_epi32(load_i32(a0 + i * lda + off));
      a_even[i] = _mm256_and_si256(a4, low_bytes), a_odd[i] = _mm256_srli_epi16(a4, 8);
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + chunk(v) + 128 * p));
      const __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(x, 8), 8), odd = _mm256_srai_epi16(x, 8);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i)
        acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_add_epi32(_mm256_madd_epi16(even, a_even[i]),
                                                                 _mm256_madd_epi16(odd, a_odd[i])));
    }
  });
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      __m256i* dst = reinterpret_cast<__m256i*>(c + i * ldc + 32 * (v / 4) + 8 * (v % 4));
      __m256i s = acc[i][v];
      if (accumulate) s = _mm256_add_epi32(s, _mm256_loadu_si256(dst));
      _mm256_storeu_si256(dst, s);
    }
}

// On operands widened once per block (GemmS8WideFn): per step and 8 columns two vpmaddwd by
// broadcast activation pairs and their adds, nothing else. MR (1-2) rows x the whole panel. The
// accumulators are named variables: held in an array, GCC 12 kept three of the eight on the stack
// and copied others every step (perf: a third of the samples on one register copy).
template <int MR>
void gemm_s8_wide_avx2(int64_t k_steps, const int16_t* a0, int64_t lda, const int16_t* b, int32_t* c, int64_t ldc,
                       bool accumulate) {
  [[maybe_unused]] const int16_t* a1 = a0 + (MR > 1 ? lda : 0);
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00;
  __m256i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
  const auto mac = [](__m256i acc, const int16_t* bv, __m256i x01, __m256i x23) {
    const __m256i p01 = _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(bv)), x01);
    const __m256i p23 = _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(bv + 16)), x23);
    return _mm256_add_epi32(acc, _mm256_add_epi32(p01, p23));
  };
  if constexpr (MR == 2) {
    // One step in asm with fixed temporaries: from intrinsics GCC 12 still spilled an accumulator and
    // copied others each step (8 accumulators, 4 broadcasts and the products want all 16 registers).
    for (int64_t p = 0; p < k_steps; ++p, b += 128) {
#define MIXQ_CHUNK(v, x, y)                                                                  \
  "vmovdqa " #v "*64(%[b]), %%ymm12\n\tvmovdqa " #v "*64+32(%[b]), %%ymm13\n\t"           \
  "vpmaddwd %%ymm12, %%ymm8, %%ymm14\n\tvpmaddwd %%ymm13, %%ymm9, %%ymm15\n\t"             \
  "vpaddd %%ymm14, %%ymm15, %%ymm14\n\tvpaddd %%ymm14, %[" #x "], %[" #x "]\n\t"          \
  "vpmaddwd %%ymm12, %%ymm10, %%ymm14\n\tvpmaddwd %%ymm13, %%ymm11, %%ymm15\n\t"           \
  "vpaddd %%ymm14, %%ymm15, %%ymm14\n\tvpaddd %%ymm14, %[" #y "], %[" #y "]\n\t"
      __asm__(
          "vpbroadcastd (%[a0]), %%ymm8\n\tvpbroadcastd 4(%[a0]), %%ymm9\n\t"
          "vpbroadcastd (%[a1]), %%ymm10\n\tvpbroadcastd 4(%[a1]), %%ymm11\n\t"
          MIXQ_CHUNK(0, c00, c10) MIXQ_CHUNK(1, c01, c11) MIXQ_CHUNK(2, c02, c12) MIXQ_CHUNK(3, c03, c13)
          : [c00] "+x"(c00), [c01] "+x"(c01), [c02] "+x"(c02), [c03] "+x"(c03), [c10] "+x"(c10), [c11] "+x"(c11),
            [c12] "+x"(c12), [c13] "+x"(c13)
          : [a0] "r"(a0 + 4 * p), [a1] "r"(a1 + 4 * p), [b] "r"(b)
          : "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
#undef MIXQ_CHUNK
    }
  } else {
    for (int64_t p = 0; p < k_steps; ++p, b += 128) {
      const __m256i x01 = _mm256_set1_epi32(load_i32(a0 + 4 * p)), x23 = _mm256_set1_epi32(load_i32(a0 + 4 * p + 2));
      c00 = mac(c00, b, x01, x23), c01 = mac(c01, b + 32, x01, x23);
      c02 = mac(c02, b + 64, x01, x23), c03 = mac(c03, b + 96, x01, x23);
    }
  }
  const auto store = [&](int i, int v, __m256i acc) {
    __m256i* dst = reinterpret_cast<__m256i*>(c + i * ldc + 8 * v);
    if (accumulate) acc = _mm256_add_epi32(acc, _mm256_loadu_si256(dst));
    _mm256_storeu_si256(dst, acc);
  };
  store(0, 0, c00), store(0, 1, c01), store(0, 2, c02), store(0, 3, c03);
  if constexpr (MR > 1) store(1, 0, c10), store(1, 1, c11), store(1, 2, c12), store(1, 3, c13);
}

// bf16 x bf16 -> fp32, B packed x32c2: a 32-byte load holds 8 columns x the k pair (k0, k1); k0 as
// fp32 is each 32-bit lane shifted left by 16, k1 the lane with its low half cleared. The pair of
// activations is one broadcast 32-bit word, split the same way. MR rows x the whole panel.
template <int MR>
void gemm_bf16_tile_avx2(int64_t k_steps, const uint16_t* a0, int64_t lda, const uint16_t* b, float* c, int64_t ldc,
                         bool accumulate) {
  constexpr int V = 4;  // chunks of 8 columns
  const __m256i high = _mm256_set1_epi32(int32_t(0xFFFF0000u));
  __m256 acc[MR][V];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[i][v] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k_steps; ++p, b += 64) {
    __m256 x0[MR], x1[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256i pair = _mm256_set1_epi32(load_i32(a0 + i * lda + 2 * p));
      x0[i] = _mm256_castsi256_ps(_mm256_slli_epi32(pair, 16)), x1[i] = _mm256_castsi256_ps(_mm256_and_si256(pair, high));
    }
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 * v));
      const __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)), w1 = _mm256_castsi256_ps(_mm256_and_si256(w, high));
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) acc[i][v] = _mm256_fmadd_ps(x1[i], w1, _mm256_fmadd_ps(x0[i], w0, acc[i][v]));
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      float* dst = c + i * ldc + 8 * v;
      _mm256_storeu_ps(dst, accumulate ? _mm256_add_ps(acc[i][v], _mm256_loadu_ps(dst)) : acc[i][v]);
    }
}

// fp32: MR (1-3) rows x the whole 32-column panel, 12 accumulators at most. Each pass reads B's
// lines in order; the former 6 x 16 tiles over panel halves read every other line per pass (Zen 3,
// K = N = 4096: 1.4x faster at M = 1-8, 1.1x at M = 64-256).
template <int MR>
void gemm_f32_tile_avx2(int64_t k_steps, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                        bool accumulate) {
  // Unrolled loops everywhere: with a rolled init or store loop GCC 12 kept the accumulator
  // array in memory and stored it every step (60 instead of 145 GFLOPS).
  __m256 acc[MR][4];
#pragma GCC unroll 3
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[i][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < k_steps; ++k, ++a, b += 32) {
    __m256 x[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) x[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 3
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i * lda);
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[i][v] = _mm256_fmadd_ps(ai, x[v], acc[i][v]);
    }
  }
#pragma GCC unroll 3
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      float* dst = c + i * ldc + 8 * v;
      _mm256_storeu_ps(dst, accumulate ? _mm256_add_ps(acc[i][v], _mm256_loadu_ps(dst)) : acc[i][v]);
    }
}

}  // namespace

// Tiles of at most 8 accumulators: one row, two panels side by side (decode: more DRAM requests in
// flight per core); two rows, a panel; 3-4 rows, the panel in row pairs (panel_row_pairs).
void u8s8s32_gemm_4x32c4__avx2(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                               int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                               int64_t seg_stride, int cols) {
  int j = 0;
  if (mr == 1)
    for (; j + 2 <= np; j += 2)
      gemm_s8_tile_avx2<1, 8>(k_steps, a, lda, b + j * b_stride, b_stride, c + 32 * j, ldc, accumulate, seg_steps,
                              seg_stride);
  for (; j < np; ++j) {
    const int8_t* panel = b + j * b_stride;
    int32_t* cj = c + 32 * j;
    panel_row_pairs(mr, [&](auto MR, int r0) {
      gemm_s8_tile_avx2<MR.value, 4>(k_steps, a + r0 * lda, lda, panel, b_stride, cj + r0 * ldc, ldc, accumulate,
                                     seg_steps, seg_stride);
    });
  }
}

// Per 32-byte chunk (8 columns x k0..k3): even bytes (k0, k2) and odd bytes (k1, k3) sign-extended
// in place, then blended into the pairs (k0, k1) and (k2, k3) of each column.
void widen_panel_s8__avx2(const int8_t* src, int64_t steps, int16_t* dst) {
  for (int64_t p = 0; p < steps; ++p, src += 128, dst += 128)
    for (int v = 0; v < 4; ++v) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32 * v));
      const __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(x, 8), 8), odd = _mm256_srai_epi16(x, 8);
      const __m256i k01 = _mm256_blend_epi16(even, _mm256_slli_epi32(odd, 16), 0xAA);
      const __m256i k23 = _mm256_blend_epi16(_mm256_srli_epi32(even, 16), odd, 0xAA);
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 32 * v), k01);
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 32 * v + 16), k23);
    }
}

void u8s8s32_gemm_2x32w__avx2(int mr, int np, int64_t k_steps, const int16_t* a, int64_t lda, const int16_t* b,
                              int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate) {
  for_each_panel<2>(mr, np, [&](auto MR, int j) {
    gemm_s8_wide_avx2<MR.value>(k_steps, a, lda, b + j * b_stride, c + 32 * j, ldc, accumulate);
  });
}

void bf16_gemm_4x32c2__avx2(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint16_t* b,
                            int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for (int j = 0; j < np; ++j)
    panel_row_pairs(mr, [&](auto MR, int r0) {
      gemm_bf16_tile_avx2<MR.value>(k_steps, a + r0 * lda, lda, b + j * b_stride, c + 32 * j + r0 * ldc, ldc, accumulate);
    });
}

void f32_gemm_6x32__avx2(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const float* b,
                         int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for_each_panel<6>(mr, np, [&](auto MR, int j) {
    const float* panel = b + j * b_stride;
    float* cj = c + 32 * j;
    if constexpr (MR.value <= 3) {
      gemm_f32_tile_avx2<MR.value>(k_steps, a, lda, panel, cj, ldc, accumulate);
    } else {
      gemm_f32_tile_avx2<3>(k_steps, a, lda, panel, cj, ldc, accumulate);
      gemm_f32_tile_avx2<MR.value - 3>(k_steps, a + 3 * lda, lda, panel, cj + 3 * ldc, ldc, accumulate);
    }
  });
}

// 12 independent FMA chains: the fp32 compute roof of one core without AVX-512.
int64_t peak_fp32__avx2(int64_t iters) {
  __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
  __asm__("" : "+v"(x), "+v"(y));  // opaque operands: the compiler must not fold the chains
  // Distinct starting values: identical chains would be merged by the compiler.
  __m256 a0 = _mm256_set1_ps(0.f), a1 = _mm256_set1_ps(1.f), a2 = _mm256_set1_ps(2.f), a3 = _mm256_set1_ps(3.f);
  __m256 a4 = _mm256_set1_ps(4.f), a5 = _mm256_set1_ps(5.f), a6 = _mm256_set1_ps(6.f), a7 = _mm256_set1_ps(7.f);
  __m256 a8 = _mm256_set1_ps(8.f), a9 = _mm256_set1_ps(9.f), a10 = _mm256_set1_ps(10.f), a11 = _mm256_set1_ps(11.f);
  for (int64_t it = 0; it < iters; ++it) {
    a0 = _mm256_fmadd_ps(a0, x, y), a1 = _mm256_fmadd_ps(a1, x, y), a2 = _mm256_fmadd_ps(a2, x, y);
    a3 = _mm256_fmadd_ps(a3, x, y), a4 = _mm256_fmadd_ps(a4, x, y), a5 = _mm256_fmadd_ps(a5, x, y);
    a6 = _mm256_fmadd_ps(a6, x, y), a7 = _mm256_fmadd_ps(a7, x, y), a8 = _mm256_fmadd_ps(a8, x, y);
    a9 = _mm256_fmadd_ps(a9, x, y), a10 = _mm256_fmadd_ps(a10, x, y), a11 = _mm256_fmadd_ps(a11, x, y);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float v[8];
  _mm256_storeu_ps(v, s);
  return int64_t(v[0] + v[7]);
}

namespace {

// Twelve independent int32 chains, each advanced by mac(chain) once per iteration (named
// variables: held in an array, GCC 12 spilled half of them to the stack every iteration); a checksum.
template <typename Mac>
inline int64_t twelve_int32_chains(int64_t iters, Mac mac) {
  __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1), a2 = _mm256_set1_epi32(2), a3 = _mm256_set1_epi32(3);
  __m256i a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5), a6 = _mm256_set1_epi32(6), a7 = _mm256_set1_epi32(7);
  __m256i a8 = _mm256_set1_epi32(8), a9 = _mm256_set1_epi32(9), a10 = _mm256_set1_epi32(10), a11 = _mm256_set1_epi32(11);
  for (int64_t it = 0; it < iters; ++it) {
    mac(a0), mac(a1), mac(a2), mac(a3), mac(a4), mac(a5);
    mac(a6), mac(a7), mac(a8), mac(a9), mac(a10), mac(a11);
  }
  __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                               _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
  s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(a8, a9), _mm256_add_epi32(a10, a11)));
  return int64_t(_mm256_extract_epi32(s, 0)) + _mm256_extract_epi32(s, 7);  // int64: no signed overflow
}

}  // namespace

// The exact int8 kernel's inner step, vpmaddwd (16 int16 MACs) + vpaddd, on 12 independent chains:
// the int8 roof of a CPU without VNNI for products that must not saturate. Each chain multiplies
// its own accumulator, so no two products are alike (the compiler would compute shared ones once);
// in asm, which the compiler cannot merge or spill around.
int64_t peak_int8__avx2(int64_t iters) {
  __m256i y = _mm256_set1_epi16(-2);
  __asm__("" : "+x"(y));
  return twelve_int32_chains(iters, [y](__m256i& a) {
    __asm__("vpmaddwd %1, %0, %%ymm15\n\tvpaddd %%ymm15, %0, %0" : "+x"(a) : "x"(y) : "xmm15");
  });
}

// The narrow-code kernel's (s7) inner step, vpmaddubsw (32 u8 x s8 MACs) + vpmaddwd by ones +
// vpaddd, on 12 independent chains (each multiplies its own accumulator's bytes): the int8 roof of
// a CPU without VNNI for w7a8 layers.
int64_t peak_int8_narrow__avx2(int64_t iters) {
  __m256i x = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
  __asm__("" : "+x"(x), "+x"(ones));
  return twelve_int32_chains(iters, [x, ones](__m256i& a) {
    __asm__("vpmaddubsw %1, %0, %%ymm14\n\tvpmaddwd %2, %%ymm14, %%ymm14\n\tvpaddd %%ymm14, %0, %0"
            : "+x"(a) : "x"(x), "x"(ones) : "xmm14");
  });
}

}  // namespace mixq
