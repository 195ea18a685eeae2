#include "core/parallel.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/cpu_features.h"

namespace mixq {
namespace {

thread_local bool t_inside_parallel = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Workers spin briefly after a job before sleeping, and the caller spins while waiting for them:
// back-to-back small GEMMs (a network's layers) then pay no sleep/wake latency.
class ThreadPool {
 public:
  static constexpr int kSpinIters = 20000;  // roughly 50-100 us of pause instructions

  explicit ThreadPool(int n_threads) : n_threads_(n_threads) {
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_threads_; }

  void run(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_.store(0);
    error_ = nullptr;
    pending_.store(int(workers_.size()));
    {
      std::lock_guard<std::mutex> lk(mu_);  // no lost wake-up for a worker about to sleep
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work(0);
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < kSpinIters) cpu_relax();
      else std::this_thread::yield();
    }
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work(int thread) {
    t_inside_parallel = true;
    for (;;) {
      int64_t t = next_.fetch_add(1);
      if (t >= n_tasks_) break;
      try {
        (*fn_)(t, thread);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_tasks_);  // stop handing out work
      }
    }
    t_inside_parallel = false;
  }

  void worker_loop(int thread) {
    uint64_t seen = 0;
    for (;;) {
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIters) cpu_relax(), ++spins;
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load() != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;
      work(thread);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  std::exception_ptr error_;
};

std::mutex g_pool_mu;  // one parallel region at a time; also guards resizing
std::unique_ptr<ThreadPool> g_pool;
std::atomic<int> g_num_threads{0};

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load();
  return n > 0 ? n : cpu_features().physical_cores;
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  std::lock_guard<std::mutex> lk(g_pool_mu);
  g_num_threads.store(n);
  if (g_pool && g_pool->size() != n) g_pool.reset();
}

bool inside_parallel() { return t_inside_parallel; }

void parallel_for(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
  int n_threads = get_num_threads();
  std::unique_lock<std::mutex> lk(g_pool_mu, std::defer_lock);
  bool serial = n_tasks <= 1 || n_threads <= 1 || t_inside_parallel || !lk.try_lock();
  if (serial) {
    bool was_inside = t_inside_parallel;
    t_inside_parallel = true;
    struct Restore { bool v; ~Restore() { t_inside_parallel = v; } } restore{was_inside};
    for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
    return;
  }
  if (!g_pool || g_pool->size() != n_threads) g_pool = std::make_unique<ThreadPool>(n_threads);
  g_pool->run(n_tasks, fn);
}

}  // namespace mixq
