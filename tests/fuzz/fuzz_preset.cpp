// libFuzzer target: preset JSON text -> Preset -> Model (also after chain_layer_sizes). Anything refused must be a runtime_error; anything
// accepted must survive preset_to_json and parse back. Build and run with tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/model.hpp"
#include "core/preset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    aep::Preset p;
    try {
        p = aep::parse_preset_text(text, "fuzz.json");
    } catch (const std::runtime_error&) {
        return 0;
    }
    aep::parse_preset(aep::preset_to_json(p), "round trip");  // must not throw
    try {
        aep::Model m(p);
    } catch (const std::runtime_error&) {
    }
    // The layer editor's automatic size chaining takes any preset the parser accepted (edited by hand).
    aep::chain_layer_sizes(p);
    try {
        aep::Model m(p);
    } catch (const std::runtime_error&) {
    }
    return 0;
}
