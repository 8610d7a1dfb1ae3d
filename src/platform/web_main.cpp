// Web driver: GLFW on a WebGL2 canvas, the Emscripten main loop, and the C functions the page calls
// (web/aep.js): data bytes, weights, the JS API's commands and status.
#include <GLES3/gl3.h>
#include <GLFW/glfw3.h>
#include <emscripten.h>
#include <emscripten/heap.h>
#include <emscripten/html5.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

#include "app/app.hpp"
#include "core/idx.hpp"
#include "core/parallel.hpp"
#include "platform/gl_textures.hpp"
#include "platform/webgl_renderer.hpp"

namespace {

GLFWwindow* g_window = nullptr;
std::unique_ptr<aep::App> g_app;
std::string g_reply;  // the string the last exported call returned; valid until the next call
std::vector<uint8_t> g_staging;  // aep_staging

const char* reply(std::string s) {
  g_reply = std::move(s);
  return g_reply.c_str();
}

// The canvas fills the page: its drawing buffer follows its CSS size times the device pixel ratio (sharp on
// high-DPI screens); ImGui works in those pixels (GLFW reports the mouse in them too) with scaled-up sizes.
int g_width = 0, g_height = 0;
void fit_canvas() {
  double w = 0, h = 0;
  emscripten_get_element_css_size("#canvas", &w, &h);
  double dpr = emscripten_get_device_pixel_ratio();
  int pw = std::max(1, int(w * dpr + 0.5)), ph = std::max(1, int(h * dpr + 0.5));
  int cw = 0, ch = 0;
  emscripten_get_canvas_element_size("#canvas", &cw, &ch);
  if (pw != cw || ph != ch) emscripten_set_canvas_element_size("#canvas", pw, ph);
  g_width = pw, g_height = ph;
}

void main_loop() {
  double t0 = emscripten_get_now();
  fit_canvas();
  glfwPollEvents();
  ImGui_ImplGlfw_NewFrame();
  ImGuiIO& io = ImGui::GetIO();
  io.DisplaySize = ImVec2(float(g_width), float(g_height));
  io.DisplayFramebufferScale = ImVec2(1, 1);
  ImGui::NewFrame();
  try {
    g_app->frame();
  } catch (const std::exception& e) {
    g_app->message = std::string("Error: ") + e.what();
  }
  ImGui::Render();
  const double app_ms = emscripten_get_now() - t0;
  aep::webgl_renderer_render(ImGui::GetDrawData(), g_width, g_height, ImVec4(0.08f, 0.08f, 0.1f, 1.f));
  g_app->record_frame_time(emscripten_get_now() - t0, app_ms);
  g_app->memory_bytes = emscripten_get_heap_size();
}

// What the app asks of the page: web/aep.js does each (a download, the file picker, the clipboard, a fetch).
struct WebDriver : aep::Driver {
  void download(const std::string& name, const std::vector<uint8_t>& b) override {
    EM_ASM({ Module.aepDownload(HEAPU8.slice($0, $0 + $1), UTF8ToString($2)); }, b.data(), b.size(), name.c_str());
  }
  void open_file() override { EM_ASM({ Module.aepOpenFile(); }); }
  void copy_link(const std::string& query) override { EM_ASM({ Module.aepCopyLink(UTF8ToString($0)); }, query.c_str()); }
  void load_fashion() override { EM_ASM({ Module.aepLoadOod(); }); }
} g_driver;

// The app's pictures: OpenGL textures, and the renderer learns which changed (it redraws only what changed).
void (*g_gl_update)(ImTextureID, int, int, const uint8_t*) = nullptr;
void update_texture(ImTextureID tex, int w, int h, const uint8_t* rgba) {
  g_gl_update(tex, w, h, rgba);
  aep::webgl_renderer_texture_changed(tex);
}
aep::TextureApi texture_api() {
  aep::TextureApi api = aep::gl_texture_api();
  g_gl_update = api.update;
  api.update = update_texture;
  return api;
}

// Training in the page's worker (web/aep-worker.js): the app's orders go there as bytes, its reports come back through
// aep_host_report.
struct WorkerLink : aep::App::HostLink {
  void send(std::vector<uint8_t> order) override {
    EM_ASM({ Module.aepWorkerSend(HEAPU8.slice($0, $0 + $1)); }, order.data(), order.size());
  }
};
WorkerLink g_worker_link;
bool g_worker = false;

// A file the user dropped or picked, handed to `load` (an App member); "" or the error, which also goes to the
// status bar. On error the App changes nothing.
const char* load_file(void (aep::App::*load)(const std::vector<uint8_t>&, const std::string&), const uint8_t* data,
                      size_t n, const char* name) {
  try {
    (g_app.get()->*load)(std::vector<uint8_t>(data, data + n), name);
    return reply("");
  } catch (const std::exception& e) {
    g_app->message = std::string("Could not load ") + name + ": " + e.what();
    return reply(g_app->message);
  }
}

}  // namespace

