// ImGui's draw lists on WebGL2, made for browsers that draw in software (SwiftShader: Chromium without a GPU).
// Differs from imgui_impl_opengl3 in three ways that matter there: only the windows that changed since the last
// frame are drawn again (the canvas keeps its pixels: preserveDrawingBuffer, set in web/aep.js), solid fills (most
// pixels) skip the texture fetch, and nothing reads GL state back (each read waits for the GPU process).
#pragma once
#include <imgui.h>

namespace aep {

bool webgl_renderer_init();  // after the WebGL2 context is current; builds the font texture
// Draws what changed (everything the first time, after a resize or webgl_renderer_redraw_all()) over `clear`;
// returns false when nothing changed and nothing was drawn.
bool webgl_renderer_render(ImDrawData* draw_data, int fb_width, int fb_height, ImVec4 clear);
void webgl_renderer_texture_changed(ImTextureID tex);  // its pixels changed: the windows showing it are redrawn
void webgl_renderer_redraw_all();

}  // namespace aep
