// A fixed set of workers that spin, then sleep on a condition variable, between jobs. A job hands out item indices
// from an atomic counter; the caller takes items too, then waits until every worker has finished its part of the
// job, so a job's fields are never changed while a worker may still read them.
#include "core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace aep {
namespace {

thread_local bool t_in_job = false;  // inside parallel_for (caller or worker): nested calls run in order

// Spinning keeps the hand-over fast (a condition-variable wake took ~40 us here, longer than many products);
// a worker that found no job for kSpin goes to sleep, so an idle app does not burn a core.
constexpr auto kSpin = std::chrono::microseconds(300);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

class Pool {
 public:
  ~Pool() { resize(0); }

  size_t size() const { return workers_.size(); }

  // Stops all workers, then starts up to n (fewer if the platform refuses).
  void resize(size_t n) {
    std::lock_guard<std::mutex> no_job(job_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    stop_.store(false);
    for (size_t i = 0; i < n; ++i) {
      try {
        workers_.emplace_back([this, g = generation_.load()] { work(g); });
      } catch (const std::system_error&) {
        break;
      }
    }
  }

  void run(size_t n, const std::function<void(size_t)>& fn) {
    std::lock_guard<std::mutex> one_job(job_mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0);
    error_ = nullptr;
    remaining_.store(workers_.size());
    {
      std::lock_guard<std::mutex> lock(mu_);  // a worker about to sleep either sees the new generation or is woken
      generation_.fetch_add(1, std::memory_order_release);
      if (sleeping_ > 0) wake_.notify_all();
    }
    t_in_job = true;
    take_items();
    t_in_job = false;
    while (remaining_.load(std::memory_order_acquire) != 0) cpu_relax();
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void take_items() {
    for (size_t i; (i = next_.fetch_add(1)) < n_;) {
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  // seen: the generation when the worker started (no job runs then).
  void work(uint64_t seen) {
    t_in_job = true;
    for (;;) {
      const auto spin_until = std::chrono::steady_clock::now() + kSpin;
      for (unsigned k = 0; generation_.load(std::memory_order_acquire) == seen && !stop_.load(); ++k) {
        cpu_relax();
        if (k % 256 == 255 && std::chrono::steady_clock::now() > spin_until) {
          std::unique_lock<std::mutex> lock(mu_);
          ++sleeping_;
          wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
          --sleeping_;
        }
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      take_items();
      remaining_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::mutex job_mu_;  // one job at a time, and no resize during one
  std::mutex mu_;      // sleeping_, the condition variable, error_
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<size_t> remaining_{0};  // workers still in the current job
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  size_t sleeping_ = 0;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

size_t max_threads() {
#if defined(__wasm__) && !defined(__wasm_atomics__)
  return 1;  // WebAssembly built without threads (no shared memory): std::thread cannot start
#else
  return 64;
#endif
}

size_t hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

size_t set_thread_count(size_t n) {
  n = std::min(std::max<size_t>(n, 1), max_threads());
  if (n != thread_count()) pool().resize(n - 1);
  return thread_count();
}

size_t thread_count() { return pool().size() + 1; }

void parallel_for_fn(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (n == 1 || t_in_job || pool().size() == 0) {
    std::exception_ptr error;
    for (size_t i = 0; i < n; ++i) {
      try {
        fn(i);
      } catch (...) {
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
  pool().run(n, fn);
}

}  // namespace aep
