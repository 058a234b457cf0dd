// The tenant key file: reading and checking it (with line:column for malformed JSON, the JSON
// path for a wrong shape), ISO 8601 times, and usage merged in under a lock and written
// atomically.

#include "keys/key_store.hpp"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "core/no_throw.hpp"
#include "core/saturating.hpp"
#include "glmproxy/config.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

using SysClock = std::chrono::system_clock;

Error config_error(const std::string& path, std::string_view what) {
  return make_error(ErrorCode::InvalidConfig, fmt::format("APIKEYS_FILE {}: {}", path, what));
}

// std::strerror() may share a buffer between threads; this does not.
std::string errno_text(int err) { return std::generic_category().message(err); }

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_hex(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// The length of the well-formed UTF-8 sequence at s[i] (1 to 4), or 0 for an invalid one
// (overlong forms, surrogates, > U+10FFFF, cut short): the rules simdjson enforces.
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// --- where malformed JSON goes wrong (simdjson's DOM parser only says that it does) ---------

// A strict RFC 8259 recogniser that stops at the first byte which cannot continue a valid
// document, and says why.
class JsonScan {
 public:
  explicit JsonScan(std::string_view text) : s_(text) {}

  // The offset of the first offending byte, or nullopt when the text is valid JSON.
  std::optional<std::size_t> first_error() {
    ws();
    if (!value(0)) return i_;
    ws();
    if (i_ != s_.size()) {
      fail("text after the end of the JSON value");
      return i_;
    }
    return std::nullopt;
  }
  const std::string& why() const noexcept { return why_; }

 private:
  static constexpr int kMaxDepth = 1024;  // simdjson's default

  bool at_end() const noexcept { return i_ >= s_.size(); }
  char peek() const noexcept { return at_end() ? '\0' : s_[i_]; }
  bool fail(std::string_view why) {
    if (why_.empty()) why_ = at_end() ? "the file ends early (cut short?)" : std::string(why);
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
      const auto c = static_cast<unsigned char>(s_[i_]);
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
      const std::size_t n = utf8_sequence(s_, i_);
      if (n == 0) return fail("invalid UTF-8");
      i_ += n;
    }
    return fail("the file ends inside a string");
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

// "line:column (byte N)", 1-based, the column counted in characters as editors show it.
std::string position(std::string_view text, std::size_t offset) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++column;
    }
  }
  return fmt::format("{}:{} (byte {})", line, column, offset);
}

