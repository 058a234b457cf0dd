// JSON string escaping for the request writers, and message cleaning for upstream errors.

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/secrets.hpp"
#include "protocol/internal.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";

// Bytes that cannot be copied as they are: control characters, '"', '\\', and 0xE2 (the lead byte
// of U+2028 / U+2029, which JSON allows raw but JavaScript string literals do not).
constexpr std::array<bool, 256> make_special() {
  std::array<bool, 256> table{};
  for (std::size_t c = 0; c < 0x20; ++c) table[c] = true;
  table['"'] = true;
  table['\\'] = true;
  table[0xE2] = true;
  return table;
}
constexpr std::array<bool, 256> kSpecial = make_special();

unsigned char byte_at(std::string_view s, std::size_t i) noexcept {
  return static_cast<unsigned char>(s[i]);
}

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_length_at(std::string_view s, std::size_t i) noexcept {
  const unsigned char b0 = byte_at(s, i);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  const unsigned char b1 = byte_at(s, i + 1);
  if (b1 < lo || b1 > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    const unsigned char b = byte_at(s, i + k);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return n;
}

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

bool append_json_escaped(std::string& out, std::string_view s) {
  if (!simdjson::validate_utf8(s.data(), s.size())) return false;
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  std::size_t run_start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = byte_at(s, i);
    if (!kSpecial[c]) continue;
    if (c == 0xE2) {
      // Valid UTF-8 was checked above, so a lead 0xE2 has two continuation bytes.
      if (byte_at(s, i + 1) != 0x80 || (byte_at(s, i + 2) != 0xA8 && byte_at(s, i + 2) != 0xA9)) {
        continue;
      }
      out.append(s.data() + run_start, i - run_start);
      out += byte_at(s, i + 2) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 2;
      run_start = i + 1;
      continue;
    }
    out.append(s.data() + run_start, i - run_start);
    run_start = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
        break;
    }
  }
  out.append(s.data() + run_start, s.size() - run_start);
  return true;
}

bool append_json_string(std::string& out, std::string_view s) {
  const std::size_t old_size = out.size();
  out += '"';
  if (!append_json_escaped(out, s)) {
    out.resize(old_size);
    return false;
  }
  out += '"';
  return true;
}

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
    const unsigned char c = byte_at(s, i);
    if (c < 0x20 || c == 0x7F) {
      if (!out.empty() && out.back() != ' ') out += ' ';
      ++i;
      continue;
    }
    if (c == ' ' && !out.empty() && out.back() == ' ') {
      ++i;
      continue;
    }
    const std::size_t n = utf8_length_at(s, i);
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
