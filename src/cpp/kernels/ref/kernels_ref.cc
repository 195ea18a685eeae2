// Portable scalar micro-kernels: the reference every SIMD kernel is tested against, and the path
// that makes mixq run on any CPU.
#include <cstring>
#include <vector>

#include "core/bf16.h"
#include "kernels/kernel_util.h"
#include "kernels/kernels.h"

namespace mixq {

void u8s8s32_gemm_4x32c4__ref(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                              int64_t b_stride, int32_t* c, int64_t ldc, bool accumulate, int64_t seg_steps,
                              int64_t seg_stride, int cols) {
  for (int r = 0; r < mr; ++r)
    for (int n = 0; n < 32 * np; ++n) {
      const int8_t* bp = b + (n / 32) * b_stride + (n % 32) * 4;
      uint32_t s = accumulate ? uint32_t(c[r * ldc + n]) : 0u;  // wraps mod 2^32 like the SIMD paths
      for_each_k_step(k_steps, seg_steps, seg_stride, [&](int64_t p, int64_t off) {
        for (int t = 0; t < 4; ++t) s += uint32_t(int32_t(a[r * lda + off + t]) * int32_t(bp[p * 128 + t]));
      });
      c[r * ldc + n] = int32_t(s);
    }
}

void u8s8u8_gemm_4x32c4__ref(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const int8_t* b,
                             int64_t b_stride, int64_t seg_steps, int64_t seg_stride, int cols, const Epilogue& e,
                             int64_t m, int64_t n) {
  std::vector<int32_t> tile(size_t(mr * 32 * np));
  u8s8s32_gemm_4x32c4__ref(mr, np, k_steps, a, lda, b, b_stride, tile.data(), 32 * np, false, seg_steps, seg_stride,
                           cols);
  for (int r = 0; r < mr; ++r)
    for (int j = 0; j < cols; ++j)
      static_cast<uint8_t*>(e.out)[(m + r) * e.ldo + n + j] = folded_u8_code(e, tile[size_t(r * 32 * np + j)], m + r, n + j);
}

void f32_gemm_4x32__ref(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const float* b,
                        int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for (int r = 0; r < mr; ++r)
    for (int n = 0; n < 32 * np; ++n) {
      const float* bp = b + (n / 32) * b_stride + n % 32;
      float s = accumulate ? c[r * ldc + n] : 0.f;
      for (int64_t k = 0; k < k_steps; ++k) s += a[r * lda + k] * bp[k * 32];
      c[r * ldc + n] = s;
    }
}

void bf16_gemm_4x32c2__ref(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint16_t* b,
                           int64_t b_stride, float* c, int64_t ldc, bool accumulate) {
  for (int r = 0; r < mr; ++r)
    for (int n = 0; n < 32 * np; ++n) {
      const uint16_t* bp = b + (n / 32) * b_stride + (n % 32) * 2;
      float s = accumulate ? c[r * ldc + n] : 0.f;
      for (int64_t k = 0; k < 2 * k_steps; ++k) s += bf16_to_float(a[r * lda + k]) * bf16_to_float(bp[(k / 2) * 64 + k % 2]);
      c[r * ldc + n] = s;
    }
}

// Per step and chunk of 8 columns: the (k0, k1) pairs of the 8 columns, then their (k2, k3) pairs.
void widen_panel_s8__ref(const int8_t* src, int64_t steps, int16_t* dst) {
  for (int64_t p = 0; p < steps; ++p, src += 128, dst += 128)
    for (int v = 0; v < 4; ++v)
      for (int c = 0; c < 8; ++c)
        for (int t = 0; t < 2; ++t) {
          dst[32 * v + 2 * c + t] = src[32 * v + 4 * c + t];
          dst[32 * v + 16 + 2 * c + t] = src[32 * v + 4 * c + 2 + t];
        }
}

}  // namespace mixq