// A file descriptor closed when it goes out of scope, also when an allocation throws.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// What a file that is not a regular file is, for the message.
std::string_view file_kind(mode_t mode) noexcept {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

Error not_regular(const std::string& path, mode_t mode) {
  return config_error(path, fmt::format("it is {}, not a regular file", file_kind(mode)));
}

Error too_large(const std::string& path, std::optional<std::int64_t> size) {
  return config_error(path, fmt::format("the file is larger than the limit of {} MiB ({} bytes){}",
                                        KeyStore::kMaxFileBytes >> 20, KeyStore::kMaxFileBytes,
                                        size ? fmt::format(": it has {} bytes", *size) : ""));
}

// The whole file, at most KeyStore::kMaxFileBytes of it: only a regular file is read (a
// directory, a device such as /dev/zero, a FIFO or a socket is refused), and no more than the
// limit + 1 bytes, so a file that grows while it is read is refused too instead of exhausting
// memory.
Result<std::string> read_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO without a writer would otherwise wait for one. It changes
  // nothing for a regular file; O_NOCTTY keeps a terminal from becoming ours.
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    return config_error(path, fmt::format("cannot open it ({})", errno_text(errno)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return config_error(path, fmt::format("cannot stat it ({})", errno_text(errno)));
  }
  if (!S_ISREG(st.st_mode)) return not_regular(path, st.st_mode);
  if (st.st_size > static_cast<off_t>(KeyStore::kMaxFileBytes)) {
    return too_large(path, static_cast<std::int64_t>(st.st_size));
  }
  std::string out;
  // The size fstat saw, plus what simdjson wants after the text: usually one allocation.
  out.reserve(static_cast<std::size_t>(st.st_size) + simdjson::SIMDJSON_PADDING);
  char buf[65536];
  while (out.size() <= KeyStore::kMaxFileBytes) {
    const std::size_t want = std::min(sizeof buf, KeyStore::kMaxFileBytes + 1 - out.size());
    const ssize_t n = ::read(fd.get(), buf, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return config_error(path, fmt::format("cannot read it ({})", errno_text(errno)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (out.size() > KeyStore::kMaxFileBytes) return too_large(path, std::nullopt);
  return out;
}

// --- the records ------------------------------------------------------------------------------

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
    return config_error(file_, fmt::format("{} must be {}, got {}", where, expected, got));
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
    return config_error(file, fmt::format("{} must be an object, got {}", at, describe(item)));
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

Result<std::vector<KeyRecord>> parse_records(const std::string& file, std::string& text) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return config_error(file, "the file is empty; it must hold {\"keys\": [...]}");
  }
  JsonScan scan(text);
  if (auto bad = scan.first_error()) {
    return config_error(file, fmt::format("not valid JSON at line:column {}: {}",
                                          position(text, *bad), scan.why()));
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
    return config_error(file, fmt::format("not valid JSON ({})", simdjson::error_message(error)));
  }
  simdjson::dom::object top;
  if (root.get_object().get(top)) {
    return config_error(
        file,
        fmt::format("the top level must be an object {{\"keys\": [...]}}, got {}", describe(root)));
  }
  simdjson::dom::element keys_value;
  simdjson::dom::array keys;
  if (top["keys"].get(keys_value)) {
    return config_error(file, "keys must be an array, got nothing (missing)");
  }
  if (keys_value.get_array().get(keys)) {
    return config_error(file, fmt::format("keys must be an array, got {}", describe(keys_value)));
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
      return config_error(file,
                          fmt::format("keys[{}].key: the key {} appears twice (also keys[{}])", i,
                                      redact_key(out[i].key), it->second));
    }
  }
  return out;
}

// --- writing ----------------------------------------------------------------------------------

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

std::string serialize(const std::vector<KeyRecord>& records) {
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

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Writes `text` to a new file beside `path`, fsyncs it, renames it over `path` and fsyncs the
// directory: readers see the old file or the new one, never a mix, and a crash leaves one of
// the two (plus, at worst, a stray temp file).
Result<void> replace_file(const std::string& path, const std::string& text) {
  static std::atomic<std::uint64_t> counter{0};
  mode_t mode = 0600;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 0777;
  // Nothing may throw between creating the temp file and the rename (it would be left behind),
  // nor after the rename (a write that happened would be reported as failed): what needs
  // memory is made first (a failed attempt below leaves no file).
  const std::string directory = directory_of(path);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    // pid + counter is unique among live writers; the clock avoids a stale file of a dead one.
    const auto nanos = std::chrono::steady_clock::now().time_since_epoch().count();
    tmp = fmt::format("{}.tmp.{}.{}.{:x}", path, static_cast<long>(::getpid()),
                      counter.fetch_add(1, std::memory_order_relaxed),
                      static_cast<std::uint64_t>(nanos) & 0xFFFFFF);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    return config_error(path, fmt::format("cannot create {} ({})", tmp, errno_text(errno)));
  }
  auto fail = [&](std::string_view what, int err) {
    ::unlink(tmp.c_str());
    return config_error(path, fmt::format("cannot {} {} ({})", what, tmp, errno_text(err)));
  };
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return fail("write", err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return fail("flush", err);
  }
  if (::close(fd) != 0) return fail("close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename", errno);
  // The new file is in place; a failed directory fsync only weakens durability after a crash.
  const int dfd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

// An exclusive flock on "<path>.lock" for as long as it lives. flock locks belong to the open
// file description, so two KeyStore objects in one process exclude each other too.
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    // O_NONBLOCK: a FIFO in the lock file's place must not make opening it wait (flock still
    // waits for the lock: only LOCK_NB would stop it).
    fd_ = ::open((path + ".lock").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
                 0644);
    if (fd_ < 0) {
      error_ = errno;
      return;
    }
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      error_ = errno;
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  bool held() const noexcept { return fd_ >= 0; }
  int error() const noexcept { return error_; }

 private:
  int fd_ = -1;
  int error_ = 0;
};

int two_digits(std::string_view s, std::size_t at) noexcept {
  if (at + 2 > s.size() || !is_digit(s[at]) || !is_digit(s[at + 1])) return -1;
  return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

}  // namespace

std::optional<SysClock::time_point> parse_iso8601(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS, then [.fraction], then Z or +HH:MM / -HH:MM (RFC 3339 section 5.6).
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  const int y1 = two_digits(s, 0), y2 = two_digits(s, 2), mo = two_digits(s, 5),
            d = two_digits(s, 8), h = two_digits(s, 11), mi = two_digits(s, 14),
            se = two_digits(s, 17);
  // Second 60: a leap second, which system_clock (Unix time) folds into the next minute.
  if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      se < 0 || se > 60) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y1 * 100 + y2),
                                        std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  std::size_t i = 19;
  std::chrono::nanoseconds fraction{0};
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::int64_t ns = 0;
    int n = 0;
    for (; i < s.size() && is_digit(s[i]); ++i, ++n) {
      if (n < 9) ns = ns * 10 + (s[i] - '0');
    }
    if (n == 0) return std::nullopt;
    for (int k = n; k < 9; ++k) ns *= 10;
    fraction = std::chrono::nanoseconds(ns);
  }
  std::chrono::minutes offset{0};
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int oh = two_digits(s, i + 1), om = two_digits(s, i + 4);
    if (i + 6 > s.size() || s[i + 3] != ':' || oh < 0 || oh > 23 || om < 0 || om > 59) {
      return std::nullopt;
    }
    offset = std::chrono::hours(oh) + std::chrono::minutes(om);
    if (s[i] == '-') offset = -offset;
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  // In seconds first: years 0000 to 9999 fit, but system_clock's nanoseconds only reach 1677 to
  // 2262, and "9999-12-31T23:59:59Z" is a common "never expires". Times outside its range are
  // held at its ends (overflowing them would be undefined behaviour).
  const std::chrono::sys_seconds secs = std::chrono::sys_days(ymd) + std::chrono::hours(h) +
                                        std::chrono::minutes(mi) + std::chrono::seconds(se) -
                                        offset;
  constexpr auto kLatest = std::chrono::floor<std::chrono::seconds>(SysClock::time_point::max());
  constexpr auto kEarliest = std::chrono::ceil<std::chrono::seconds>(SysClock::time_point::min());
  if (secs >= kLatest) return SysClock::time_point::max();
  if (secs <= kEarliest) return SysClock::time_point::min();
  return std::chrono::time_point_cast<SysClock::duration>(secs) +
         std::chrono::floor<SysClock::duration>(fraction);
}

