// ImGui's draw lists on WebGL2 (see the header for why not imgui_impl_opengl3).
//
// Measured in headless Chromium (SwiftShader, 1400x900, replaying one frame of the playground's draw lists with all
// ten panels): the stock shader samples the font atlas for every pixel, also for the solid fills that cover nearly
// the whole window; skipping that fetch took the time per frame (waiting for the GPU process) from ~49 to ~22 ms.
#include "platform/webgl_renderer.hpp"

#include <GLES3/gl3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace aep {

namespace {

GLuint g_program = 0, g_vbo = 0, g_ebo = 0, g_vao = 0, g_font = 0;
GLint g_proj = -1, g_white = -1;
ImVec2 g_white_uv;  // the atlas' white pixel: every solid fill's UV

const char* kVertex = R"(#version 300 es
precision highp float;
layout (location = 0) in vec2 pos;
layout (location = 1) in vec2 uv;
layout (location = 2) in vec4 col;
uniform mat4 proj;
uniform vec2 white;  // (-1, -1) when the texture is not the font atlas
out vec2 f_uv;
out vec4 f_col;
flat out int f_solid;
void main() {
  f_uv = uv;
  f_col = col;
  f_solid = uv == white ? 1 : 0;
  gl_Position = proj * vec4(pos, 0, 1);
}
)";

// A branch, not a select: SwiftShader skips the fetch when a whole quad of pixels is solid.
const char* kFragment = R"(#version 300 es
precision mediump float;
uniform sampler2D tex;
in vec2 f_uv;
in vec4 f_col;
flat in int f_solid;
layout (location = 0) out vec4 out_col;
void main() {
  if (f_solid == 1)
    out_col = f_col;
  else
    out_col = f_col * texture(tex, f_uv);
}
)";

GLuint compile(GLenum type, const char* src) {
  GLuint s = glCreateShader(type);
  glShaderSource(s, 1, &src, nullptr);
  glCompileShader(s);
  GLint ok = 0;
  glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
  if (!ok) {
    char log[1024] = "";
    glGetShaderInfoLog(s, sizeof log, nullptr, log);
    std::fprintf(stderr, "webgl_renderer: shader: %s\n", log);
    glDeleteShader(s);
    return 0;
  }
  return s;
}

// ---- what changed since the last frame ----

struct Rect {  // framebuffer pixels, y down
  float x0, y0, x1, y1;
};
bool empty(const Rect& r) { return r.x1 <= r.x0 || r.y1 <= r.y0; }
Rect intersect(const Rect& a, const Rect& b) {
  return {std::max(a.x0, b.x0), std::max(a.y0, b.y0), std::min(a.x1, b.x1), std::min(a.y1, b.y1)};
}
Rect unite(const Rect& a, const Rect& b) {
  return {std::min(a.x0, b.x0), std::min(a.y0, b.y0), std::max(a.x1, b.x1), std::max(a.y1, b.y1)};
}
// Whole pixels covering r (plus one for anti-aliased edges), inside the framebuffer.
Rect clamp_out(const Rect& r, int w, int h) {
  if (empty(r)) return {0, 0, 0, 0};
  return {std::max(0.f, std::floor(r.x0) - 1), std::max(0.f, std::floor(r.y0) - 1),
          std::min(float(w), std::ceil(r.x1) + 1), std::min(float(h), std::ceil(r.y1) + 1)};
}
void scissor(const Rect& r, int fb_height) {
  const float x0 = std::floor(r.x0), y0 = std::floor(r.y0), x1 = std::ceil(r.x1), y1 = std::ceil(r.y1);
  glScissor(GLint(x0), GLint(fb_height - y1), GLsizei(x1 - x0), GLsizei(y1 - y0));
}
// Unites overlapping rectangles until none overlap (drawing a region twice would blend its pixels twice).
void merge_overlapping(std::vector<Rect>& rs) {
  rs.erase(std::remove_if(rs.begin(), rs.end(), [](const Rect& r) { return empty(r); }), rs.end());
  for (bool merged = true; merged;) {
    merged = false;
    for (size_t i = 0; i < rs.size() && !merged; ++i)
      for (size_t j = i + 1; j < rs.size() && !merged; ++j)
        if (!empty(intersect(rs[i], rs[j]))) {
          rs[i] = unite(rs[i], rs[j]);
          rs.erase(rs.begin() + std::ptrdiff_t(j));
          merged = true;
        }
  }
}