extern "C" {

// The four MNIST files (raw or gzip) as bytes; returns "" or the error. The page frees the buffers. `complete` 0: a
// first part, the rest comes through aep_add_data; all_train / all_test: how many images there will be (0: unknown).
EMSCRIPTEN_KEEPALIVE const char* aep_set_data(const uint8_t* train_images, size_t n_ti, const uint8_t* train_labels,
                                              size_t n_tl, const uint8_t* test_images, size_t n_si,
                                              const uint8_t* test_labels, size_t n_sl, int complete,
                                              int all_train, int all_test) {
  try {
    aep::Dataset train, test;
    aep::parse_mnist({{train_images, train_labels, test_images, test_labels}, {n_ti, n_tl, n_si, n_sl}}, train, test);
    aep::reserve_dataset(train, size_t(std::max(0, all_train)));  // room for the rest (data/parts.json's totals)
    aep::reserve_dataset(test, size_t(std::max(0, all_test)));
    g_app->set_data(std::move(train), std::move(test), complete != 0);
    if (g_worker) g_app->host_has_data();  // the page gives the worker the same files
    if (g_worker) g_app->send_to_host();  // the runs and a train order (autostart) go now, not at the next frame
    return reply("");
  } catch (const std::exception& e) {
    g_app->message = e.what();
    return reply(e.what());
  }
}

// The rest of MNIST (the same four files' remaining images), training going on; "" or why not (nothing changed then,
// and the page does not give it to the worker either).
EMSCRIPTEN_KEEPALIVE const char* aep_add_data(const uint8_t* train_images, size_t n_ti, const uint8_t* train_labels,
                                              size_t n_tl, const uint8_t* test_images, size_t n_si,
                                              const uint8_t* test_labels, size_t n_sl) {
  try {
    g_app->add_mnist({{train_images, train_labels, test_images, test_labels}, {n_ti, n_tl, n_si, n_sl}});
    if (g_worker) g_app->host_has_data();  // the page gives the worker the same files, right after this call
    return reply("");
  } catch (const std::exception& e) {
    return reply(e.what());
  }
}

// Room for the rest of MNIST's files (gzip), set aside right after the first part while the heap is still small: the
// rest is copied into it instead of into a new block on top of everything (a wasm heap never shrinks), and once it is
// freed, later allocations reuse it. n = 0 frees it. Returns where to copy (null when n = 0).
EMSCRIPTEN_KEEPALIVE uint8_t* aep_staging(size_t n) {
  std::vector<uint8_t>(n).swap(g_staging);
  return g_staging.data();
}

// Fashion-MNIST test images and labels (gzip), for the anomaly panel's out-of-distribution mode.
EMSCRIPTEN_KEEPALIVE const char* aep_set_ood(const uint8_t* images, size_t n_images, const uint8_t* labels, size_t n_labels) {
  try {
    using namespace aep;
    g_app->set_ood(make_dataset(parse_idx_images(images, n_images, "fashion-t10k-images-idx3-ubyte.gz"),
                                parse_idx_labels(labels, n_labels, "fashion-t10k-labels-idx1-ubyte.gz"),
                                "fashion-t10k-images-idx3-ubyte.gz", "fashion-t10k-labels-idx1-ubyte.gz", "fashion"));
    return reply("");
  } catch (const std::exception& e) {
    g_app->message = std::string("Fashion-MNIST: ") + e.what();
    return reply(e.what());
  }
}

EMSCRIPTEN_KEEPALIVE void aep_set_loading(const char* text) { g_app->set_status_line(text); }

// A weights file the user dropped or picked; returns "" or the error (the current model is kept on error).
EMSCRIPTEN_KEEPALIVE const char* aep_load_weights(const uint8_t* data, size_t n, const char* name) {
  return load_file(&aep::App::load_weights_bytes, data, n, name);
}

// A user's IDX file (images or labels, raw or gzip); returns "" or the error (nothing changes on error).
EMSCRIPTEN_KEEPALIVE const char* aep_load_data_file(const uint8_t* data, size_t n, const char* name) {
  return load_file(&aep::App::load_data_file, data, n, name);
}

// JSON in, JSON out: {"preset": "vae-mlp", "lr": 0.001, "train": true} -> {"ok": true} or {"ok": false, "errors": [...]}.
EMSCRIPTEN_KEEPALIVE const char* aep_command(const char* json_text) {
  try {
    // A command is a flat object, or holds a lesson (lessonJson: a model inline, its layers' arguments): refuse deeper
    // nesting before it can exhaust the stack.
    auto shallow = [](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
      if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
          depth >= 12)
        throw std::runtime_error("a command nests at most 12 levels deep (a lesson with its model inline needs 7); this one nests deeper");
      return true;
    };
    return reply(g_app->command(nlohmann::json::parse(json_text, shallow)).dump());
  } catch (const std::exception& e) {
    return reply(nlohmann::json{{"ok", false}, {"errors", {std::string("bad command: ") + e.what()}}}.dump());
  }
}

// A notice for the status bar (e.g. URL parameters that were refused).
EMSCRIPTEN_KEEPALIVE void aep_notice(const char* text) { g_app->message = text; }

