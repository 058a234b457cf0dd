// The shared JSON pieces: UTF-8 validation, string escaping, and a syntax check that says where.

#include "core/json.hpp"

#include <simdjson.h>

#include <array>
#include <cstdint>

namespace glmproxy::detail {

namespace {

unsigned char byte_at(std::string_view s, std::size_t i) noexcept {
  return static_cast<unsigned char>(s[i]);
}

// Bytes that cannot be copied as they are: control characters, '"', '\\', and 0xE2 (the lead byte
// of U+2028 / U+2029).
constexpr std::array<bool, 256> make_special() {
  std::array<bool, 256> table{};
  for (std::size_t c = 0; c < 0x20; ++c) table[c] = true;
  table['"'] = true;
  table['\\'] = true;
  table[0xE2] = true;
  return table;
}
constexpr std::array<bool, 256> kSpecial = make_special();

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_hex(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A strict RFC 8259 recogniser that stops at the first byte which cannot continue a valid
// document, and says why.
class JsonScan {
 public:
  explicit JsonScan(std::string_view text) : s_(text) {}

  std::optional<JsonSyntaxError> first_error() {
    ws();
    if (!value(0)) return JsonSyntaxError{i_, why_};
    ws();
    if (i_ != s_.size()) {
      fail("text after the end of the JSON value");
      return JsonSyntaxError{i_, why_};
    }
    return std::nullopt;
  }

 private:
  static constexpr int kMaxDepth = 1024;  // simdjson's default

  bool at_end() const noexcept { return i_ >= s_.size(); }
  char peek() const noexcept { return at_end() ? '\0' : s_[i_]; }
  bool fail(std::string_view why) {
    if (why_.empty()) why_ = at_end() ? "the text ends early (cut short?)" : std::string(why);
    return false;
  }
  void ws() {
    while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) {
      ++i_;
    }
  }
  bool eat(char c) {
    if (at_end() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  bool literal(std::string_view word) {
    for (char c : word) {
      if (!eat(c)) return fail("expected a value (true, false and null are lowercase)");
    }
    return true;
  }
  bool digits() {
    const std::size_t start = i_;
    while (!at_end() && is_digit(s_[i_])) ++i_;
    return i_ > start;
  }
  bool number() {
    eat('-');
    if (!eat('0') && !digits()) return fail("expected a value");
    if (eat('.') && !digits()) return fail("expected a digit after the decimal point");
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (!eat('+')) eat('-');
      if (!digits()) return fail("expected a digit in the exponent");
    }
    return true;
  }
  bool string() {
    if (!eat('"')) return fail("expected a string in double quotes");
    while (!at_end()) {
      const auto c = byte_at(s_, i_);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return fail("a control character (e.g. a line break) inside a string");
      if (c == '\\') {
        ++i_;
        if (peek() == 'u') {
          for (int k = 0; k < 4; ++k) {
            ++i_;
            if (!is_hex(peek()) || at_end()) return fail("expected 4 hex digits after \\u");
          }
        } else if (at_end() || std::string_view("\"\\/bfnrt").find(s_[i_]) == std::string::npos) {
          return fail("an invalid escape sequence");
        }
        ++i_;
        continue;
      }
      const std::size_t n = utf8_sequence_length(s_, i_);
      if (n == 0) return fail("invalid UTF-8");
      i_ += n;
    }
    return fail("the text ends inside a string");
  }
  bool value(int depth) {
    if (depth > kMaxDepth) return fail("nested too deeply");
    switch (peek()) {
      case '{':
        ++i_;
        ws();
        if (eat('}')) return true;
        while (true) {
          ws();
          if (peek() == '}') return fail("a comma before '}'");
          if (!string()) return false;
          ws();
          if (!eat(':')) return fail("expected ':' after the member name");
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (eat('}')) return true;
          if (!eat(',')) return fail("expected ',' or '}'");
        }
      case '[':
        ++i_;
        ws();
        if (eat(']')) return true;
        while (true) {
          ws();
          if (peek() == ']') return fail("a comma before ']'");
          if (!value(depth + 1)) return false;
          ws();
          if (eat(']')) return true;
          if (!eat(',')) return fail("expected ',' or ']'");
        }
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::string why_;
};

}  // namespace

std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const unsigned char b0 = byte_at(s, i);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80;  // the allowed range of the second byte
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
    return 0;  // a continuation byte, C0/C1 (always overlong) or F5..FF
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

bool valid_utf8(std::string_view s) noexcept {
  // simdjson's SIMD validator enforces the same rules as utf8_sequence_length() (json_test checks
  // the two agree), many times faster on the long message texts every request carries.
  return simdjson::validate_utf8(s.data(), s.size());
}

bool append_json_escaped(std::string& out, std::string_view s) {
  if (!valid_utf8(s)) return false;
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

std::optional<JsonSyntaxError> find_json_syntax_error(std::string_view text) {
  return JsonScan(text).first_error();
}

std::string text_position(std::string_view text, std::size_t offset) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    const auto c = byte_at(text, i);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++column;
    }
  }
  return std::to_string(line) + ':' + std::to_string(column) + " (byte " + std::to_string(offset) +
         ')';
}

}  // namespace glmproxy::detail