uint64_t hash_bytes(const void* data, size_t n, uint64_t h) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

struct ListMark {
  std::string owner;  // the window that drew it
  uint64_t hash = 0;  // of its vertices, indices and commands
  Rect box{0, 0, 0, 0};  // the union of its clip rectangles
};
std::vector<ListMark> g_last;  // the last frame's lists
int g_width = 0, g_height = 0;
bool g_redraw_all = true;
std::vector<ImTextureID> g_changed;  // textures given new pixels since the last frame

// Vertex attributes of a draw list's vertices starting at `first` (the command's VtxOffset).
void point_attributes(size_t first) {
  const size_t base = first * sizeof(ImDrawVert);
  glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, sizeof(ImDrawVert), (void*)(base + offsetof(ImDrawVert, pos)));
  glVertexAttribPointer(1, 2, GL_FLOAT, GL_FALSE, sizeof(ImDrawVert), (void*)(base + offsetof(ImDrawVert, uv)));
  glVertexAttribPointer(2, 4, GL_UNSIGNED_BYTE, GL_TRUE, sizeof(ImDrawVert), (void*)(base + offsetof(ImDrawVert, col)));
}

}  // namespace

bool webgl_renderer_init() {
  GLuint vs = compile(GL_VERTEX_SHADER, kVertex), fs = compile(GL_FRAGMENT_SHADER, kFragment);
  if (!vs || !fs) return false;
  g_program = glCreateProgram();
  glAttachShader(g_program, vs);
  glAttachShader(g_program, fs);
  glLinkProgram(g_program);
  glDeleteShader(vs);
  glDeleteShader(fs);
  GLint ok = 0;
  glGetProgramiv(g_program, GL_LINK_STATUS, &ok);
  if (!ok) return false;
  g_proj = glGetUniformLocation(g_program, "proj");
  g_white = glGetUniformLocation(g_program, "white");
  glUseProgram(g_program);
  glUniform1i(glGetUniformLocation(g_program, "tex"), 0);

  glGenVertexArrays(1, &g_vao);
  glBindVertexArray(g_vao);
  glGenBuffers(1, &g_vbo);
  glGenBuffers(1, &g_ebo);
  glBindBuffer(GL_ARRAY_BUFFER, g_vbo);
  glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, g_ebo);  // part of the VAO's state
  for (GLuint a = 0; a < 3; ++a) glEnableVertexAttribArray(a);
  point_attributes(0);

  ImGuiIO& io = ImGui::GetIO();
  unsigned char* pixels = nullptr;
  int w = 0, h = 0;
  io.Fonts->GetTexDataAsRGBA32(&pixels, &w, &h);
  glGenTextures(1, &g_font);
  glBindTexture(GL_TEXTURE_2D, g_font);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, w, h, 0, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
  io.Fonts->SetTexID(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(g_font)));
  g_white_uv = io.Fonts->TexUvWhitePixel;
  io.BackendRendererName = "aep_webgl_renderer";
  io.BackendFlags |= ImGuiBackendFlags_RendererHasVtxOffset;  // honoured by re-pointing the attributes
  return true;
}

void webgl_renderer_texture_changed(ImTextureID tex) { g_changed.push_back(tex); }

void webgl_renderer_redraw_all() { g_redraw_all = true; }

