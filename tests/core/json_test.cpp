#include "core/json.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

using glmproxy::detail::append_json_escaped;
using glmproxy::detail::append_json_string;
using glmproxy::detail::find_json_syntax_error;
using glmproxy::detail::json_finite;
using glmproxy::detail::text_position;
using glmproxy::detail::utf8_sequence_length;
using glmproxy::detail::valid_utf8;

namespace {

// Byte strings that are not UTF-8 (RFC 3629), each with the reason.
const std::vector<std::pair<std::string, std::string_view>> kInvalid = {
    {std::string("\x80", 1), "lone continuation byte"},
    {std::string("a\xBF"
                 "b",
                 3),
     "continuation byte mid-string"},
    {std::string("\xC0\xAF", 2), "overlong '/' (C0)"},
    {std::string("\xC1\xBF", 2), "overlong 2-byte (C1)"},
    {std::string("\xE0\x80\xAF", 3), "overlong 3-byte"},
    {std::string("\xE0\x9F\xBF", 3), "overlong 3-byte, highest"},
    {std::string("\xF0\x80\x80\xAF", 4), "overlong 4-byte"},
    {std::string("\xF0\x8F\xBF\xBF", 4), "overlong 4-byte, highest"},
    {std::string("\xED\xA0\x80", 3), "surrogate U+D800"},
    {std::string("\xED\xBF\xBF", 3), "surrogate U+DFFF"},
    {std::string("\xED\xA0\xBD\xED\xB8\x80", 6), "a surrogate pair encoded as two (CESU-8)"},
    {std::string("\xF4\x90\x80\x80", 4), "above U+10FFFF"},
    {std::string("\xF5\x80\x80\x80", 4), "lead byte F5"},
    {std::string("\xFF", 1), "FF never valid"},
    {std::string("\xFE", 1), "FE never valid"},
    {std::string("\xC3", 1), "truncated 2-byte at the end"},
    {std::string("\xE2\x82", 2), "truncated 3-byte at the end"},
    {std::string("x\xF0\x9F\x98", 4), "truncated 4-byte at the end"},
    {std::string("\xC3"
                 "A",
                 2),
     "lead byte followed by ASCII"},
    {std::string("\xE2\x28\xA1", 3), "3-byte with a bad second byte"},
    {std::string("\xF0\x9F\x98\x28", 4), "4-byte with a bad last byte"},
};

// Well-formed edge cases: the first and last code point of each length, the ones next to the
// surrogates, U+10FFFF.
const std::vector<std::pair<std::string, std::string_view>> kValid = {
    {std::string(), "empty"},
    {std::string("\x00", 1), "U+0000"},
    {std::string("\x7F", 1), "U+007F"},
    {std::string("\xC2\x80", 2), "U+0080"},
    {std::string("\xDF\xBF", 2), "U+07FF"},
    {std::string("\xE0\xA0\x80", 3), "U+0800"},
    {std::string("\xED\x9F\xBF", 3), "U+D7FF"},
    {std::string("\xEE\x80\x80", 3), "U+E000"},
    {std::string("\xEF\xBF\xBF", 3), "U+FFFF"},
    {std::string("\xF0\x90\x80\x80", 4), "U+10000"},
    {std::string("\xF4\x8F\xBF\xBF", 4), "U+10FFFF"},
    {std::string("h\xC3\xA9llo \xE4\xB8\xAD \xF0\x9F\x98\x80"), "mixed text"},
};

// utf8_sequence_length() stepped over the whole string.
bool valid_by_steps(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace

TEST_CASE("valid_utf8 and utf8_sequence_length refuse overlong, surrogate, truncated bytes",
          "[core][json][utf8]") {
  for (const auto& [bytes, why] : kInvalid) {
    INFO(why);
    CHECK_FALSE(valid_utf8(bytes));
    CHECK_FALSE(valid_by_steps(bytes));
  }
  for (const auto& [bytes, why] : kValid) {
    INFO(why);
    CHECK(valid_utf8(bytes));
    CHECK(valid_by_steps(bytes));
  }
}

TEST_CASE("utf8_sequence_length gives each sequence's length", "[core][json][utf8]") {
  const std::string s = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";
  CHECK(utf8_sequence_length(s, 0) == 1);
  CHECK(utf8_sequence_length(s, 1) == 2);
  CHECK(utf8_sequence_length(s, 3) == 3);
  CHECK(utf8_sequence_length(s, 6) == 4);
  CHECK(utf8_sequence_length(s, 2) == 0);  // inside a sequence
  // A sequence cut by the end of the view, though the bytes go on in memory.
  CHECK(utf8_sequence_length(std::string_view(s).substr(0, 8), 6) == 0);
}

TEST_CASE("the two UTF-8 checks agree on every 1- and 2-byte string and on 3- and 4-byte leads",
          "[core][json][utf8]") {
  std::size_t checked = 0;
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const char bytes[] = {static_cast<char>(a), static_cast<char>(b)};
      const std::string_view two(bytes, 2);
      if (valid_utf8(two) != valid_by_steps(two)) FAIL_CHECK("bytes " << a << " " << b);
      const std::string_view one(bytes, 1);
      if (valid_utf8(one) != valid_by_steps(one)) FAIL_CHECK("byte " << a);
      for (int c : {0x80, 0x9F, 0xA0, 0xBF}) {
        const char three[] = {static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)};
        const std::string_view t(three, 3);
        if (valid_utf8(t) != valid_by_steps(t)) FAIL_CHECK("bytes " << a << " " << b << " " << c);
        const char four[] = {static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                             '\x80'};
        const std::string_view f(four, 4);
        if (valid_utf8(f) != valid_by_steps(f)) FAIL_CHECK("4 bytes from " << a << " " << b);
        checked += 2;
      }
      checked += 2;
    }
  }
  CHECK(checked == 256u * 256u * 10u);
}

