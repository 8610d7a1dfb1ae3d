// ImGui's draw lists on WebGL2, made for browsers that draw in software (SwiftShader: Chromium without a GPU).
// Differs from imgui_impl_opengl3 in two ways that matter there: solid fills (most pixels) skip the texture fetch,
// and nothing reads GL state back (each read waits for the GPU process to finish the previous frame).
#pragma once
#include <imgui.h>

namespace aep {

bool webgl_renderer_init();  // after the WebGL2 context is current; builds the font texture
void webgl_renderer_render(ImDrawData* draw_data, int fb_width, int fb_height);

}  // namespace aep