// The session for the page's autosave (IndexedDB): aep_session_save() fills a buffer, returns its address;
// aep_session_size() its length (valid until the next save).
std::vector<uint8_t> g_session;
EMSCRIPTEN_KEEPALIVE const uint8_t* aep_session_save() {
  try {
    g_session = g_app->session_bytes();
  } catch (const std::exception&) {
    g_session.clear();
  }
  return g_session.data();
}
EMSCRIPTEN_KEEPALIVE size_t aep_session_size() { return g_session.size(); }

// Restores an autosaved session; returns "" or the reason it was refused (nothing changed then).
EMSCRIPTEN_KEEPALIVE const char* aep_session_restore(const uint8_t* data, size_t n) {
  try {
    g_app->restore_session(std::vector<uint8_t>(data, data + n));
    return reply("");
  } catch (const std::exception& e) {
    return reply(e.what());
  }
}

// Trains in the page's worker from now on (before the data: see web/aep.js).
EMSCRIPTEN_KEEPALIVE void aep_use_worker() {
  g_worker = true;
  g_app->attach_host(&g_worker_link);
}

// A report from the worker, and the worker's wasm heap in bytes; "" or why it was refused (nothing changed then).
EMSCRIPTEN_KEEPALIVE const char* aep_host_report(const uint8_t* data, size_t n, double worker_heap) {
  g_app->host_memory_bytes = uint64_t(worker_heap);
  try {
    g_app->host_report(data, n);  // read in place: a report of a beta sweep's runs is tens of MB
    return reply("");
  } catch (const std::exception& e) {
    g_app->message = std::string("The training worker's report was refused: ") + e.what();
    return reply(g_app->message);
  }
}

// Draws the whole canvas again next frame (tests compare it with what the incremental drawing left there).
EMSCRIPTEN_KEEPALIVE void aep_redraw_all() { aep::webgl_renderer_redraw_all(); }

EMSCRIPTEN_KEEPALIVE const char* aep_config_query() { return reply(g_app->config_query()); }

EMSCRIPTEN_KEEPALIVE const char* aep_status() { return reply(g_app->status().dump()); }

// Threads for GEMM and Adam (the ?threads= URL parameter; results are the same for any count). n = 0: all logical
// cores but one, which the browser keeps for drawing the page (on 2 cores with software WebGL, a second training
// thread made the page slower). At most the workers started with the threaded module (more would wait for the
// event loop, which a main thread waiting on them never returns to); 1 in the single-threaded module.
EMSCRIPTEN_KEEPALIVE int aep_set_threads(int n) {
#ifdef AEP_WASM_WORKERS
  const size_t cores = aep::hardware_threads();
  const size_t want = n > 0 ? size_t(n) : (cores > 1 ? cores - 1 : 1);
  return int(aep::set_thread_count(std::min<size_t>(want, AEP_WASM_WORKERS + 1)));
#else
  (void)n;
  return 1;
#endif
}

}  // extern "C"

int main() {
  setenv("AEP_ASSETS", "/assets", 1);  // presets are embedded there (see CMakeLists.txt)
  aep_set_threads(0);
  if (!glfwInit()) return 1;
  glfwWindowHint(GLFW_CLIENT_API, GLFW_OPENGL_ES_API);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
  // An opaque canvas without depth or stencil: ImGui needs neither, and the compositor need not blend the canvas.
  glfwWindowHint(GLFW_ALPHA_BITS, 0);
  glfwWindowHint(GLFW_DEPTH_BITS, 0);
  glfwWindowHint(GLFW_STENCIL_BITS, 0);
  g_window = glfwCreateWindow(1280, 800, "Autoencoder Playground", nullptr, nullptr);
  if (!g_window) {
    EM_ASM({ Module.aepFatal("WebGL2 is not available in this browser, so the playground cannot draw."); });
    return 1;
  }
  glfwMakeContextCurrent(g_window);
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // window layout is not persisted on the web
  io.ConfigFlags |= ImGuiConfigFlags_NoMouseCursorChange;  // hiding the cursor would ask the browser for pointer lock
  ImGui::StyleColorsDark();
  float dpr = float(emscripten_get_device_pixel_ratio());
  if (dpr > 1) {
    ImGui::GetStyle().ScaleAllSizes(dpr);
    io.FontGlobalScale = dpr;
  }
  ImGui_ImplGlfw_InitForOpenGL(g_window, true);
  if (!aep::webgl_renderer_init()) {
    EM_ASM({ Module.aepFatal("The playground could not set up WebGL2 drawing (shader compilation failed)."); });
    return 1;
  }
  try {
    g_app = std::make_unique<aep::App>(texture_api(), &g_driver);
    g_app->main_share = 0.25;  // the views leave the training worker its core (2-core laptops)
  } catch (const std::exception& e) {
    EM_ASM({ Module.aepFatal(UTF8ToString($0)); }, e.what());
    return 1;
  }
  g_app->set_status_line("Loading MNIST ...");
  EM_ASM({ if (Module.aepReady) Module.aepReady(); });
  emscripten_set_main_loop(main_loop, 0, false);
  return 0;
}
