// Worker threads for the data-parallel parts of a training step: GEMM column blocks and the optimizer's ranges.
// Every split computes each output exactly as one thread would (the same operations in the same order on the same
// values), so results never depend on the thread count. One thread (no workers) is the default; a WebAssembly
// build without threads support stays at one.
#pragma once
#include <cstddef>
#include <functional>

namespace aep {

// Asks for n threads in all (the caller's included), clamped to [1, max_threads()]. Returns the count now in use,
// which is lower when the platform refused to start a worker. Not to be called from inside parallel_for.
size_t set_thread_count(size_t n);
size_t thread_count();
// The most threads set_thread_count accepts: 64, or 1 where this build cannot start threads.
size_t max_threads();
// The machine's hardware threads (at least 1).
size_t hardware_threads();

// Runs fn(i) for every i in [0, n), spread over the threads (the caller runs some itself), and returns when all
// have finished. Items must not depend on one another. Nested calls, and calls with one thread, run in order on
// the calling thread. An exception thrown by fn is rethrown here (the first one; the other items still run).
void parallel_for_fn(size_t n, const std::function<void(size_t)>& fn);
// The same for any callable, passed by reference (no copy, no allocation for the std::function).
template <class F>
void parallel_for(size_t n, const F& fn) {
  parallel_for_fn(n, std::cref(fn));
}

}  // namespace aep
