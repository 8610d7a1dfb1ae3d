// Desktop driver: a GLFW + OpenGL 3 window around the same App the web page runs.
// Options: --frames N (quit after N frames), --train (start training), --preset NAME, --data DIR,
// --budget MS (training time per frame).
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_opengl3.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "app/app.hpp"
#include "core/idx.hpp"
#include "platform/gl_textures.hpp"

int main(int argc, char** argv) {
  long frames = -1;
  nlohmann::json cmd = nlohmann::json::object();
  std::string data_dir = aep::default_mnist_dir();
  double budget = 20;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--frames" && has_value) frames = std::atol(argv[++i]);
    else if (a == "--train") cmd["train"] = true;
    else if (a == "--preset" && has_value) cmd["preset"] = argv[++i];
    else if (a == "--data" && has_value) data_dir = argv[++i];
    else if (a == "--budget" && has_value) budget = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "usage: aep_desktop [--preset NAME] [--train] [--data DIR] [--frames N] [--budget MS]\n");
      return 2;
    }
  }
  if (!glfwInit()) {
    std::fprintf(stderr, "aep_desktop: cannot initialize GLFW (no display?)\n");
    return 1;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  GLFWwindow* window = glfwCreateWindow(1400, 900, "Autoencoder Playground", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "aep_desktop: cannot create an OpenGL 3.3 window\n");
    return 1;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(1);
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;
  ImGui::StyleColorsDark();
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 330");

  int rc = 0;
  try {
    aep::App app(aep::gl_texture_api());
    app.train_budget_ms = budget;
    try {
      app.set_data(aep::load_mnist(data_dir, true), aep::load_mnist(data_dir, false));
    } catch (const std::exception& e) {
      app.message = std::string("No data: ") + e.what() + " (run scripts/bootstrap.sh)";
    }
    glfwSetWindowUserPointer(window, &app);
    glfwSetDropCallback(window, [](GLFWwindow* w, int n, const char** paths) {
      auto* a = static_cast<aep::App*>(glfwGetWindowUserPointer(w));
      for (int i = 0; i < n; ++i) {
        try {
          a->load_weights_bytes(aep::read_file(paths[i]), paths[i]);
        } catch (const std::exception& e) {
          a->message = std::string("Could not load ") + paths[i] + ": " + e.what();
        }
      }
    });
    nlohmann::json r = app.command(cmd);
    if (!r["ok"].get<bool>()) std::fprintf(stderr, "aep_desktop: %s\n", r.dump().c_str());
    for (long f = 0; !glfwWindowShouldClose(window) && (frames < 0 || f < frames); ++f) {
      glfwPollEvents();
      ImGui_ImplOpenGL3_NewFrame();
      ImGui_ImplGlfw_NewFrame();
      ImGui::NewFrame();
      try {
        app.frame();
      } catch (const std::exception& e) {
        app.message = std::string("Error: ") + e.what();
      }
      ImGui::Render();
      int w, h;
      glfwGetFramebufferSize(window, &w, &h);
      glViewport(0, 0, w, h);
      glClearColor(0.08f, 0.08f, 0.1f, 1.f);
      glClear(GL_COLOR_BUFFER_BIT);
      ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
      glfwSwapBuffers(window);
      if (!app.download_request_name.empty()) {
        // The desktop "download" writes next to the working directory.
        if (std::FILE* f = std::fopen(app.download_request_name.c_str(), "wb")) {
          std::fwrite(app.download_request_bytes.data(), 1, app.download_request_bytes.size(), f);
          std::fclose(f);
          app.message = "Saved " + app.download_request_name;
        }
        app.download_request_name.clear();
      }
      if (app.upload_requested) {
        app.message = "On the desktop, drop a .safetensors file on the window to load it.";
        app.upload_requested = false;
      }
    }
    std::printf("%s\n", app.status().dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aep_desktop: %s\n", e.what());
    rc = 1;
  }
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return rc;
}