bool webgl_renderer_render(ImDrawData* dd, int fb_width, int fb_height, ImVec4 clear) {
  if (fb_width <= 0 || fb_height <= 0 || !g_program) return false;
  const ImVec2 origin = dd->DisplayPos, scale = dd->FramebufferScale;
  auto to_fb = [&](const ImVec4& c) {
    return Rect{(c.x - origin.x) * scale.x, (c.y - origin.y) * scale.y, (c.z - origin.x) * scale.x,
                (c.w - origin.y) * scale.y};
  };

  // What each draw list (a window) looks like now, and where it draws.
  std::vector<ListMark> now(size_t(dd->CmdListsCount));
  std::vector<bool> uses_changed(now.size(), false);
  for (int n = 0; n < dd->CmdListsCount; ++n) {
    const ImDrawList* list = dd->CmdLists[n];
    ListMark& m = now[size_t(n)];
    m.owner = list->_OwnerName ? list->_OwnerName : "";
    uint64_t h = hash_bytes(list->VtxBuffer.Data, size_t(list->VtxBuffer.Size) * sizeof(ImDrawVert), 1);
    h = hash_bytes(list->IdxBuffer.Data, size_t(list->IdxBuffer.Size) * sizeof(ImDrawIdx), h);
    Rect box{1e30f, 1e30f, -1e30f, -1e30f};
    for (const ImDrawCmd& cmd : list->CmdBuffer) {
      const uint64_t fields[5] = {uint64_t(reinterpret_cast<intptr_t>(cmd.GetTexID())), cmd.VtxOffset, cmd.IdxOffset,
                                  cmd.ElemCount, uint64_t(reinterpret_cast<intptr_t>(cmd.UserCallback))};
      h = hash_bytes(fields, sizeof fields, hash_bytes(&cmd.ClipRect, sizeof cmd.ClipRect, h));
      for (ImTextureID t : g_changed) uses_changed[size_t(n)] = uses_changed[size_t(n)] || t == cmd.GetTexID();
      // Where it draws: its vertices' bounds within its clip rectangle (a window's frame is clipped to the whole
      // display, so the clip rectangles alone would make every window as large as the screen).
      Rect v{1e30f, 1e30f, -1e30f, -1e30f};
      const ImDrawIdx* idx = list->IdxBuffer.Data + cmd.IdxOffset;
      const ImDrawVert* vtx = list->VtxBuffer.Data + cmd.VtxOffset;
      for (unsigned i = 0; i < cmd.ElemCount && cmd.IdxOffset + i < unsigned(list->IdxBuffer.Size); ++i) {
        const ImVec2 p = vtx[idx[i]].pos;
        v.x0 = std::min(v.x0, p.x), v.y0 = std::min(v.y0, p.y), v.x1 = std::max(v.x1, p.x), v.y1 = std::max(v.y1, p.y);
      }
      if (v.x0 > v.x1) continue;  // no vertices
      const Rect drawn = intersect(to_fb(ImVec4(v.x0 - 1, v.y0 - 1, v.x1 + 1, v.y1 + 1)), to_fb(cmd.ClipRect));
      if (!empty(drawn)) box = unite(box, drawn);
    }
    m.hash = h;
    m.box = clamp_out(box, fb_width, fb_height);
  }

  // The region to draw again: where a changed window was and is; everything after a resize, when the windows
  // came or went, or when most of the screen changed anyway.
  std::vector<Rect> dirty;
  bool all = g_redraw_all || fb_width != g_width || fb_height != g_height || now.size() != g_last.size();
  for (size_t i = 0; !all && i < now.size(); ++i) {
    if (now[i].owner != g_last[i].owner) all = true;
    else if (now[i].hash != g_last[i].hash || uses_changed[i]) dirty.push_back(g_last[i].box), dirty.push_back(now[i].box);
  }
  merge_overlapping(dirty);
  double area = 0;
  for (const Rect& r : dirty) area += double(r.x1 - r.x0) * (r.y1 - r.y0);
  if (area > 0.6 * fb_width * fb_height) all = true;
  if (all) dirty.assign(1, Rect{0, 0, float(fb_width), float(fb_height)});
  g_last.swap(now);
  g_width = fb_width, g_height = fb_height;
  g_redraw_all = false;
  g_changed.clear();
  if (dirty.empty()) return false;

  // The whole state, every time (the context is ours alone); nothing is read back.
  glViewport(0, 0, fb_width, fb_height);
  glEnable(GL_SCISSOR_TEST);
  glClearColor(clear.x, clear.y, clear.z, clear.w);
  for (const Rect& r : dirty) {
    scissor(r, fb_height);
    glClear(GL_COLOR_BUFFER_BIT);
  }
  glEnable(GL_BLEND);
  glBlendEquation(GL_FUNC_ADD);
  glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ONE, GL_ONE_MINUS_SRC_ALPHA);
  glDisable(GL_CULL_FACE);
  glDisable(GL_DEPTH_TEST);
  glDisable(GL_STENCIL_TEST);
  glUseProgram(g_program);
  glBindVertexArray(g_vao);
  glBindBuffer(GL_ARRAY_BUFFER, g_vbo);
  glActiveTexture(GL_TEXTURE0);

  const float l = dd->DisplayPos.x, r = dd->DisplayPos.x + dd->DisplaySize.x;
  const float t = dd->DisplayPos.y, b = dd->DisplayPos.y + dd->DisplaySize.y;
  const float proj[16] = {2 / (r - l), 0, 0, 0, 0, 2 / (t - b), 0, 0, 0, 0, -1, 0,
                          (r + l) / (l - r), (t + b) / (b - t), 0, 1};
  glUniformMatrix4fv(g_proj, 1, GL_FALSE, proj);

  ImTextureID bound = reinterpret_cast<ImTextureID>(intptr_t(-1));  // none yet
  for (int n = 0; n < dd->CmdListsCount; ++n) {
    const ImDrawList* list = dd->CmdLists[n];
    bool touches = false;  // a list outside the dirty region is not even uploaded
    for (const Rect& d : dirty) touches = touches || !empty(intersect(g_last[size_t(n)].box, d));
    if (!touches) continue;
    glBufferData(GL_ARRAY_BUFFER, GLsizeiptr(list->VtxBuffer.Size) * sizeof(ImDrawVert), list->VtxBuffer.Data,
                 GL_STREAM_DRAW);
    glBufferData(GL_ELEMENT_ARRAY_BUFFER, GLsizeiptr(list->IdxBuffer.Size) * sizeof(ImDrawIdx), list->IdxBuffer.Data,
                 GL_STREAM_DRAW);
    unsigned vtx_at = 0;
    point_attributes(0);
    for (const ImDrawCmd& cmd : list->CmdBuffer) {
      if (cmd.UserCallback) {  // the app uses none; ResetRenderState is the only one ImGui itself sends
        if (cmd.UserCallback != ImDrawCallback_ResetRenderState) cmd.UserCallback(list, &cmd);
        continue;
      }
      const Rect clip = to_fb(cmd.ClipRect);
      if (empty(clip) || cmd.ElemCount == 0) continue;
      const ImTextureID tex = cmd.GetTexID();
      if (tex != bound) {
        glBindTexture(GL_TEXTURE_2D, GLuint(reinterpret_cast<intptr_t>(tex)));
        const bool font = GLuint(reinterpret_cast<intptr_t>(tex)) == g_font;
        glUniform2f(g_white, font ? g_white_uv.x : -1.f, font ? g_white_uv.y : -1.f);
        bound = tex;
      }
      if (cmd.VtxOffset != vtx_at) point_attributes(vtx_at = cmd.VtxOffset);
      for (const Rect& d : dirty) {  // disjoint, so no pixel is blended twice
        const Rect c = intersect(clip, d);
        if (empty(c)) continue;
        scissor(c, fb_height);
        glDrawElements(GL_TRIANGLES, GLsizei(cmd.ElemCount),
                       sizeof(ImDrawIdx) == 2 ? GL_UNSIGNED_SHORT : GL_UNSIGNED_INT,
                       (void*)(size_t(cmd.IdxOffset) * sizeof(ImDrawIdx)));
      }
    }
  }
  glDisable(GL_SCISSOR_TEST);
  return true;
}

}  // namespace aep
