// Worker threads: parallel_for runs every item once, and the thread count never changes a result (GEMM blocks,
// Adam ranges, whole training steps). In a WebAssembly build without threads the pool stays at one thread and the
// comparisons hold trivially.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/gemm.hpp"
#include "core/optim.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"

using namespace aep;

namespace {
// Sets the thread count for a scope, and back to 1 after.
struct Threads {
  explicit Threads(size_t n) { set_thread_count(n); }
  ~Threads() { set_thread_count(1); }
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
}  // namespace

TEST_CASE("parallel_for runs each item exactly once, nests, and passes an exception on") {
  for (size_t threads : {1, 3}) {
    Threads t(threads);
    CHECK(thread_count() == std::min(threads, max_threads()));
    for (size_t n : {0, 1, 2, 5, 100}) {
      std::vector<std::atomic<int>> hits(n);
      parallel_for(n, [&](size_t i) { hits[i]++; });
      for (size_t i = 0; i < n; ++i) CHECK(hits[i] == 1);
    }
    std::vector<std::atomic<int>> hits(12);
    parallel_for(3, [&](size_t i) { parallel_for(4, [&](size_t j) { hits[i * 4 + j]++; }); });
    for (auto& h : hits) CHECK(h == 1);
    std::atomic<int> ran{0};
    CHECK_THROWS_WITH(parallel_for(8,
                                   [&](size_t i) {
                                     ran++;
                                     if (i == 3) throw std::runtime_error("item 3 failed");
                                   }),
                      "item 3 failed");
    CHECK(ran == 8);
    parallel_for(4, [&](size_t) { ran++; });  // the pool still works after an exception
    CHECK(ran == 12);
  }
  CHECK(set_thread_count(0) == 1);
  CHECK(set_thread_count(1000) == max_threads());
  set_thread_count(1);
}

TEST_CASE("gemm gives the same bits on 1 and 3 threads, every orientation and beta") {
  Rng rng(31);
  struct Shape {
    size_t M, N, K;
  };
  for (Shape s : {Shape{64, 784, 256}, Shape{256, 64, 784}, Shape{97, 301, 129}, Shape{5, 2000, 40}}) {
    for (int variant = 0; variant < 8; ++variant) {
      const bool ta = variant & 1, tb = variant & 2, tc = variant & 4;
      std::vector<float> A(s.M * s.K), B(s.K * s.N), C0(s.M * s.N);
      for (float& v : A) v = rng.uniform(-1, 1);
      for (float& v : B) v = rng.uniform(-1, 1);
      for (float& v : C0) v = rng.uniform(-1, 1);
      const size_t lda = ta ? s.M : s.K, ldb = tb ? s.K : s.N;
      for (float beta : {0.f, 1.f}) {
        std::vector<float> C[2] = {C0, C0};
        for (int r = 0; r < 2; ++r) {
          Threads t(r == 0 ? 1 : 3);
          if (tc)
            gemm_transposed_c(ta, tb, s.M, s.N, s.K, 0.5f, A.data(), lda, B.data(), ldb, beta, C[r].data(), s.M);
          else
            gemm(ta, tb, s.M, s.N, s.K, 0.5f, A.data(), lda, B.data(), ldb, beta, C[r].data(), s.N);
        }
        INFO("M " << s.M << " N " << s.N << " K " << s.K << " variant " << variant << " beta " << beta);
        CHECK(same_bits(C[0], C[1]));
      }
    }
  }
}

TEST_CASE("Adam gives the same bits on 1 and 3 threads, and refuses the same steps") {
  const size_t n = 300001;  // several ranges per thread natively, and a scalar tail
  Rng rng(32);
  std::vector<float> p0(n), g(n);
  for (float& v : p0) v = rng.uniform(-1, 1);
  OptimizerConfig c;  // Adam
  std::vector<float> p[2] = {p0, p0};
  std::vector<float> m[2], v[2];
  for (int r = 0; r < 2; ++r) {
    Threads t(r == 0 ? 1 : 3);
    Optimizer o(c, n);
    Rng gr(33);
    for (int step = 0; step < 4; ++step) {
      for (size_t i = 0; i < n; ++i) g[i] = gr.uniform(-1, 1) * (i % 7 == 0 ? 0.f : 1e-3f);
      CHECK(o.try_step(p[r].data(), g.data()));
    }
    g[n / 2] = std::nanf("");  // a NaN gradient in the middle of a range: refused, nothing written
    std::vector<float> before = p[r];
    CHECK_FALSE(o.try_step(p[r].data(), g.data()));
    CHECK(same_bits(before, p[r]));
    m[r] = o.exp_avg;
    v[r] = o.exp_avg_sq;
  }
  CHECK(same_bits(p[0], p[1]));
  CHECK(same_bits(m[0], m[1]));
  CHECK(same_bits(v[0], v[1]));
}
