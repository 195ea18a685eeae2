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

// A parallel region. Shared with the workers that join it, so one that wakes after the caller
// has returned finds no task left instead of a dead stack frame.
struct Job {
  const std::function<void(int64_t, int)>* fn;
  int64_t n_tasks;
  std::atomic<int64_t> next{0};  // next task to hand out
  std::atomic<int64_t> done{0};  // tasks finished (or skipped after an error)
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  std::exception_ptr error;
};

// Workers spin briefly after a job before sleeping, and the caller spins while waiting for them:
// back-to-back small GEMMs (a network's layers) then pay no sleep/wake latency. The caller waits
// for the tasks, not for the workers: a worker that is not running when a region starts (its core
// taken by another process) leaves its share to the caller instead of stalling the region until
// the scheduler runs it again (ResNet-20 at batch 1 took 100x longer with one core busy).
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
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n_tasks = n_tasks;
    {
      std::lock_guard<std::mutex> lk(mu_);  // no lost wake-up for a worker about to sleep
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work(*job, 0);
    for (int spins = 0; job->done.load(std::memory_order_acquire) != n_tasks; ++spins) {
      if (spins < kSpinIters) cpu_relax();
      else std::this_thread::yield();
    }
    if (job->error) std::rethrow_exception(job->error);
  }

 private:
  static void work(Job& job, int thread) {
    t_inside_parallel = true;
    for (;;) {
      const int64_t t = job.next.fetch_add(1, std::memory_order_relaxed);
      if (t >= job.n_tasks) break;
      if (!job.failed.load(std::memory_order_relaxed)) {
        try {
          (*job.fn)(t, thread);
        } catch (...) {
          std::lock_guard<std::mutex> lk(job.error_mu);
          if (!job.error) job.error = std::current_exception();
          job.failed.store(true);  // the remaining tasks are skipped, but still counted
        }
      }
      job.done.fetch_add(1, std::memory_order_release);
    }
    t_inside_parallel = false;
  }

  void worker_loop(int thread) {
    uint64_t seen = 0;
    for (;;) {
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIters) cpu_relax(), ++spins;
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        if (stop_) return;
        job = job_;
      }
      work(*job, thread);
    }
  }

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Job> job_;  // the latest region (guarded by mu_)
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
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
