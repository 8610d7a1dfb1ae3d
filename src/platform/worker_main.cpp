// Web Worker driver: the page's training host (core/run_host.hpp) in a worker of its own, so that training never
// waits for drawing. web/aep-worker.js hands it the page's orders and MNIST's files and posts its reports back.
#include <emscripten.h>

#include <string>
#include <vector>

#include "core/data.hpp"
#include "core/idx.hpp"
#include "core/run_host.hpp"

namespace {

aep::RunHost g_host;
std::string g_reply;
std::vector<uint8_t> g_report;

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

// MNIST's four files as the page fetched them (gzip): the training and test images, given here once instead of being
// copied over from the page's engine.
EMSCRIPTEN_KEEPALIVE const char* aep_worker_mnist(const uint8_t* ti, size_t n_ti, const uint8_t* tl, size_t n_tl,
                                                  const uint8_t* si, size_t n_si, const uint8_t* sl, size_t n_sl) {
  try {
    using namespace aep;
    Dataset train = make_dataset(parse_idx_images(ti, n_ti, "train-images-idx3-ubyte.gz"),
                                 parse_idx_labels(tl, n_tl, "train-labels-idx1-ubyte.gz"), "train-images-idx3-ubyte.gz",
                                 "train-labels-idx1-ubyte.gz", "train");
    Dataset test = make_dataset(parse_idx_images(si, n_si, "t10k-images-idx3-ubyte.gz"),
                                parse_idx_labels(sl, n_sl, "t10k-labels-idx1-ubyte.gz"), "t10k-images-idx3-ubyte.gz",
                                "t10k-labels-idx1-ubyte.gz", "test");
    g_host.set_data(std::move(train), std::move(test));
    return reply("");
  } catch (const std::exception& e) {
    return reply(e.what());
  }
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
