// Desktop driver: a GLFW + OpenGL 3 window around the same App the web page runs.
// Options: --frames N (quit after N frames), --train (start training), --preset NAME, --data DIR,
// --budget MS (training time per frame with --in-frames), --screenshot FILE.png (the window's last frame, for tests),
// --in-frames (train between frames instead of on the training thread).
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_opengl3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "app/app.hpp"
#include "core/idx.hpp"
#include "core/parallel.hpp"
#include "core/run_host.hpp"
#include "platform/gl_textures.hpp"

namespace {

// Resident set size from /proc (Linux); 0 elsewhere.
uint64_t resident_bytes() {
  unsigned long long pages_total = 0, pages_resident = 0;
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  int got = std::fscanf(f, "%llu %llu", &pages_total, &pages_resident);
  std::fclose(f);
  return got == 2 ? uint64_t(pages_resident) * uint64_t(sysconf(_SC_PAGESIZE)) : 0;
}

// A PNG of RGB rows, bottom-up as glReadPixels gives them, with stored (uncompressed) deflate blocks: no zlib needed.
bool write_png(const char* path, int w, int h, const std::vector<uint8_t>& rgb) {
  std::vector<uint8_t> raw;  // filter byte 0 + row, top row first
  for (int y = h - 1; y >= 0; --y) {
    raw.push_back(0);
    raw.insert(raw.end(), rgb.begin() + size_t(y) * w * 3, rgb.begin() + size_t(y + 1) * w * 3);
  }
  std::vector<uint8_t> z = {0x78, 0x01};
  for (size_t pos = 0; pos < raw.size() || pos == 0;) {
    size_t n = std::min<size_t>(65535, raw.size() - pos);
    z.push_back(pos + n == raw.size() ? 1 : 0);
    z.push_back(uint8_t(n)), z.push_back(uint8_t(n >> 8)), z.push_back(uint8_t(~n)), z.push_back(uint8_t(~n >> 8));
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + n);
    pos += n;
    if (n == 0) break;
  }
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  for (int i = 3; i >= 0; --i) z.push_back(uint8_t(((b << 16) | a) >> (8 * i)));
  auto crc = [](const uint8_t* p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
  };
  std::FILE* f = std::fopen(path, "wb");
  if (!f) return false;
  auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> c(type, type + 4);
    c.insert(c.end(), data.begin(), data.end());
    uint8_t len[4] = {uint8_t(data.size() >> 24), uint8_t(data.size() >> 16), uint8_t(data.size() >> 8), uint8_t(data.size())};
    uint32_t k = crc(c.data(), c.size());
    uint8_t kc[4] = {uint8_t(k >> 24), uint8_t(k >> 16), uint8_t(k >> 8), uint8_t(k)};
    std::fwrite(len, 1, 4, f);
    std::fwrite(c.data(), 1, c.size(), f);
    std::fwrite(kc, 1, 4, f);
  };
  const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::fwrite(sig, 1, 8, f);
  std::vector<uint8_t> ihdr = {uint8_t(w >> 24), uint8_t(w >> 16), uint8_t(w >> 8), uint8_t(w),
                               uint8_t(h >> 24), uint8_t(h >> 16), uint8_t(h >> 8), uint8_t(h), 8, 2, 0, 0, 0};
  chunk("IHDR", ihdr);
  chunk("IDAT", z);
  chunk("IEND", {});
  return std::fclose(f) == 0;
}

// Training on a thread of its own (core/run_host.hpp), the design of the page's Web Worker: the app's orders in one
// queue, the host's reports back in another, handed to the app between frames.
class ThreadHost : public aep::App::HostLink {
 public:
  ThreadHost() : thread_([this] { loop(); }) {}
  ~ThreadHost() {
    {
      std::lock_guard<std::mutex> l(mu_);
      quit_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void send(std::vector<uint8_t> order) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      orders_.push_back(std::move(order));
    }
    wake_.notify_one();
  }
  void deliver(aep::App& app) {
    std::vector<std::vector<uint8_t>> reports;
    std::string error;
    {
      std::lock_guard<std::mutex> l(mu_);
      reports.swap(reports_);
      error.swap(error_);
    }
    if (!error.empty()) app.message = "The training thread refused an order: " + error;
    for (const auto& r : reports) {
      try {
        app.host_report(r);
      } catch (const std::exception& e) {
        app.message = std::string("The training thread's report was refused: ") + e.what();
      }
    }
  }

 private:
  aep::RunHost host_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::vector<uint8_t>> orders_, reports_;
  std::string error_;
  bool quit_ = false;
  std::thread thread_;  // last: starts once the rest is built

  void loop() {
    bool busy = false;
    for (;;) {
      std::vector<std::vector<uint8_t>> orders;
      {
        std::unique_lock<std::mutex> l(mu_);
        if (!busy) wake_.wait(l, [&] { return quit_ || !orders_.empty(); });
        if (quit_) return;
        orders.swap(orders_);
      }
      for (const auto& o : orders) {
        try {
          host_.receive(o);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> l(mu_);
          error_ = e.what();
        }
      }
      try {
        busy = host_.work(40);
      } catch (const std::exception& e) {
        busy = false;
        std::lock_guard<std::mutex> l(mu_);
        error_ = e.what();
      }
      std::vector<uint8_t> r = host_.report(0.1);
      if (!r.empty()) {
        std::lock_guard<std::mutex> l(mu_);
        reports_.push_back(std::move(r));
      }
    }
  }
};

