// What the app asks of the platform it runs on (the page, the desktop window, a test): each driver implements this
// small interface and hands it to the App. The app calls it from its panels and commands; answers come back through
// the App's own entry points (load_weights_bytes / load_data_file for a chosen file, set_ood for Fashion-MNIST).
// Not to be confused with the training host (App::HostLink), which trains the runs elsewhere.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace aep {

struct Driver {
  virtual ~Driver() = default;
  // Hands a file to the user: the page downloads it, the desktop writes it to the working directory.
  virtual void download(const std::string& name, const std::vector<uint8_t>& bytes) = 0;
  // Lets the user choose a file to open (weights, or IDX data): the page opens its file picker; the desktop, which
  // takes dropped files, says so.
  virtual void open_file() = 0;
  // Puts the current settings, as URL parameters ("preset=conv&lr=0.001&..."), where the user can paste them.
  virtual void copy_link(const std::string& query) = 0;
  // Loads Fashion-MNIST's test set and hands it to App::set_ood (the app asks once per session).
  virtual void load_fashion() = 0;
};

}  // namespace aep