namespace mixq {
namespace {

// Low-bit group block: codes (G/U units of 128 bytes), then 32 bf16 scales, then 32 u8 zero points.
struct GroupTail {
  float scale, zero_point;
};
inline GroupTail group_tail(const uint8_t* block, int64_t codes_bytes, int col) {
  uint16_t s;
  std::memcpy(&s, block + codes_bytes + 2 * col, 2);
  return {bf16_to_float(s), float(block[codes_bytes + 64 + col])};
}

// Code of k step p (within its group), lane q, of column col in a low-bit group block.
template <int BITS>
inline int group_code(const uint8_t* codes, int64_t p, int col, int q) {
  constexpr int U = 8 / BITS;
  return (codes[(p / U) * 128 + col * 4 + q] >> ((p % U) * BITS)) & ((1 << BITS) - 1);
}

template <int BITS>
void lowbit_ref(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b, int64_t b_stride,
                const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  constexpr int U = 8 / BITS;
  const int64_t G = t.group_steps, block = G / U * 128 + 96;  // group block: codes, scales, zero points
  for (int r = 0; r < mr; ++r)
    for (int n = 0; n < 32 * np; ++n) {
      const uint8_t* panel = b + (n / 32) * b_stride;
      const int col = n % 32;
      float f = accumulate ? c[r * ldc + n] : 0.f;
      for (int64_t g = 0; g * G < k_steps; ++g) {
        const uint8_t* codes = panel + g * block;
        uint32_t dot = 0;
        for (int64_t p = 0; p < G; ++p)
          for (int q = 0; q < 4; ++q)
            dot += uint32_t(a[r * lda + 4 * (g * G + p) + q]) * uint32_t(group_code<BITS>(codes, p, col, q));
        const GroupTail tail = group_tail(codes, G / U * 128, col);
        f += tail.scale * float(int32_t(dot));
        f -= tail.scale * tail.zero_point * t.rowsum[r * t.ld_rowsum + g];
      }
      c[r * ldc + n] = f;
    }
}

inline float act_value(float x) { return x; }
inline float act_value(uint16_t x) { return bf16_to_float(x); }

// fp32 activations: dequantized weights; bf16 activations: per group sum of a * (code - zero
// point), then times the scale, as the W4A16 kernels do.
template <int BITS, typename A>
void weight_only_ref(int mr, int np, int64_t k_steps, const A* a, int64_t lda, const uint8_t* b, int64_t b_stride,
                     int64_t G, float* c, int64_t ldc, bool accumulate) {
  constexpr int U = 8 / BITS;
  const int64_t block = G / U * 128 + 96;
  for (int r = 0; r < mr; ++r)
    for (int n = 0; n < 32 * np; ++n) {
      const uint8_t* panel = b + (n / 32) * b_stride;
      const int col = n % 32;
      float f = accumulate ? c[r * ldc + n] : 0.f;
      for (int64_t g = 0; g * G < k_steps; ++g) {
        const uint8_t* codes = panel + g * block;
        const GroupTail tail = group_tail(codes, G / U * 128, col);
        const float s = tail.scale, sz = s * tail.zero_point;
        float dot = 0.f;
        for (int64_t p = 0; p < G; ++p)
          for (int q = 0; q < 4; ++q) {
            const float x = act_value(a[r * lda + 4 * (g * G + p) + q]);
            const int code = group_code<BITS>(codes, p, col, q);
            if constexpr (sizeof(A) == 4)
              f += x * (float(code) * s - sz);
            else
              dot += x * float(code - int(tail.zero_point));
          }
        f += s * dot;
      }
      c[r * ldc + n] = f;
    }
}

}  // namespace

void f32u4f32_gemm_4x32__ref(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const uint8_t* b,
                             int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  weight_only_ref<4>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate);
}

void f32u2f32_gemm_4x32__ref(int mr, int np, int64_t k_steps, const float* a, int64_t lda, const uint8_t* b,
                             int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  weight_only_ref<2>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate);
}

void bf16u4f32_gemm_4x32__ref(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint8_t* b,
                              int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  weight_only_ref<4>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate);
}

void bf16u2f32_gemm_4x32__ref(int mr, int np, int64_t k_steps, const uint16_t* a, int64_t lda, const uint8_t* b,
                              int64_t b_stride, int64_t group_steps, float* c, int64_t ldc, bool accumulate) {
  weight_only_ref<2>(mr, np, k_steps, a, lda, b, b_stride, group_steps, c, ldc, accumulate);
}

void u8u4f32_gemm_4x32__ref(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                            int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  lowbit_ref<4>(mr, np, k_steps, a, lda, b, b_stride, t, c, ldc, accumulate);
}

void u8u2f32_gemm_4x32__ref(int mr, int np, int64_t k_steps, const uint8_t* a, int64_t lda, const uint8_t* b,
                            int64_t b_stride, const LowBitArgs& t, float* c, int64_t ldc, bool accumulate) {
  lowbit_ref<2>(mr, np, k_steps, a, lda, b, b_stride, t, c, ldc, accumulate);
}

}  // namespace mixq
