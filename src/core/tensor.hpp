// Tensor types shared by the whole engine: every activation is a rank-4 xtensor [batch, channels, height, width].
// Flat feature vectors (after Flatten, Linear) are [batch, features, 1, 1], so one fixed-rank type flows through a model.
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <xtensor/xtensor.hpp>

namespace aep {

using Tensor = xt::xtensor<float, 4>;
using Shape = std::array<size_t, 4>;

inline size_t numel(const Shape& s) { return s[0] * s[1] * s[2] * s[3]; }
inline size_t per_sample(const Shape& s) { return s[1] * s[2] * s[3]; }

// "[64, 16, 14, 14]"; flat shapes print as "[64, 784]".
std::string shape_str(const Shape& s);

// Resizes only when the shape changes, so buffers are reused from step to step without allocation.
inline void ensure_shape(Tensor& t, const Shape& s) {
  if (t.shape() != s) t.resize(s);
}

}  // namespace aep
