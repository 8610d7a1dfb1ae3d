// libFuzzer target: parse a safetensors file, round-trip what is accepted, and load it into a small model
// with Adam state; a refused load must leave the model and optimizer untouched. Build and run with run.sh.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/model.hpp"
#include "core/optim.hpp"
#include "core/safetensors.hpp"
#include "core/weights.hpp"

namespace {

// 784 weights (a tied autoencoder with a 1-value code) plus a BatchNorm's buffers and counter: every kind of
// tensor a weights file holds, small enough that seeds stay a few KB.
const char* const kPreset = R"({"name": "fuzz",
  "encoder": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 1, "bias": false},
              {"type": "BatchNorm1d", "num_features": 1}],
  "decoder": [{"type": "Linear", "in_features": 1, "out_features": 784, "bias": false, "tied_to": "encoder.1"}]})";

struct Fixture {
    aep::Model model{aep::parse_preset_text(kPreset, "fuzz preset")};
    aep::Optimizer opt{model.preset().optimizer, model.values.size()};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Fixture f;
    aep::SafeTensors st;
    try {
        st = aep::parse_safetensors(data, size, "fuzz.safetensors");
    } catch (const std::runtime_error&) {
        return 0;
    }
    // Whatever parses must serialize and parse back to the same tensors.
    const std::vector<uint8_t> again = aep::serialize_safetensors(st);
    const aep::SafeTensors back = aep::parse_safetensors(again.data(), again.size(), "round trip");
    if (back.tensors.size() != st.tensors.size() || back.metadata != st.metadata) __builtin_trap();
    for (const aep::StTensor& t : st.tensors) {
        const aep::StTensor* u = back.find(t.name);
        if (!u || u->dtype != t.dtype || u->shape != t.shape || u->bytes != t.bytes) __builtin_trap();
    }

    const std::vector<float> values = f.model.values, buffers = f.model.buffer_values;
    const std::vector<float> avg = f.opt.exp_avg, avg_sq = f.opt.exp_avg_sq;
    const int64_t steps = f.opt.steps();
    try {
        aep::load_state(f.model, st, "fuzz.safetensors", &f.opt);
    } catch (const std::runtime_error&) {
        if (f.model.values != values || f.model.buffer_values != buffers || f.opt.exp_avg != avg ||
            f.opt.exp_avg_sq != avg_sq || f.opt.steps() != steps)
            __builtin_trap();  // a refused file changed the model
    }
    return 0;
}
