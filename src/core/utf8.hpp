// Strict UTF-8 validation for text read from untrusted files (safetensors headers, preset JSON), so that names
// and error messages built from them are always valid UTF-8 (nlohmann::json refuses to dump anything else).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace aep {

// Offset of the first byte that breaks strict UTF-8 (overlongs, surrogates, > U+10FFFF), or npos.
inline size_t find_invalid_utf8(const uint8_t* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len = 0;
        uint32_t cp = 0, min = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1Fu, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0Fu, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07u, min = 0x10000;
        } else {
            return i;
        }
        if (n - i < len) return i;
        for (size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return std::string::npos;
}

inline size_t find_invalid_utf8(const std::string& s) {
    return find_invalid_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// `s` itself when it has at most `max` bytes, else its first bytes (cut between characters) and "...": names from
// untrusted files go into error messages, and a 50 MB name should not make a 50 MB message.
inline std::string shorten_utf8(const std::string& s, size_t max = 80) {
    if (s.size() <= max) return s;
    size_t cut = max > 3 ? max - 3 : 0;
    while (cut > 0 && (uint8_t(s[cut]) & 0xC0) == 0x80) --cut;
    return s.substr(0, cut) + "...";
}

}  // namespace aep