std::string format_iso8601(SysClock::time_point t) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto days = std::chrono::floor<std::chrono::days>(secs);
  const std::chrono::year_month_day ymd{days};
  const std::chrono::hh_mm_ss hms{secs - days};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

// Each public function runs in no_throw(): an allocation failure (a file near the size limit
// needs several times its size while parsed) or a std::system_error from a mutex becomes an
// Error instead of leaving the library.

Result<std::unique_ptr<KeyStore>> KeyStore::open(std::string path) {
  return no_throw({"APIKEYS_FILE ", path, ": reading it"},
                  [&]() -> Result<std::unique_ptr<KeyStore>> {
                    std::unique_ptr<KeyStore> store(new KeyStore(path));
                    std::lock_guard lock(store->mu_);
                    store->reads_.fetch_add(1, std::memory_order_relaxed);
                    auto records = store->load();
                    if (!records) return std::move(records).error();
                    for (const KeyRecord& r : *records) store->keys_at_open_.push_back(r.key);
                    return store;
                  });
}

Result<std::vector<KeyRecord>> KeyStore::load() {
  auto text = read_file(path_);
  if (!text) return std::move(text).error();
  return parse_records(path_, *text);
}

Result<std::optional<KeyRecord>> KeyStore::find(std::string_view key) {
  return no_throw({"APIKEYS_FILE ", path_, ": looking a key up"},
                  [&] { return find_unguarded(key); });
}

