// The project's one random number generator (PCG32), passed explicitly everywhere so a seed fixes a run,
// natively and in WebAssembly alike (no std:: distributions, whose output differs between standard libraries).
#pragma once
#include <cstdint>
#include <vector>

namespace aep {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint32_t next_u32();
  float uniform();                              // [0, 1), 24 random bits
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  float normal();                               // N(0, 1), Box-Muller in double precision
  uint32_t below(uint32_t n);                   // uniform integer in [0, n), unbiased
  void shuffle(std::vector<uint32_t>& v);       // Fisher-Yates

  // The generator's whole state, to continue its stream elsewhere (a run moved to a training worker).
  struct State {
    uint64_t state = 0, inc = 0;
    bool has_spare = false;
    float spare = 0.f;
  };
  State save() const { return {state_, inc_, has_spare_, spare_}; }
  void load(const State& s) { state_ = s.state, inc_ = s.inc, has_spare_ = s.has_spare, spare_ = s.spare; }

 private:
  uint64_t state_ = 0, inc_ = 0;
  bool has_spare_ = false;
  float spare_ = 0.f;
};

}  // namespace aep