// What the app asks of the desktop: a "download" is a file in the working directory, the link goes to the
// clipboard, files are dropped on the window, Fashion-MNIST comes from Debian's dataset-fashion-mnist (read after
// the frame that asked).
struct DesktopDriver : aep::Driver {
  aep::App* app = nullptr;
  bool fashion_wanted = false;
  void download(const std::string& name, const std::vector<uint8_t>& bytes) override {
    std::FILE* f = std::fopen(name.c_str(), "wb");
    bool ok = f && std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    if (f) ok = std::fclose(f) == 0 && ok;
    app->message = ok ? "Saved " + name : "Could not write " + name + ": " + std::strerror(errno);
  }
  void open_file() override {
    app->message = "On the desktop, drop the file on the window: a .safetensors weights file or an IDX data file.";
  }
  void copy_link(const std::string& query) override {
    ImGui::SetClipboardText(query.c_str());
    app->message = "Copied the settings as URL parameters: ?" + query;
  }
  void load_fashion() override { fashion_wanted = true; }
};

}  // namespace

int main(int argc, char** argv) {
  long frames = -1;
  std::string screenshot;
  nlohmann::json cmd = nlohmann::json::object();
  std::string data_dir = aep::default_mnist_dir();
  double budget = 20;
  long threads = long(aep::hardware_threads());
  bool in_frames = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--frames" && has_value) frames = std::atol(argv[++i]);
    else if (a == "--train") cmd["train"] = true;
    else if (a == "--preset" && has_value) cmd["preset"] = argv[++i];
    else if (a == "--lesson" && has_value) cmd["lesson"] = argv[++i];
    else if (a == "--lesson-action") cmd["lessonAction"] = true;
    else if (a == "--data" && has_value) data_dir = argv[++i];
    else if (a == "--budget" && has_value) budget = std::atof(argv[++i]);
    else if (a == "--screenshot" && has_value) screenshot = argv[++i];
    else if (a == "--threads" && has_value) threads = std::atol(argv[++i]);
    else if (a == "--in-frames") in_frames = true;
    else {
      std::fprintf(stderr, "usage: aep_desktop [--preset NAME | --lesson ID [--lesson-action]] [--train] [--data DIR] [--frames N] [--budget MS] "
                           "[--screenshot FILE.png] [--threads T (default: all hardware threads)] [--in-frames]\n");
      return 2;
    }
  }
  aep::set_thread_count(size_t(std::max(1L, threads)));  // GEMM and Adam on worker threads: same results, faster
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
    ThreadHost trainer;  // outlives the app, which sends it orders
    DesktopDriver driver;
    aep::App app(aep::gl_texture_api(), &driver);
    driver.app = &app;
    app.train_budget_ms = budget;
    if (!in_frames) app.attach_host(&trainer);
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
          std::string path = paths[i];
          bool weights = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
          if (weights) a->load_weights_bytes(aep::read_file(path), path);
          else a->load_data_file(aep::read_file(path), path);
        } catch (const std::exception& e) {
          a->message = std::string("Could not load ") + paths[i] + ": " + e.what();
        }
      }
    });
    if (cmd.empty() && frames < 0) cmd["lessonPicker"] = true;  // a plain start opens on the lessons
    nlohmann::json r = app.command(cmd);
    if (!r["ok"].get<bool>()) std::fprintf(stderr, "aep_desktop: %s\n", r.dump().c_str());
    for (long f = 0; !glfwWindowShouldClose(window) && (frames < 0 || f < frames); ++f) {
      double t0 = glfwGetTime();
      glfwPollEvents();
      trainer.deliver(app);
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
      if (!screenshot.empty() && frames >= 0 && f == frames - 1) {
        std::vector<uint8_t> rgb(size_t(w) * h * 3);
        glPixelStorei(GL_PACK_ALIGNMENT, 1);
        glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, rgb.data());
        if (!write_png(screenshot.c_str(), w, h, rgb)) std::fprintf(stderr, "aep_desktop: cannot write %s\n", screenshot.c_str());
      }
      app.record_frame_time((glfwGetTime() - t0) * 1000);
      if (f % 30 == 0) app.memory_bytes = resident_bytes();
      glfwSwapBuffers(window);
      if (driver.fashion_wanted) {  // loaded between frames, not inside the panel that asked
        driver.fashion_wanted = false;
        const char* dir = "/usr/share/datasets/fashion-mnist";  // Debian's dataset-fashion-mnist
        try {
          app.set_ood(aep::load_mnist(dir, false));
        } catch (const std::exception& e) {
          app.message = std::string("Fashion-MNIST: ") + e.what() + " (apt-get install dataset-fashion-mnist)";
        }
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
