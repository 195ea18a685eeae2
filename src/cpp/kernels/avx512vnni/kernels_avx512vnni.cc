// AVX-512 VNNI int8 micro-kernel: vpdpbusd (u8 x s8, 4-way dot, non-saturating) on a 6x64 tile:
// 24 zmm accumulators, 4 zmm of B (two 32-column panels) per 4-deep k step, A broadcast 4 bytes
// per row. Measured alone it runs at ~99% of the vpdpbusd roof, with B in L1, L2 or L3. Row loops
// are unrolled whole (a partly unrolled one indexes the accumulators in memory).
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx512/epilogue_avx512.h"
#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {
namespace {

// The tile's products over all k steps: V zmm vectors of 16 columns per row (2 per panel, or 1
// for the first half of one panel). LDA > 0: the row stride as a constant (lda is then LDA).
// The products are added to acc's starting values (zero for the plain products).
template <int MR, int V, int LDA = 0>
inline void vnni_products(__m512i (&acc)[MR][V], int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                          int64_t b_stride, int64_t seg_steps, int64_t seg_stride) {
  if constexpr (LDA > 0) lda = LDA;
  for_each_k_step(k_steps, seg_steps, seg_stride, [&](int64_t p, int64_t off) {
    __m512i bv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) bv[v] = _mm512_loadu_si512(b + 128 * p + (v / 2) * b_stride + (v % 2) * 64);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi32(load_i32(a + i * lda + off));
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], ai, bv[v]);
    }
  });
}

template <int MR, int V>
void gemm_vnni(int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b, int64_t b_stride, int32_t* c,
               int64_t ldc, bool accumulate, int64_t seg_steps, int64_t seg_stride) {
  __m512i acc[MR][V];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[i][v] = _mm512_setzero_si512();
  vnni_products<MR, V>(acc, k_steps, a, lda, b, b_stride, seg_steps, seg_stride);
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      int32_t* dst = c + i * ldc + 16 * v;
      if (accumulate) acc[i][v] = _mm512_add_epi32(acc[i][v], _mm512_loadu_si512(dst));
      _mm512_storeu_si512(dst, acc[i][v]);
    }
}

// The tile's codes, row by row: the residual kind fixed and every pointer in a local, so the row
// loop has no branch and reloads nothing after its stores (u8 stores may alias the Epilogue).
// Plain = false: folded_rounded16's cap and folded_u8_line's clamp (Plain only when
// Epilogue::y_bounded and the clamp is the u8 range's own); Offset: folded_y16's
// (false only when Epilogue::zero_offsets).
template <ResidualKind R, bool Plain, bool Offset, int MR, int V>
inline void store_tile_u8(const __m512i (&acc)[MR][V], const FoldedU8& c, const FoldedColumns16 (&t)[V],
                          const __mmask16 (&k)[V], int cols, const char* res, int64_t ld_res, uint8_t* out,
                          int64_t ldo) {
  constexpr int64_t res_elem = R == ResidualKind::f32 ? 4 : 1;
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    __m512 y[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const char* r = nullptr;  // no offset on a null pointer (UBSan)
      if constexpr (R != ResidualKind::none) r = res + (i * ld_res + 16 * v) * res_elem;
      y[v] = folded_y16<R, Offset>(c, acc[i][v], t[v], r, k[v]);
    }
    uint8_t* dst = out + i * ldo;
    if constexpr (V == 1) {
      _mm_mask_storeu_epi8(dst, k[0], _mm512_cvtepi32_epi8(folded_u8_codes16(c, y[0])));
    } else {
      __m512i q[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) q[v] = folded_rounded16<!Plain>(c, y[v]);
      store_u8_line(dst, folded_u8_line<V, !Plain>(c, q), cols);
    }
  }
}

