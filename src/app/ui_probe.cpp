// ImGui's test-engine hooks, feeding a UiProbe (see ui_probe.hpp). Part of the aep_imgui library, whose imgui.cpp
// calls them.
#include "app/ui_probe.hpp"

#include <imgui_internal.h>

#include <algorithm>

namespace aep {

void UiProbe::install() {
  ImGuiContext& g = *ImGui::GetCurrentContext();
  g.TestEngine = this;
  g.TestEngineHookItems = true;
}

void UiProbe::uninstall() {
  ImGuiContext& g = *ImGui::GetCurrentContext();
  if (g.TestEngine == this) g.TestEngine = nullptr, g.TestEngineHookItems = false;
}

std::vector<UiProbe::Item> UiProbe::find(const std::string& label) const {
  std::vector<Item> out;
  for (const Item& it : items)
    if (it.label == label) out.push_back(it);
  std::stable_sort(out.begin(), out.end(),
                   [](const Item& a, const Item& b) { return a.min.y != b.min.y ? a.min.y < b.min.y : a.min.x < b.min.x; });
  return out;
}

}  // namespace aep

void ImGuiTestEngineHook_ItemAdd(ImGuiContext* ctx, ImGuiID id, const ImRect& bb, const ImGuiLastItemData*) {
  auto* probe = static_cast<aep::UiProbe*>(ctx->TestEngine);
  if (!probe || id == 0) return;
  aep::UiProbe::Item it;
  it.id = id;
  it.min = bb.Min, it.max = bb.Max;
  probe->items.push_back(it);
}

// Follows the ItemAdd of the same item (for the widgets that have a label).
void ImGuiTestEngineHook_ItemInfo(ImGuiContext* ctx, ImGuiID id, const char* label, ImGuiItemStatusFlags) {
  auto* probe = static_cast<aep::UiProbe*>(ctx->TestEngine);
  if (!probe || !label) return;
  for (auto it = probe->items.rbegin(); it != probe->items.rend(); ++it)
    if (it->id == id) {
      it->label = label;
      return;
    }
}

void ImGuiTestEngineHook_Log(ImGuiContext*, const char*, ...) {}

const char* ImGuiTestEngine_FindItemDebugLabel(ImGuiContext*, ImGuiID) { return nullptr; }
