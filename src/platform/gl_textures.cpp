// RGBA textures for the app's pictures: GL 1.1 calls that desktop OpenGL and WebGL2 both have.
#include "platform/gl_textures.hpp"

#ifdef __EMSCRIPTEN__
#include <GLES3/gl3.h>
#else
#include <GL/gl.h>
#endif

#include <cstdint>

namespace aep {

namespace {

ImTextureID create(int w, int h) {
  GLuint t = 0;
  glGenTextures(1, &t);
  glBindTexture(GL_TEXTURE_2D, t);
  // Nearest: digits are 28x28 and shown enlarged; smoothing would blur exactly what the learner looks at.
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, w, h, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
  return reinterpret_cast<ImTextureID>(static_cast<intptr_t>(t));
}

void update(ImTextureID tex, int w, int h, const uint8_t* rgba) {
  glBindTexture(GL_TEXTURE_2D, GLuint(reinterpret_cast<intptr_t>(tex)));
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, w, h, 0, GL_RGBA, GL_UNSIGNED_BYTE, rgba);
}

void destroy(ImTextureID tex) {
  GLuint t = GLuint(reinterpret_cast<intptr_t>(tex));
  glDeleteTextures(1, &t);
}

}  // namespace

TextureApi gl_texture_api() {
  TextureApi api;
  api.create = create;
  api.update = update;
  api.destroy = destroy;
  return api;
}

}  // namespace aep
