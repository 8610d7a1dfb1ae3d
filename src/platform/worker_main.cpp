// Web Worker driver: the page's training host (core/run_host.hpp) in a worker of its own, so that training never
// waits for drawing. web/aep-worker.js hands it the page's orders and MNIST's files and posts its reports back.
#include <emscripten.h>

#include <string>
#include <vector>

#include "core/data.hpp"
#include "core/run_host.hpp"

namespace {

aep::RunHost g_host;
std::string g_reply;
std::vector<uint8_t> g_report;
std::vector<uint8_t> g_staging;  // aep_worker_staging

const char* reply(std::string s) {
  g_reply = std::move(s);
  return g_reply.c_str();
}

}  // namespace

extern "C" {

// An order from the page (App::sync_host); "" or why it was refused (nothing changed then).
EMSCRIPTEN_KEEPALIVE const char* aep_worker_receive(const uint8_t* data, size_t n) {
  try {
    g_host.receive(data, n);  // read in place
    return reply("");
  } catch (const std::exception& e) {
    return reply(e.what());
  }
}

// MNIST's four files as the page fetched them (gzip): the training and test images, given here instead of being copied
// over from the page's engine. The page gives a first part, then the rest (`append`); `complete`: no more will come;
// all_train / all_test: how many images there will be in all (0: unknown).
EMSCRIPTEN_KEEPALIVE const char* aep_worker_mnist(const uint8_t* ti, size_t n_ti, const uint8_t* tl, size_t n_tl,
                                                  const uint8_t* si, size_t n_si, const uint8_t* sl, size_t n_sl,
                                                  int append, int complete, int all_train, int all_test) {
  try {
    const aep::MnistFiles files{{ti, tl, si, sl}, {n_ti, n_tl, n_si, n_sl}};
    if (append) {
      g_host.add_mnist(files);  // the rest: the data is complete after it
    } else {
      aep::Dataset train, test;
      aep::parse_mnist(files, train, test);
      aep::reserve_dataset(train, size_t(all_train > 0 ? all_train : 0));  // room for the rest, where it will stay
      aep::reserve_dataset(test, size_t(all_test > 0 ? all_test : 0));
      g_host.set_data(std::move(train), std::move(test), complete != 0);
    }
    return reply("");
  } catch (const std::exception& e) {
    return reply(e.what());
  }
}

// Room for the rest of MNIST's files (gzip), set aside right after the first part while the heap is still small: the
// rest is copied into it instead of into a new block on top of everything (a wasm heap never shrinks), and once it is
// freed, later allocations reuse it. n = 0 frees it. Returns where to copy (null when n = 0).
EMSCRIPTEN_KEEPALIVE uint8_t* aep_worker_staging(size_t n) {
  std::vector<uint8_t>(n).swap(g_staging);
  return g_staging.data();
}

// Trains for about budget_ms; 1 while there is more to do.
EMSCRIPTEN_KEEPALIVE int aep_worker_work(double budget_ms) {
  try {
    return g_host.work(budget_ms) ? 1 : 0;
  } catch (const std::exception& e) {
    EM_ASM({ postMessage({error : UTF8ToString($0)}); }, e.what());
    return 0;
  }
}

// A report when one is due (see RunHost::report): its size (0: none); its bytes at aep_worker_report_data().
EMSCRIPTEN_KEEPALIVE size_t aep_worker_report(double interval_s) {
  std::vector<uint8_t>().swap(g_report);  // the last one (posted) goes first: the heap holds one report at a time
  g_report = g_host.report(interval_s);
  return g_report.size();
}
EMSCRIPTEN_KEEPALIVE const uint8_t* aep_worker_report_data() { return g_report.data(); }

}  // extern "C"