TEST_CASE("append_json_string escapes every control character", "[core][json][escape]") {
  const std::map<int, std::string> kShort = {
      {'\b', "\\b"}, {'\t', "\\t"}, {'\n', "\\n"}, {'\f', "\\f"}, {'\r', "\\r"}};
  for (int c = 0; c < 0x20; ++c) {
    std::string out;
    REQUIRE(append_json_string(out, std::string(1, static_cast<char>(c))));
    char expected[16];
    std::snprintf(expected, sizeof expected, "\"\\u%04x\"", c);
    const auto it = kShort.find(c);
    INFO("char " << c);
    CHECK(out == (it != kShort.end() ? "\"" + it->second + "\"" : std::string(expected)));
  }
}

TEST_CASE("append_json_string: quotes, backslash, UTF-8, U+2028/9", "[core][json][escape]") {
  std::string out = "prefix:";
  REQUIRE(append_json_string(out, R"(a"b\c/d)"));
  CHECK(out == R"(prefix:"a\"b\\c/d")");

  out.clear();
  REQUIRE(append_json_string(out, "\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80\xE2\x82\xAC"));
  CHECK(out == "\"\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80\xE2\x82\xAC\"");  // raw, not \u-escaped

  out.clear();
  REQUIRE(append_json_string(out,
                             "a\xE2\x80\xA8"
                             "b\xE2\x80\xA9"));
  CHECK(out == R"("a\u2028b\u2029")");

  // Other characters led by 0xE2 stay raw (U+2026, U+20AC).
  out.clear();
  REQUIRE(append_json_string(out, "\xE2\x80\xA6\xE2\x82\xAC\xE2\x80\xAA"));
  CHECK(out == "\"\xE2\x80\xA6\xE2\x82\xAC\xE2\x80\xAA\"");

  out.clear();
  REQUIRE(append_json_string(out, ""));
  CHECK(out == R"("")");

  out.clear();
  REQUIRE(append_json_string(out, std::string_view("\x00\x7F", 2)));
  CHECK(out == "\"\\u0000\x7F\"");  // DEL is not a JSON control character

  out.clear();
  REQUIRE(append_json_escaped(out, "say \"hi\"\n"));
  CHECK(out == R"(say \"hi\"\n)");  // no quotes around
}

TEST_CASE("append_json_string rejects invalid UTF-8 and leaves the output alone",
          "[core][json][escape]") {
  for (const auto& [bad, why] : kInvalid) {
    INFO(why);
    std::string out = "kept";
    CHECK_FALSE(append_json_string(out, bad));
    CHECK(out == "kept");
    CHECK_FALSE(append_json_escaped(out, "ok \n" + bad));
    CHECK(out == "kept");
  }
}

TEST_CASE("json_finite writes NaN and infinity as 0", "[core][json]") {
  CHECK(json_finite(1.5) == 1.5);
  CHECK(json_finite(-0.25) == -0.25);
  CHECK(json_finite(std::numeric_limits<double>::quiet_NaN()) == 0.0);
  CHECK(json_finite(std::numeric_limits<double>::infinity()) == 0.0);
  CHECK(json_finite(-std::numeric_limits<double>::infinity()) == 0.0);
}

TEST_CASE("find_json_syntax_error accepts valid JSON and points at the first bad byte",
          "[core][json][syntax]") {
  for (std::string_view ok :
       {R"({})", R"([])", R"( {"a": [1, -2.5e+3, true, false, null, "x\u00e9\n"]} )", R"("s")", "0",
        "-0.0E-1", "{\"k\": \"\xC3\xA9\"}"}) {
    INFO(ok);
    CHECK_FALSE(find_json_syntax_error(ok));
  }
  struct Case {
    std::string text;
    std::size_t offset;
    std::string_view why;
  };
  const Case cases[] = {
      {"{\"a\": 1,}", 8, "a comma before '}'"},
      {"[1,]", 3, "a comma before ']'"},
      {"{\"a\" 1}", 5, "expected ':'"},
      {"{a: 1}", 1, "expected a string"},
      {"[tru]", 4, "lowercase"},
      {"[01]", 2, "expected ',' or ']'"},
      {"[1.]", 3, "decimal point"},
      {"[1e]", 3, "exponent"},
      {"\"a\nb\"", 2, "control character"},
      {"\"a\\x\"", 3, "escape"},
      {"\"\\u12G4\"", 5, "hex digits"},
      {std::string("\"a\xC0\xAF\"", 5), 2, "invalid UTF-8"},
      {std::string("\"a\xED\xA0\x80\"", 6), 2, "invalid UTF-8"},
      {"{} {}", 3, "after the end"},
      {"{\"a\": [1, 2", 11, "ends early"},
      {"\"abc", 4, "ends"},
      {"", 0, "ends early"},
      {std::string(1100, '[') + std::string(1100, ']'), 1025, "nested too deeply"},
  };
  for (const Case& c : cases) {
    INFO(c.text.substr(0, 40));
    const auto error = find_json_syntax_error(c.text);
    REQUIRE(error);
    CHECK(error->offset == c.offset);
    CHECK_THAT(error->why, Catch::Contains(std::string(c.why)));
  }
}

TEST_CASE("text_position counts lines and characters", "[core][json][syntax]") {
  CHECK(text_position("abc", 0) == "1:1 (byte 0)");
  CHECK(text_position("abc", 2) == "1:3 (byte 2)");
  CHECK(text_position("a\nbc", 3) == "2:2 (byte 3)");
  // "ü" is two bytes but one column.
  CHECK(text_position("\xC3\xBCx", 2) == "1:2 (byte 2)");
  CHECK(text_position("ab", 10) == "1:3 (byte 10)");  // past the end: stops at the end
}
