// doctest entry point for the whole suite (native and WebAssembly builds). Two options of our own connect the
// native and wasm runs: --aep-determinism-out=FILE writes the weights the determinism case trains, and
// --aep-determinism-in=FILE compares them with a file written by the other build.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

namespace aep::test {
std::string determinism_out, determinism_in;
}

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (!std::strncmp(argv[i], "--aep-determinism-out=", 22))
      aep::test::determinism_out = argv[i] + 22;
    else if (!std::strncmp(argv[i], "--aep-determinism-in=", 21))
      aep::test::determinism_in = argv[i] + 21;
    else
      rest.push_back(argv[i]);
  }
  doctest::Context ctx(int(rest.size()), rest.data());
  return ctx.run();
}
