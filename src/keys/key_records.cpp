// The key file's records (the reference gateway's apikeys.json): read and checked with the JSON
// path of a wrong value, and written back keeping what was read.

#include "keys/key_records.hpp"

#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "core/json.hpp"
#include "glmproxy/config.hpp"
#include "keys/iso8601.hpp"
#include "keys/key_file_io.hpp"

namespace glmproxy::detail {

// --- reading ----------------------------------------------------------------------------------

namespace {

using SysClock = std::chrono::system_clock;

// What a wrong value was, for "..., got X". Never a string's contents: it may be a key.
std::string describe(simdjson::dom::element v) {
  switch (v.type()) {
    case simdjson::dom::element_type::ARRAY:
      return "an array";
    case simdjson::dom::element_type::OBJECT:
      return "an object";
    case simdjson::dom::element_type::STRING:
      return v.get_string().value_unsafe().empty() ? "an empty string" : "a string";
    case simdjson::dom::element_type::BOOL:
      return v.get_bool().value_unsafe() ? "true" : "false";
    case simdjson::dom::element_type::NULL_VALUE:
      return "null";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
      break;
  }
  std::string number = simdjson::minify(v);
  if (number.size() > 40) number = number.substr(0, 40) + "...";
  return number;
}

// A timestamp that did not parse, quoted for a message: at most ~40 bytes, cut between
// characters (the text is valid UTF-8: simdjson checked).
std::string quote_time(std::string_view s) {
  std::size_t end = std::min<std::size_t>(s.size(), 40);
  while (end < s.size() && end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  std::string out;
  append_json_string(out, s.substr(0, end));
  if (end < s.size()) out += "...";
  return out;
}

// The members of one object, with errors naming their JSON path and the record's key.
class Fields {
 public:
  Fields(const std::string& file, simdjson::dom::object object, std::string at,
         std::string key_label = {})
      : file_(file), object_(object), at_(std::move(at)), key_label_(std::move(key_label)) {}

  void set_key(std::string_view key) { key_label_ = redact_key(key); }
  const std::string& key_label() const noexcept { return key_label_; }
  const std::string& at() const noexcept { return at_; }

  Error wrong(std::string_view name, std::string_view expected, std::string_view got) const {
    std::string where = name.empty() ? at_ : fmt::format("{}.{}", at_, name);
    if (!key_label_.empty()) where += fmt::format(" (key {})", key_label_);
    return key_file_error(file_, fmt::format("{} must be {}, got {}", where, expected, got));
  }

  // A string member; absent or null gives "" (an error when `required`).
  Result<void> text(std::string_view name, std::string& into, bool required) const {
    simdjson::dom::element v;
    const bool missing = object_[name].get(v) != simdjson::SUCCESS;
    if (missing || v.is_null()) {
      if (required) return wrong(name, "a string", missing ? "nothing (missing)" : "null");
      into.clear();
      return {};
    }
    std::string_view s;
    if (v.get_string().get(s)) return wrong(name, "a string", describe(v));
    into.assign(s);
    return {};
  }

  Result<void> integer(std::string_view name, std::int64_t& into, std::int64_t min,
                       bool required) const {
    const std::string expected = fmt::format("an integer >= {}", min);
    simdjson::dom::element v;
    const bool missing = object_[name].get(v) != simdjson::SUCCESS;
    if (missing || v.is_null()) {
      if (required) return wrong(name, expected, missing ? "nothing (missing)" : "null");
      return {};
    }
    std::int64_t n = 0;
    if (v.get_int64().get(n) || n < min) return wrong(name, expected, describe(v));
    into = n;
    return {};
  }

  // An ISO 8601 string member: `raw` as written, `parsed` when it is not empty.
  Result<void> time(std::string_view name, std::string& raw,
                    std::optional<SysClock::time_point>& parsed, bool required) const {
    if (auto ok = text(name, raw, required); !ok) return ok;
    if (raw.empty()) {
      if (required) return wrong(name, "an ISO 8601 time", "an empty string");
      return {};
    }
    parsed = parse_iso8601(raw);
    if (!parsed) {
      return wrong(name, "an ISO 8601 time like \"2026-01-18T00:00:00Z\" or null", quote_time(raw));
    }
    return {};
  }

 private:
  const std::string& file_;
  simdjson::dom::object object_;
  std::string at_;
  std::string key_label_;
};

Result<void> parse_windows(const std::string& file, const Fields& f, simdjson::dom::object o,
                           KeyRecord& r) {
  simdjson::dom::element windows;
  if (o["usage_windows"].get(windows) || windows.is_null()) return {};
  simdjson::dom::array list;
  if (windows.get_array().get(list)) return f.wrong("usage_windows", "an array", describe(windows));
  std::size_t j = 0;
  for (simdjson::dom::element w : list) {
    const std::string name = fmt::format("usage_windows[{}]", j++);
    simdjson::dom::object wo;
    if (w.get_object().get(wo)) {
      return f.wrong(name, "an object {\"window_start\": ..., \"tokens_used\": ...}", describe(w));
    }
    const Fields wf(file, wo, f.at() + "." + name, f.key_label());
    UsageWindow window;
    std::optional<SysClock::time_point> start;
    if (auto ok = wf.time("window_start", window.raw_start, start, true); !ok) return ok;
    if (auto ok = wf.integer("tokens_used", window.tokens, 0, true); !ok) return ok;
    window.start = *start;
    r.usage_windows.push_back(std::move(window));
  }
  return {};
}

Result<KeyRecord> parse_record(const std::string& file, simdjson::dom::element item,
                               std::size_t index) {
  const std::string at = fmt::format("keys[{}]", index);
  simdjson::dom::object o;
  if (item.get_object().get(o)) {
    return key_file_error(file, fmt::format("{} must be an object, got {}", at, describe(item)));
  }
  Fields f(file, o, at);
  KeyRecord r;
  if (auto ok = f.text("key", r.key, true); !ok) return std::move(ok).error();
  if (r.key.empty()) return f.wrong("key", "a non-empty string", "an empty string");
  f.set_key(r.key);
  // Evaluated in order: the first wrong field is reported.
  Result<void> checks[] = {
      f.text("name", r.name, false),
      f.text("model", r.model, false),
      f.integer("token_limit_per_5h", r.token_limit_per_5h, 1, true),
      f.time("expiry_date", r.expiry_date, r.expiry, false),
      // Only kept and written back, never used: any string is accepted.
      f.text("created_at", r.created_at, false),
      f.text("last_used", r.last_used, false),
      f.integer("total_lifetime_tokens", r.total_lifetime_tokens, 0, false),
      parse_windows(file, f, o, r),
  };
  for (Result<void>& check : checks) {
    if (!check) return std::move(check).error();
  }
  return r;
}

}  // namespace

Result<std::vector<KeyRecord>> parse_key_records(const std::string& file, std::string& text) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return key_file_error(file, "the file is empty; it must hold {\"keys\": [...]}");
  }
  if (auto bad = find_json_syntax_error(text)) {
    return key_file_error(file, fmt::format("not valid JSON at line:column {}: {}",
                                            text_position(text, bad->offset), bad->why));
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  text.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  if (auto error = parser.parse(text.data(), text.size(), false).get(root)) {
    if (error == simdjson::MEMALLOC) {
      // Not the file's fault: said as what it is, not as a broken file.
      return make_error(ErrorCode::Internal,
                        fmt::format("APIKEYS_FILE {}: out of memory parsing it", file));
    }
    // Valid syntax simdjson still refuses, e.g. a number out of range.
    return key_file_error(file, fmt::format("not valid JSON ({})", simdjson::error_message(error)));
  }
  simdjson::dom::object top;
  if (root.get_object().get(top)) {
    return key_file_error(
        file,
        fmt::format("the top level must be an object {{\"keys\": [...]}}, got {}", describe(root)));
  }
  simdjson::dom::element keys_value;
  simdjson::dom::array keys;
  if (top["keys"].get(keys_value)) {
    return key_file_error(file, "keys must be an array, got nothing (missing)");
  }
  if (keys_value.get_array().get(keys)) {
    return key_file_error(file, fmt::format("keys must be an array, got {}", describe(keys_value)));
  }
  std::vector<KeyRecord> out;
  std::unordered_map<std::string_view, std::size_t> seen;  // views into `out`'s stable strings
  std::size_t index = 0;
  for (simdjson::dom::element item : keys) {
    auto record = parse_record(file, item, index);
    if (!record) return std::move(record).error();
    out.push_back(std::move(*record));
    ++index;
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto [it, inserted] = seen.emplace(out[i].key, i);
    if (!inserted) {
      return key_file_error(file,
                            fmt::format("keys[{}].key: the key {} appears twice (also keys[{}])", i,
                                        redact_key(out[i].key), it->second));
    }
  }
  return out;
}

// --- writing ----------------------------------------------------------------------------------

namespace {

void write_string(std::string& out, std::string_view name, std::string_view value,
                  bool null_if_empty) {
  out += fmt::format("      \"{}\": ", name);
  if (value.empty() && null_if_empty) {
    out += "null";
  } else {
    append_json_string(out, value);  // valid UTF-8: read from a file simdjson validated
  }
  out += ",\n";
}

}  // namespace

std::string serialize_key_records(const std::vector<KeyRecord>& records) {
  std::string out = "{\n  \"keys\": [";
  for (std::size_t i = 0; i < records.size(); ++i) {
    const KeyRecord& r = records[i];
    out += i == 0 ? "\n    {\n" : ",\n    {\n";
    write_string(out, "key", r.key, false);
    write_string(out, "name", r.name, false);
    write_string(out, "model", r.model, false);
    out += fmt::format("      \"token_limit_per_5h\": {},\n", r.token_limit_per_5h);
    write_string(out, "expiry_date", r.expiry_date, true);
    write_string(out, "created_at", r.created_at, true);
    write_string(out, "last_used", r.last_used, true);
    out += fmt::format("      \"total_lifetime_tokens\": {},\n", r.total_lifetime_tokens);
    out += "      \"usage_windows\": [";
    for (std::size_t j = 0; j < r.usage_windows.size(); ++j) {
      const UsageWindow& w = r.usage_windows[j];
      out += j == 0 ? "\n        {\"window_start\": " : ",\n        {\"window_start\": ";
      append_json_string(out, w.raw_start.empty() ? format_iso8601(w.start) : w.raw_start);
      out += fmt::format(", \"tokens_used\": {}}}", w.tokens);
    }
    out += r.usage_windows.empty() ? "]\n    }" : "\n      ]\n    }";
  }
  out += records.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

}  // namespace glmproxy::detail