// The same products finished in registers: the folded u8 epilogue of rows m.., columns n..n+cols.
template <int MR, int V, int LDA = 0>
void gemm_vnni_u8(int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b, int64_t b_stride,
                  int64_t seg_steps, int64_t seg_stride, int cols, const Epilogue& e, int64_t m, int64_t n) {
  __m512i acc[MR][V];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[i][v] = _mm512_setzero_si512();
  vnni_products<MR, V, LDA>(acc, k_steps, a, lda, b, b_stride, seg_steps, seg_stride);
  __mmask16 k[V];
  FoldedColumns16 t[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) k[v] = tail_mask(cols - 16 * v), t[v] = folded_columns16(e, n + 16 * v, k[v]);
  const FoldedU8 c(e);
  uint8_t* out = static_cast<uint8_t*>(e.out) + m * e.ldo + n;
  const int64_t r0 = m * e.ld_residual + n;
  // The common cases get plain copies (no cap, no byte clamp), with and without the offset
  // subtraction; an fp32 residual, and one-vector rows (a float clamp, never capped), take the
  // general one.
  const char* res_u8 = e.residual_u8 ? reinterpret_cast<const char*>(e.residual_u8 + r0) : nullptr;
  const auto store = [&](auto residual, const char* res, auto plain, auto offset) {
    store_tile_u8<decltype(residual)::value, decltype(plain)::value, decltype(offset)::value>(
        acc, c, t, k, cols, res, e.ld_residual, out, e.ldo);
  };
  using U8 = std::integral_constant<ResidualKind, ResidualKind::u8>;
  using None = std::integral_constant<ResidualKind, ResidualKind::none>;
  using General = std::false_type;
  using Plain = std::integral_constant<bool, V != 1>;  // V == 1: the same copy as General
  using Offset = std::true_type;
  using NoOffset = std::integral_constant<bool, V == 1>;
  if (e.residual_f32) {
    store(std::integral_constant<ResidualKind, ResidualKind::f32>{},
          reinterpret_cast<const char*>(e.residual_f32 + r0), General{}, Offset{});
  } else if (!e.y_bounded || e.q_lo > 0.f || e.q_hi < 255.f) {
    if (e.residual_u8) store(U8{}, res_u8, General{}, Offset{});
    else store(None{}, nullptr, General{}, Offset{});
  } else if (!e.zero_offsets) {
    if (e.residual_u8) store(U8{}, res_u8, Plain{}, Offset{});
    else store(None{}, nullptr, Plain{}, Offset{});
  } else {
    if (e.residual_u8) store(U8{}, res_u8, Plain{}, NoOffset{});
    else store(None{}, nullptr, Plain{}, NoOffset{});
  }
}

}  // namespace

void u8s8s32_gemm_6x64c4__avx512vnni(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda,
                                     const int8_t* b, int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate,
                                     int64_t seg_steps, int64_t seg_stride, int cols) {
  // Two panels per pass, 6x64 tiles: 24 accumulators. Decode (1-2 rows) streams B from DRAM, two
  // panels side by side with no software prefetch: on 2 MiB pages that measured best (W8 GEMV at
  // 4096 and 11008 x 4096, interleaved A/B: 7-18 % faster than 4 panels with a 512-byte prefetch
  // while the VM's bandwidth is high, within 2 % when it is low; 1 and 3 panels slower or alike).
  if (np == 1 && cols <= 16) {  // 16 channels: the panel's zero half is not computed
    dispatch_mr<6>(mr, [&](auto MR) {
      gemm_vnni<MR.value, 1>(k_steps, a, lda, b, b_stride, c, ldc, accumulate, seg_steps, seg_stride);
    });
    return;
  }
  const int np_step = 2;
  for (int j = 0; j < np; j += np_step)
    dispatch_mr<6>(mr, [&](auto MR) {
      dispatch_mr<2>(std::min(np_step, np - j), [&](auto NP) {
        gemm_vnni<MR.value, 2 * NP.value>(k_steps, a, lda, b + j * b_stride, b_stride, c + 32 * j, ldc, accumulate,
                                          seg_steps, seg_stride);
      });
    });
}

