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

}  // namespace mixq
