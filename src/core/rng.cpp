// PCG32 (O'Neill's permuted congruential generator, XSH-RR variant) and the distributions built on it.
#include "core/rng.hpp"

#include <cmath>

namespace aep {

void Rng::reseed(uint64_t seed) {
  state_ = 0;
  inc_ = (seed << 1u) | 1u;
  next_u32();
  state_ += 0x853c49e6748fea9bULL ^ seed;
  next_u32();
  has_spare_ = false;
}

uint32_t Rng::next_u32() {
  uint64_t old = state_;
  state_ = old * 6364136223846793005ULL + inc_;
  uint32_t xorshifted = uint32_t(((old >> 18u) ^ old) >> 27u);
  uint32_t rot = uint32_t(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

float Rng::uniform() { return float(next_u32() >> 8) * (1.0f / 16777216.0f); }

float Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // u1 in (0, 1] so the log is finite.
  double u1 = (double(next_u32() >> 8) + 1.0) / 16777216.0;
  double u2 = double(next_u32() >> 8) / 16777216.0;
  double r = std::sqrt(-2.0 * std::log(u1));
  double a = 6.283185307179586 * u2;
  spare_ = float(r * std::sin(a));
  has_spare_ = true;
  return float(r * std::cos(a));
}

uint32_t Rng::below(uint32_t n) {
  if (n <= 1) return 0;
  uint32_t threshold = (0u - n) % n;  // rejects the biased low range
  for (;;) {
    uint32_t r = next_u32();
    if (r >= threshold) return r % n;
  }
}

void Rng::shuffle(std::vector<uint32_t>& v) {
  for (size_t i = v.size(); i > 1; --i) {
    uint32_t j = below(uint32_t(i));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace aep