Result<std::optional<KeyRecord>> KeyStore::find_unguarded(std::string_view key) {
  std::lock_guard lock(mu_);
  reads_.fetch_add(1, std::memory_order_relaxed);
  auto records = load();
  if (!records) return std::move(records).error();
  for (KeyRecord& r : *records) {
    if (r.key == key) return std::optional<KeyRecord>(std::move(r));
  }
  return std::optional<KeyRecord>();
}

Result<std::size_t> KeyStore::apply(const std::vector<UsageDelta>& deltas,
                                    SysClock::time_point keep_after) {
  return no_throw({"APIKEYS_FILE ", path_, ": writing usage"},
                  [&] { return apply_unguarded(deltas, keep_after); });
}

Result<std::size_t> KeyStore::apply_unguarded(const std::vector<UsageDelta>& deltas,
                                              SysClock::time_point keep_after) {
  std::lock_guard lock(mu_);
  // Read, merge and write under the file lock: another writer's usage is in what we read, and
  // ours is in what it reads next, so both count.
  FileLock file_lock(path_);
  if (!file_lock.held()) {
    return config_error(
        path_, fmt::format("cannot lock {}.lock ({})", path_, errno_text(file_lock.error())));
  }
  auto records = load();
  if (!records) return std::move(records).error();
  std::unordered_map<std::string_view, std::size_t> by_key;
  for (std::size_t i = 0; i < records->size(); ++i) by_key.emplace((*records)[i].key, i);
  std::vector<std::optional<SysClock::time_point>> latest(records->size());
  for (const UsageDelta& d : deltas) {
    const auto it = by_key.find(d.key);
    if (it == by_key.end()) continue;  // the key was removed meanwhile
    KeyRecord& r = (*records)[it->second];
    auto& used = latest[it->second];
    used = used ? std::max(*used, d.used_at) : d.used_at;
    if (d.tokens <= 0) continue;
    auto w = std::find_if(r.usage_windows.begin(), r.usage_windows.end(),
                          [&](const UsageWindow& u) { return u.start == d.bucket_start; });
    if (w == r.usage_windows.end()) {
      r.usage_windows.push_back(UsageWindow{d.bucket_start, 0, {}});
      w = std::prev(r.usage_windows.end());
    }
    // The file's counts are >= 0 (checked when read), the deltas > 0: the sums only stop at
    // INT64_MAX.
    w->tokens = saturating_add(w->tokens, d.tokens);
    r.total_lifetime_tokens = saturating_add(r.total_lifetime_tokens, d.tokens);
  }
  std::size_t changed = 0;
  for (std::size_t i = 0; i < records->size(); ++i) {
    KeyRecord& r = (*records)[i];
    std::erase_if(r.usage_windows, [&](const UsageWindow& u) { return u.start < keep_after; });
    std::stable_sort(r.usage_windows.begin(), r.usage_windows.end(),
                     [](const UsageWindow& a, const UsageWindow& b) { return a.start < b.start; });
    if (!latest[i]) continue;
    ++changed;
    // The file keeps seconds, so compare seconds; an unreadable last_used is replaced.
    const auto previous = parse_iso8601(r.last_used);
    const auto floor_s = [](SysClock::time_point t) {
      return std::chrono::floor<std::chrono::seconds>(t);
    };
    if (!previous || floor_s(*previous) < floor_s(*latest[i])) {
      r.last_used = format_iso8601(*latest[i]);
    }
  }
  if (auto written = replace_file(path_, serialize(*records)); !written) {
    return std::move(written).error();
  }
  writes_.fetch_add(1, std::memory_order_relaxed);
  return changed;
}

}  // namespace glmproxy::detail
