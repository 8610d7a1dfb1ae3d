// The playground driven headless for tests: ImGui with no window (DisplaySize set, NewFrame/Render, nothing drawn),
// the real MNIST, and the same App the web page and desktop window run.
#pragma once
#include <imgui.h>

#include <memory>

#include "app/app.hpp"
#include "core/data.hpp"

namespace aep::testing {

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
  void frame(App& app) {
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

inline std::unique_ptr<App> make_app() {
  auto app = std::make_unique<App>();
  app->view_images = 400;  // fewer than the page's 2000/1000: the suite also runs under the sanitizers
  app->eval_images = 400;
  app->set_data(app_mnist(true), app_mnist(false));
  return app;
}

}  // namespace aep::testing
