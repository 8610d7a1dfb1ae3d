// ImGui's draw lists on WebGL2 (see the header for why not imgui_impl_opengl3).
//
// Measured in headless Chromium (SwiftShader, 1400x900, replaying one frame of the playground's draw lists with all
// ten panels): the stock shader samples the font atlas for every pixel, also for the solid fills that cover nearly
// the whole window; skipping that fetch took the time per frame (waiting for the GPU process) from ~49 to ~22 ms.
#include "platform/webgl_renderer.hpp"

#include <GLES3/gl3.h>

#include <cstdint>
#include <cstdio>

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

void webgl_renderer_render(ImDrawData* dd, int fb_width, int fb_height) {
  if (fb_width <= 0 || fb_height <= 0 || !g_program) return;
  // The whole state, every frame (the context is ours alone); nothing is read back.
  glViewport(0, 0, fb_width, fb_height);
  glEnable(GL_BLEND);
  glBlendEquation(GL_FUNC_ADD);
  glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ONE, GL_ONE_MINUS_SRC_ALPHA);
  glDisable(GL_CULL_FACE);
  glDisable(GL_DEPTH_TEST);
  glDisable(GL_STENCIL_TEST);
  glEnable(GL_SCISSOR_TEST);
  glUseProgram(g_program);
  glBindVertexArray(g_vao);
  glBindBuffer(GL_ARRAY_BUFFER, g_vbo);
  glActiveTexture(GL_TEXTURE0);

  const float l = dd->DisplayPos.x, r = dd->DisplayPos.x + dd->DisplaySize.x;
  const float t = dd->DisplayPos.y, b = dd->DisplayPos.y + dd->DisplaySize.y;
  const float proj[16] = {2 / (r - l), 0, 0, 0, 0, 2 / (t - b), 0, 0, 0, 0, -1, 0,
                          (r + l) / (l - r), (t + b) / (b - t), 0, 1};
  glUniformMatrix4fv(g_proj, 1, GL_FALSE, proj);
  const ImVec2 origin = dd->DisplayPos, scale = dd->FramebufferScale;

  ImTextureID bound = reinterpret_cast<ImTextureID>(intptr_t(-1));  // none yet
  for (int n = 0; n < dd->CmdListsCount; ++n) {
    const ImDrawList* list = dd->CmdLists[n];
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
      const float x0 = (cmd.ClipRect.x - origin.x) * scale.x, y0 = (cmd.ClipRect.y - origin.y) * scale.y;
      const float x1 = (cmd.ClipRect.z - origin.x) * scale.x, y1 = (cmd.ClipRect.w - origin.y) * scale.y;
      if (x1 <= x0 || y1 <= y0 || cmd.ElemCount == 0) continue;
      glScissor(GLint(x0), GLint(fb_height - y1), GLsizei(x1 - x0), GLsizei(y1 - y0));
      const ImTextureID tex = cmd.GetTexID();
      if (tex != bound) {
        glBindTexture(GL_TEXTURE_2D, GLuint(reinterpret_cast<intptr_t>(tex)));
        const bool font = GLuint(reinterpret_cast<intptr_t>(tex)) == g_font;
        glUniform2f(g_white, font ? g_white_uv.x : -1.f, font ? g_white_uv.y : -1.f);
        bound = tex;
      }
      if (cmd.VtxOffset != vtx_at) point_attributes(vtx_at = cmd.VtxOffset);
      glDrawElements(GL_TRIANGLES, GLsizei(cmd.ElemCount), sizeof(ImDrawIdx) == 2 ? GL_UNSIGNED_SHORT : GL_UNSIGNED_INT,
                     (void*)(size_t(cmd.IdxOffset) * sizeof(ImDrawIdx)));
    }
  }
  glDisable(GL_SCISSOR_TEST);
}

}  // namespace aep
