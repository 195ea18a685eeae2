// A growable 64-byte aligned byte buffer (packed panels and per-thread scratch).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

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
      std::free(p_);
      size_t cap = (n + 63) & ~size_t(63);
      p_ = static_cast<uint8_t*>(std::aligned_alloc(64, cap ? cap : 64));
      if (!p_) throw std::bad_alloc();
      cap_ = cap;
    }
    n_ = n;
  }
  template <typename T> T* as() { return reinterpret_cast<T*>(p_); }
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(p_); }
  size_t size() const { return n_; }

 private:
  uint8_t* p_ = nullptr;
  size_t n_ = 0, cap_ = 0;
};

}  // namespace mixq
