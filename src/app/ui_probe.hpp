// Where ImGui put each labelled item in the last frame, so tests can click through the UI headless (find "+", press
// it, pick "Linear" from its menu). Uses ImGui's test-engine hooks (IMGUI_ENABLE_TEST_ENGINE, compiled in
// everywhere): they record only while a probe is installed on the context, and cost one branch per item otherwise.
#pragma once
#include <imgui.h>

#include <string>
#include <vector>

namespace aep {

struct UiProbe {
  struct Item {
    ImGuiID id = 0;
    std::string label;  // as submitted, "##" suffixes included
    ImVec2 min, max;    // screen rectangle
    ImVec2 center() const { return ImVec2((min.x + max.x) / 2, (min.y + max.y) / 2); }
  };
  std::vector<Item> items;  // since the last clear(), in submission order

  void install();    // on the current ImGui context
  void uninstall();
  void clear() { items.clear(); }
  // Items with this label, top to bottom (then left to right).
  std::vector<Item> find(const std::string& label) const;
};

}  // namespace aep
