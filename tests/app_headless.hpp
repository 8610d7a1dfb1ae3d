// The playground driven headless for tests: ImGui with no window (DisplaySize set, NewFrame/Render, nothing drawn),
// the real MNIST, and the same App the web page and desktop window run.
#pragma once
#include <imgui.h>

#include <memory>
#include <string>
#include <vector>

#include "app/app.hpp"
#include "core/data.hpp"
#include "core/run_host.hpp"

namespace aep::testing {

// A training host in the test's own thread: orders go straight in, and each frame trains a slice and hands the report
// back, as the page's worker does between the page's frames.
struct LoopbackHost : App::HostLink {
  RunHost host;
  void send(std::vector<uint8_t> order) override { host.receive(order); }
  void pump(App& app, double budget_ms = 5) {
    host.work(budget_ms);
    const std::vector<uint8_t> r = host.report(0);
    if (!r.empty()) app.host_report(r);
  }
};

// A driver that keeps what the app asked of it, for the test to look at.
struct RecordingDriver : Driver {
  std::string download_name;
  std::vector<uint8_t> download_bytes;
  int open_file_calls = 0, fashion_calls = 0;
  std::string link;
  void download(const std::string& name, const std::vector<uint8_t>& bytes) override {
    download_name = name;
    download_bytes = bytes;
  }
  void open_file() override { ++open_file_calls; }
  void copy_link(const std::string& query) override { link = query; }
  void load_fashion() override { ++fashion_calls; }
};

// One ImGui context per test case, with a built font atlas so NewFrame works without a renderer.
struct Headless {
  Headless() {
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;
    io.DisplaySize = ImVec2(1400, 900);
    io.DeltaTime = 1.f / 60;
    unsigned char* px;
    int w, h;
    io.Fonts->GetTexDataAsRGBA32(&px, &w, &h);
  }
  ~Headless() { ImGui::DestroyContext(); }
  LoopbackHost* host = nullptr;  // trains the app's runs between frames when set
  void frame(App& app) {
    if (host) host->pump(app);
    ImGui::NewFrame();
    app.frame();
    ImGui::Render();
  }
  void press_space(App& app) {
    ImGui::GetIO().AddKeyEvent(ImGuiKey_Space, true);
    frame(app);
    ImGui::GetIO().AddKeyEvent(ImGuiKey_Space, false);
    frame(app);
  }
};

inline const Dataset& app_mnist(bool train) {
  static Dataset tr = load_mnist(default_mnist_dir(), true), te = load_mnist(default_mnist_dir(), false);
  return train ? tr : te;
}

inline std::unique_ptr<App> make_app(LoopbackHost* host = nullptr, Driver* driver = nullptr) {
  auto app = std::make_unique<App>(TextureApi{}, driver);
  if (host) app->attach_host(host);
  app->view_images = 400;  // fewer than the page's 2000/1000: the suite also runs under the sanitizers
  app->eval_images = 400;
  app->main_share = 1;  // headless frames are not paced by a display: the views' share of them is not metered
  app->set_data(app_mnist(true), app_mnist(false));
  return app;
}

}  // namespace aep::testing
