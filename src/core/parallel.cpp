// A fixed set of workers that spin, then sleep on a condition variable, between jobs. A job hands out item indices
// from an atomic counter (see next_); the caller takes items too, then waits until every claimed item is done.
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

// next_ holds (job number << 32) | the next item's index; index kClosed: no job open. Items are claimed with a
// compare-and-swap on it, so a late worker can never claim an item of a job that has ended (the job number would
// differ), and the caller never waits for a worker that has not woken: it claims what is left itself and waits
// only for items already running. (Waiting for every worker to check in made the page slower on 2 cores, where
// the browser's own threads kept a woken worker off the CPU for whole time slices.)
constexpr uint64_t kClosed = 0xffffffffu;

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
        workers_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        break;
      }
    }
  }

  void run(size_t n, const std::function<void(size_t)>& fn) {
    std::lock_guard<std::mutex> one_job(job_mu_);
    fn_ = &fn;
    n_.store(n, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    ++job_;
    {
      std::lock_guard<std::mutex> lock(mu_);  // a worker about to sleep either sees the job or is woken
      next_.store(job_ << 32, std::memory_order_release);
      if (sleeping_ > 0) wake_.notify_all();
    }
    t_in_job = true;
    take_items();
    t_in_job = false;
    while (done_.load(std::memory_order_acquire) < n) cpu_relax();
    next_.store(job_ << 32 | kClosed, std::memory_order_release);
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Claims and runs items of the open job until none is left.
  void take_items() {
    for (;;) {
      uint64_t cur = next_.load(std::memory_order_acquire);
      const uint64_t i = cur & kClosed;
      if (i == kClosed || i >= n_.load(std::memory_order_relaxed)) return;
      if (!next_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel)) continue;
      try {
        (*fn_)(size_t(i));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void work() {
    t_in_job = true;
    uint64_t last = next_.load() >> 32;  // the newest job this worker has taken part in (or seen)
    auto open = [&] {
      const uint64_t cur = next_.load(std::memory_order_acquire);
      return (cur & kClosed) != kClosed && cur >> 32 != last;
    };
    for (;;) {
      const auto spin_until = std::chrono::steady_clock::now() + kSpin;
      for (unsigned k = 0; !open() && !stop_.load(); ++k) {
        cpu_relax();
        if (k % 256 == 255 && std::chrono::steady_clock::now() > spin_until) {
          std::unique_lock<std::mutex> lock(mu_);
          ++sleeping_;
          wake_.wait(lock, [&] { return stop_.load() || open(); });
          --sleeping_;
        }
      }
      if (stop_.load()) return;
      last = next_.load(std::memory_order_acquire) >> 32;
      take_items();
    }
  }

  std::mutex job_mu_;  // one job at a time, and no resize during one
  std::mutex mu_;      // sleeping_, the condition variable, error_
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  const std::function<void(size_t)>* fn_ = nullptr;
  std::atomic<size_t> n_{0};
  std::atomic<uint64_t> next_{kClosed};
  std::atomic<size_t> done_{0};
  uint64_t job_ = 0;
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
