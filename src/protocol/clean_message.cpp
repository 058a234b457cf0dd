// Upstream error messages made fit to show: cleaned, cut, and with key-like tokens redacted.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/json.hpp"
#include "core/secrets.hpp"
#include "protocol/internal.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";

bool is_key_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

// Upstream messages sometimes quote the credential they rejected. A token that holds a run of 20+
// letters and digits mixing both looks like a key (Z.AI "<32 hex>.<16 chars>", "sk-..."); model
// names, UUIDs and words do not. Such a token keeps its first 4 characters.
std::string redact_key_like(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_key_char(s[i])) {
      out += s[i++];
      continue;
    }
    std::size_t end = i;
    while (end < s.size() && is_key_char(s[end])) ++end;
    const std::string_view token = s.substr(i, end - i);
    bool key_like = false;
    std::size_t run = 0;
    bool digit = false;
    bool alpha = false;
    for (char c : token) {
      const bool is_digit = c >= '0' && c <= '9';
      const bool is_alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (is_digit || is_alpha) {
        if (run == 0) digit = alpha = false;
        ++run;
        digit = digit || is_digit;
        alpha = alpha || is_alpha;
        if (run >= 20 && digit && alpha) key_like = true;
      } else {
        run = 0;
      }
    }
    if (key_like) {
      out += token.substr(0, 4);
      out += kEllipsis;
    } else {
      out += token;
    }
    i = end;
  }
  return out;
}

}  // namespace

std::string clean_message(std::string_view s, std::size_t max_bytes) {
  // Cleaned a little past the limit first, so that a registered secret that straddles the cut
  // is replaced whole before the cut is made (a cut key would leave its first part visible).
  const std::size_t window = max_bytes + SecretRegistry::instance().longest();
  std::string out;
  out.reserve(std::min(s.size(), window) + 8);
  bool truncated = false;
  std::size_t i = 0;
  while (i < s.size()) {
    if (out.size() >= window) {
      truncated = true;
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      if (!out.empty() && out.back() != ' ') out += ' ';
      ++i;
      continue;
    }
    if (c == ' ' && !out.empty() && out.back() == ' ') {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += '?';
      ++i;
      continue;
    }
    out.append(s.data() + i, n);
    i += n;
  }
  SecretRegistry::instance().scrub(out);
  if (out.size() > max_bytes) {
    // Cut at a character boundary.
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
    truncated = true;
  }
  while (!out.empty() && out.front() == ' ') out.erase(0, 1);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  out = redact_key_like(out);
  if (truncated) out += kEllipsis;
  return out;
}

}  // namespace glmproxy::detail
