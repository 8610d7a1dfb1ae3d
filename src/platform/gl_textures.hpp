// RGBA textures for the app's pictures, with OpenGL 3 / WebGL2 (the same calls in both drivers).
#pragma once
#include "app/app.hpp"

namespace aep {
TextureApi gl_texture_api();
}
