// A growable 64-byte aligned byte buffer (packed panels and per-thread scratch).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace mixq {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : p_(o.p_), n_(o.n_), cap_(o.cap_) { o.p_ = nullptr, o.n_ = o.cap_ = 0; }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(p_, o.p_), std::swap(n_, o.n_), std::swap(cap_, o.cap_);
    return *this;
  }
  ~AlignedBuffer() { std::free(p_); }

  // Contents are not preserved when the buffer grows.
  void resize(size_t n) {
    if (n > cap_) {
      // Free first (no old + new peak); if the allocation fails the buffer is empty, never a
      // null pointer with the old capacity that the next resize would trust.
      std::free(p_);
      p_ = nullptr, n_ = cap_ = 0;
      // Buffers of 2 MiB and more sit on whole 2 MiB pages and ask for transparent huge pages:
      // weights streamed from DRAM then cost one TLB entry per 2 MiB instead of 512 (a plain
      // streaming read +25 %; mixq GEMV at 11008 x 4096 +2-8 %, alternating processes).
      const size_t align = n >= kHugePage ? kHugePage : 64;
      size_t cap = (n + align - 1) & ~(align - 1);
      p_ = static_cast<uint8_t*>(std::aligned_alloc(align, cap ? cap : 64));
      if (!p_) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      if (align == kHugePage) madvise(p_, cap, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
      cap_ = cap;
    }
    n_ = n;
  }
  template <typename T> T* as() { return reinterpret_cast<T*>(p_); }
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(p_); }
  size_t size() const { return n_; }

 private:
  static constexpr size_t kHugePage = size_t(2) << 20;
  uint8_t* p_ = nullptr;
  size_t n_ = 0, cap_ = 0;
};

// The next n elements of T from p, which moves on to the next 64-byte boundary: consecutive
// aligned slices of one buffer (a plan's scratch carved into its parts).
template <typename T>
T* carve(uint8_t*& p, int64_t n) {
  T* out = reinterpret_cast<T*>(p);
  p += (n * int64_t(sizeof(T)) + 63) / 64 * 64;
  return out;
}

}  // namespace mixq
