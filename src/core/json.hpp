#pragma once

// The JSON pieces every layer shares (not public): the one UTF-8 validator, the one string
// escaper, and a strict syntax check that says where a document goes wrong. Parsing proper
// (simdjson's DOM) stays with its users (protocol/, keys/, cache/). Every function is
// thread-safe (no shared state).

#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace glmproxy::detail {

/// The length (1 to 4) of the well-formed UTF-8 sequence starting at s[i], or 0 when the bytes
/// there are not one (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF, not
/// cut short by the end of `s`). `i` must be < s.size().
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept;

/// Whether all of `s` is well-formed UTF-8, by the rules of utf8_sequence_length().
bool valid_utf8(std::string_view s) noexcept;

/// Appends the body of a JSON string literal for `s`, without the quotes: \" \\ \n \r \t \b \f,
/// other control characters as \u00XX, U+2028/U+2029 as \u2028/\u2029 (JSON allows them raw,
/// JavaScript string literals do not); everything else as it is. Returns false, leaving `out`
/// as it was, when `s` is not valid UTF-8.
bool append_json_escaped(std::string& out, std::string_view s);

/// append_json_escaped() inside double quotes; false (and `out` unchanged) for invalid UTF-8.
bool append_json_string(std::string& out, std::string_view s);

/// `v` when finite, else 0: JSON has no NaN or infinity.
inline double json_finite(double v) noexcept { return std::isfinite(v) ? v : 0.0; }

/// Where a text stops being valid JSON: the offset of the first byte that cannot continue a
/// valid document, and why in words ("expected ',' or '}'", "invalid UTF-8", ...).
struct JsonSyntaxError {
  std::size_t offset = 0;
  std::string why;
};

/// A strict RFC 8259 check of `text` (one value, whitespace around it, strings well-formed
/// UTF-8, nesting up to 1024 levels as simdjson allows): nullopt when it is valid JSON, else
/// the first offending byte. For messages about hand-edited files: simdjson's DOM parser only
/// says that a document is broken, not where.
std::optional<JsonSyntaxError> find_json_syntax_error(std::string_view text);

/// "line:column (byte N)" of `offset` in `text`, 1-based, the column counted in characters as
/// editors show it.
std::string text_position(std::string_view text, std::size_t offset);

}  // namespace glmproxy::detail
