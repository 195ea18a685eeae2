// One parallel_for for the whole core: a persistent pool of (threads - 1) workers plus the caller.
#pragma once
#include <cstdint>
#include <functional>

namespace mixq {

// Number of threads parallel_for may use (default: physical cores).
int get_num_threads();
void set_num_threads(int n);

// Runs fn(task, thread_index) for every task in [0, n_tasks), tasks handed out dynamically.
// Nested calls, and calls while another Python thread holds the pool, run serially in the
// caller, so the core never runs more threads than asked.
void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

// True inside a parallel_for task: a nested parallel_for runs serially in this thread.
bool inside_parallel();

// fn(i0, i1) over [0, n) in chunks of `grain` items (at least 1), in parallel.
template <typename Fn>
void parallel_chunks(int64_t n, int64_t grain, Fn fn) {
  grain = grain < 1 ? 1 : grain;
  const int64_t tasks = (n + grain - 1) / grain;
  if (tasks <= 1) {
    if (n > 0) fn(int64_t(0), n);
    return;
  }
  parallel_for(tasks, [&](int64_t t, int) { fn(t * grain, (t + 1) * grain < n ? (t + 1) * grain : n); });
}

}  // namespace mixq
