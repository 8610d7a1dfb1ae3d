// Strict reading of JSON that users write (presets, lessons): every key known, every value checked, errors that
// name the file, the section and the key. Shared by the preset and lesson parsers.
#pragma once
#include <algorithm>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/utf8.hpp"

namespace aep {

// A JSON value for an error message: ASCII-only and cut short, so a huge value cannot make a huge message.
inline std::string brief(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', true);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// One JSON object being read: remembers the keys asked for, so done() can refuse the others.
class Section {
 public:
  Section(const nlohmann::json& j, std::string where) : j_(j), where_(std::move(where)) {
    if (!j_.is_object()) fail("must be a JSON object, got " + brief(j_));
  }
  [[noreturn]] void fail(const std::string& msg) const { throw std::runtime_error(where_ + ": " + msg); }
  bool has(const char* k) {
    used_.insert(k);
    return j_.contains(k);
  }
  std::string str(const char* k, const std::string& def, std::initializer_list<const char*> allowed = {}) {
    if (!has(k)) return def;
    const nlohmann::json& v = j_.at(k);
    if (!v.is_string()) fail("'" + std::string(k) + "' must be a string, got " + brief(v));
    std::string s = v.get<std::string>();
    if (allowed.size() && std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return s == a; })) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail("'" + std::string(k) + "' must be one of " + list + ", got \"" + shorten_utf8(s) + "\"");
    }
    return s;
  }
  double num(const char* k, double def, double lo, double hi, bool lo_open = false) {
    if (!has(k)) return def;
    const nlohmann::json& v = j_.at(k);
    if (!v.is_number()) fail("'" + std::string(k) + "' must be a number, got " + brief(v));
    double x = v.get<double>();
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi)) {
      std::ostringstream o;
      o << "'" << k << "' must be in " << (lo_open ? "(" : "[") << lo << ", " << hi << "], got " << brief(v);
      fail(o.str());
    }
    return x;
  }
  size_t integer(const char* k, size_t def, size_t lo, size_t hi) {
    if (!has(k)) return def;
    const nlohmann::json& v = j_.at(k);
    if (!v.is_number_integer() || v.get<long long>() < (long long)lo || v.get<long long>() > (long long)hi)
      fail("'" + std::string(k) + "' must be an integer between " + std::to_string(lo) + " and " +
           std::to_string(hi) + ", got " + brief(v));
    return v.get<size_t>();
  }
  bool boolean(const char* k, bool def) {
    if (!has(k)) return def;
    if (!j_.at(k).is_boolean()) fail("'" + std::string(k) + "' must be true or false, got " + brief(j_.at(k)));
    return j_.at(k).get<bool>();
  }
  const nlohmann::json& sub(const char* k) {
    used_.insert(k);
    return j_.at(k);
  }
  void done() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!used_.count(it.key())) fail("unknown key '" + shorten_utf8(it.key()) + "'");
  }
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& j_;
  std::string where_;
  std::set<std::string> used_;
};


// Parses text as JSON, refusing invalid UTF-8, duplicate keys (nlohmann::json would keep the last silently) and
// nesting deeper than max_depth (which would overflow the stack in nlohmann::json's recursive copy, compare and
// dump). Messages start with source.
inline nlohmann::json parse_json_text(const std::string& text, const std::string& source, int max_depth) {
  // Checked first so that every name and message built from the text is valid UTF-8.
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string::npos)
    throw std::runtime_error(source + ": not valid UTF-8 (bad byte at offset " + std::to_string(bad) + ")");
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using event_t = nlohmann::json::parse_event_t;
    if ((event == event_t::object_start || event == event_t::array_start) && depth >= max_depth)
      throw std::runtime_error(source + ": JSON is nested more than " + std::to_string(max_depth) + " levels deep");
    if (event == event_t::object_start) open_objects.emplace_back();
    if (event == event_t::object_end) open_objects.pop_back();
    if (event == event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second)
      throw std::runtime_error(source + ": duplicate key '" + shorten_utf8(parsed.get<std::string>()) + "'");
    return true;
  };
  try {
    return nlohmann::json::parse(text, callback);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(source + ": not valid JSON: " + shorten_utf8(e.what(), 200));
  }
}

}  // namespace aep