void u8s8u8_gemm_6x64c4__avx512vnni(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda,
                                    const int8_t* b, int64_t b_stride, int64_t seg_steps, int64_t seg_stride,
                                    int cols, const Epilogue& e, int64_t m, int64_t n) {
  // The int8 kernel's tiles (two panels a pass; the live half of one for 16 columns). Narrow tiles
  // take up to 28 rows (16 columns) or 14 (32 columns), the same 28 accumulators as 6 x 64 bar 4:
  // per-call set-up and the epilogue's column terms then serve a whole 28- or 14-pixel output
  // row of a conv (ResNet-20's 16-channel 3x3 convs at batch 64: 0.79x the time of 6-row tiles).
  for (int j = 0; j < np && cols > 32 * j; j += 2) {
    const int cj = std::min(cols - 32 * j, 64);
    const int8_t* bj = b + j * b_stride;
    // Row strides of 16 and 32 bytes (a 16- or 32-channel conv's pixels) as constants: the rows'
    // addresses are then displacements from one register. With a runtime stride, 28 or 14 row
    // addresses do not fit the integer registers and were reloaded from the stack every k step
    // (ResNet-20's 16- and 32-channel 3x3 convs: 0.95x and 0.96x the time this way).
    const auto tile = [&](auto MR, auto V) {
      if (V.value <= 2 && lda == 16)
        gemm_vnni_u8<MR.value, V.value, 16>(k_steps, a, lda, bj, b_stride, seg_steps, seg_stride, cj, e, m, n + 32 * j);
      else if (V.value <= 2 && lda == 32)
        gemm_vnni_u8<MR.value, V.value, 32>(k_steps, a, lda, bj, b_stride, seg_steps, seg_stride, cj, e, m, n + 32 * j);
      else
        gemm_vnni_u8<MR.value, V.value>(k_steps, a, lda, bj, b_stride, seg_steps, seg_stride, cj, e, m, n + 32 * j);
    };
    if (cj <= 16) dispatch_mr<28>(mr, [&](auto MR) { tile(MR, std::integral_constant<int, 1>{}); });
    else if (cj <= 32) dispatch_mr<14>(mr, [&](auto MR) { tile(MR, std::integral_constant<int, 2>{}); });
    else dispatch_mr<6>(mr, [&](auto MR) { tile(MR, std::integral_constant<int, 4>{}); });
  }
}

// 16 independent vpdpbusd chains: the int8 compute roof of one core.
int64_t peak_int8__avx512vnni(int64_t iters) {
  __m512i x = _mm512_set1_epi32(0x01010101), y = _mm512_set1_epi32(0x01020304);
  __asm__("" : "+v"(x), "+v"(y));  // opaque operands: the compiler must not fold the chains
  // Distinct starting values: identical chains would be merged by the compiler.
  __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2), a3 = _mm512_set1_epi32(3);
  __m512i a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5), a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7);
  __m512i a8 = _mm512_set1_epi32(8), a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10), a11 = _mm512_set1_epi32(11);
  __m512i a12 = _mm512_set1_epi32(12), a13 = _mm512_set1_epi32(13), a14 = _mm512_set1_epi32(14), a15 = _mm512_set1_epi32(15);
  for (int64_t it = 0; it < iters; ++it) {
    a0 = _mm512_dpbusd_epi32(a0, x, y), a1 = _mm512_dpbusd_epi32(a1, x, y);
    a2 = _mm512_dpbusd_epi32(a2, x, y), a3 = _mm512_dpbusd_epi32(a3, x, y);
    a4 = _mm512_dpbusd_epi32(a4, x, y), a5 = _mm512_dpbusd_epi32(a5, x, y);
    a6 = _mm512_dpbusd_epi32(a6, x, y), a7 = _mm512_dpbusd_epi32(a7, x, y);
    a8 = _mm512_dpbusd_epi32(a8, x, y), a9 = _mm512_dpbusd_epi32(a9, x, y);
    a10 = _mm512_dpbusd_epi32(a10, x, y), a11 = _mm512_dpbusd_epi32(a11, x, y);
    a12 = _mm512_dpbusd_epi32(a12, x, y), a13 = _mm512_dpbusd_epi32(a13, x, y);
    a14 = _mm512_dpbusd_epi32(a14, x, y), a15 = _mm512_dpbusd_epi32(a15, x, y);
  }
  __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                               _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
  s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)),
                                           _mm512_add_epi32(_mm512_add_epi32(a12, a13), _mm512_add_epi32(a14, a15))));
  // Lanes 0 and 15 summed in int64: the checksum must not overflow (UBSan).
  return int64_t(_mm512_cvtsi512_si32(s)) + _mm_extract_epi32(_mm512_extracti32x4_epi32(s, 3), 3);
}

}  // namespace mixq
