#include "keys/key_store.hpp"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "glmproxy/config.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

using SysClock = std::chrono::system_clock;

Error config_error(const std::string& path, std::string what) {
  return make_error(ErrorCode::InvalidConfig, fmt::format("APIKEYS_FILE {}: {}", path, what));
}

// --- where malformed JSON goes wrong (simdjson's DOM parser only says that it does) ---------

class SyntaxScan {
 public:
  explicit SyntaxScan(std::string_view text) : b_(text.data()), p_(b_), e_(b_ + text.size()) {}

  // The offset of the first byte that makes the text invalid JSON; nullopt when it is valid.
  std::optional<std::size_t> first_error() {
    ws();
    if (!value(0)) return offset();
    ws();
    if (p_ != e_) return offset();
    return std::nullopt;
  }

 private:
  std::size_t offset() const { return static_cast<std::size_t>(p_ - b_); }
  void ws() {
    while (p_ < e_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool eat(char c) {
    if (p_ < e_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    for (char c : word) {
      if (!eat(c)) return false;
    }
    return true;
  }
  bool digits() {
    const char* start = p_;
    while (p_ < e_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ > start;
  }
  bool number() {
    eat('-');
    if (!digits()) return false;
    if (eat('.') && !digits()) return false;
    if (p_ < e_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    return true;
  }
  bool string() {
    if (!eat('"')) return false;
    while (p_ < e_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++p_;
        if (p_ >= e_) return false;
        if (*p_ == 'u') {
          for (int i = 0; i < 4; ++i) {
            ++p_;
            if (p_ >= e_ || !std::isxdigit(static_cast<unsigned char>(*p_))) return false;
          }
        } else if (std::strchr("\"\\/bfnrt", *p_) == nullptr) {
          return false;
        }
      }
      ++p_;
    }
    return false;
  }
  bool value(int depth) {
    if (depth > 512 || p_ >= e_) return false;
    switch (*p_) {
      case '{': {
        ++p_;
        ws();
        if (eat('}')) return true;
        while (true) {
          ws();
          if (!string()) return false;
          ws();
          if (!eat(':')) return false;
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (eat('}')) return true;
          if (!eat(',')) return false;
        }
      }
      case '[': {
        ++p_;
        ws();
        if (eat(']')) return true;
        while (true) {
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (eat(']')) return true;
          if (!eat(',')) return false;
        }
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

  const char* b_;
  const char* p_;
  const char* e_;
};

std::string position(std::string_view text, std::size_t offset) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return fmt::format("{}:{} (byte {})", line, column, offset);
}

Result<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return config_error(path, fmt::format("cannot open it ({})", std::strerror(errno)));
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return config_error(path, fmt::format("cannot read it ({})", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// --- the records ------------------------------------------------------------------------------

struct Shape {
  const std::string& path;
  Error wrong(const std::string& where, std::string_view expected) const {
    return config_error(path, fmt::format("{} must be {}", where, expected));
  }
};

Result<std::vector<KeyRecord>> parse_records(const std::string& path, std::string& text) {
  if (auto bad = SyntaxScan(text).first_error()) {
    return config_error(path,
                        fmt::format("not valid JSON at line:column {}", position(text, *bad)));
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  text.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  if (auto error = parser.parse(text.data(), text.size(), false).get(root)) {
    return config_error(path, fmt::format("not valid JSON ({})", simdjson::error_message(error)));
  }
  const Shape shape{path};
  simdjson::dom::array keys;
  if (root["keys"].get_array().get(keys)) return shape.wrong("the top level", "{\"keys\": [...]}");
  std::vector<KeyRecord> out;
  std::set<std::string, std::less<>> seen;
  std::size_t i = 0;
  for (simdjson::dom::element item : keys) {
    const std::string at = fmt::format("keys[{}]", i++);
    simdjson::dom::object o;
    if (item.get_object().get(o)) return shape.wrong(at, "an object");
    KeyRecord r;
    auto text_field = [&](std::string_view name, std::string& into, bool required) -> Result<void> {
      simdjson::dom::element v;
      if (o[name].get(v) || v.is_null()) {
        if (required) return shape.wrong(fmt::format("{}.{}", at, name), "a string");
        return {};
      }
      std::string_view s;
      if (v.get_string().get(s)) return shape.wrong(fmt::format("{}.{}", at, name), "a string");
      into.assign(s);
      return {};
    };
    auto int_field = [&](std::string_view name, std::int64_t& into, std::int64_t min,
                         bool required) -> Result<void> {
      simdjson::dom::element v;
      if (o[name].get(v) || v.is_null()) {
        if (required) {
          return shape.wrong(fmt::format("{}.{}", at, name), fmt::format("an integer >= {}", min));
        }
        return {};
      }
      std::int64_t n = 0;
      if (v.get_int64().get(n) || n < min) {
        return shape.wrong(fmt::format("{}.{}", at, name), fmt::format("an integer >= {}", min));
      }
      into = n;
      return {};
    };
    for (auto checked :
         {text_field("key", r.key, true), text_field("name", r.name, false),
          text_field("model", r.model, false), text_field("expiry_date", r.expiry_date, false),
          text_field("created_at", r.created_at, false),
          text_field("last_used", r.last_used, false),
          int_field("token_limit_per_5h", r.token_limit_per_5h, 1, true),
          int_field("total_lifetime_tokens", r.total_lifetime_tokens, 0, false)}) {
      if (!checked) return std::move(checked).error();
    }
    if (r.key.empty()) return shape.wrong(at + ".key", "a non-empty string");
    if (!r.expiry_date.empty()) {
      r.expiry = parse_iso8601(r.expiry_date);
      if (!r.expiry) return shape.wrong(at + ".expiry_date", "an ISO 8601 time or null");
    }
    simdjson::dom::element windows;
    if (!o["usage_windows"].get(windows) && !windows.is_null()) {
      simdjson::dom::array list;
      if (windows.get_array().get(list)) return shape.wrong(at + ".usage_windows", "an array");
      std::size_t j = 0;
      for (simdjson::dom::element w : list) {
        const std::string wat = fmt::format("{}.usage_windows[{}]", at, j++);
        std::string_view start;
        std::int64_t tokens = 0;
        if (w["window_start"].get_string().get(start)) {
          return shape.wrong(wat + ".window_start", "an ISO 8601 time");
        }
        auto t = parse_iso8601(start);
        if (!t) return shape.wrong(wat + ".window_start", "an ISO 8601 time");
        if (w["tokens_used"].get_int64().get(tokens) || tokens < 0) {
          return shape.wrong(wat + ".tokens_used", "an integer >= 0");
        }
        r.usage_windows.push_back(UsageWindow{*t, tokens});
      }
    }
    if (!seen.insert(r.key).second) {
      return config_error(path,
                          fmt::format("{}: key {} appears more than once", at, redact_key(r.key)));
    }
    out.push_back(std::move(r));
  }
  return out;
}

void write_text(std::string& out, std::string_view name, std::string_view value,
                bool null_if_empty) {
  out += fmt::format("      \"{}\": ", name);
  if (value.empty() && null_if_empty) {
    out += "null";
  } else {
    append_json_string(out, value);
  }
  out += ",\n";
}

std::string serialize(const std::vector<KeyRecord>& records) {
  std::string out = "{\n  \"keys\": [";
  for (std::size_t i = 0; i < records.size(); ++i) {
    const KeyRecord& r = records[i];
    out += i == 0 ? "\n    {\n" : ",\n    {\n";
    write_text(out, "key", r.key, false);
    write_text(out, "name", r.name, false);
    if (!r.model.empty()) write_text(out, "model", r.model, false);
    out += fmt::format("      \"token_limit_per_5h\": {},\n", r.token_limit_per_5h);
    write_text(out, "expiry_date", r.expiry_date, true);
    write_text(out, "created_at", r.created_at, true);
    write_text(out, "last_used", r.last_used, true);
    out += fmt::format("      \"total_lifetime_tokens\": {},\n", r.total_lifetime_tokens);
    out += "      \"usage_windows\": [";
    for (std::size_t j = 0; j < r.usage_windows.size(); ++j) {
      out += fmt::format("{}{{\"window_start\": \"{}\", \"tokens_used\": {}}}", j == 0 ? "" : ", ",
                         format_iso8601(r.usage_windows[j].start), r.usage_windows[j].tokens);
    }
    out += "]\n    }";
  }
  out += records.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

// Writes `text` to a new file beside `path`, fsyncs it, renames it over `path` and fsyncs the
// directory: readers see the old file or the new one, never a mix.
Result<void> replace_file(const std::string& path, const std::string& text) {
  static std::atomic<std::uint64_t> counter{0};
  const std::string tmp =
      fmt::format("{}.tmp.{}.{}", path, static_cast<long>(::getpid()), counter.fetch_add(1));
  mode_t mode = 0600;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 0777;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return config_error(path, fmt::format("cannot create {} ({})", tmp, std::strerror(errno)));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return config_error(path, fmt::format("cannot write {} ({})", tmp, std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return config_error(path, fmt::format("cannot flush {}", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return config_error(path, fmt::format("cannot replace it ({})", std::strerror(err)));
  }
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

// An exclusive flock on "<path>.lock" for as long as it lives.
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

int two(std::string_view s, std::size_t at) {
  if (at + 2 > s.size() || !std::isdigit(static_cast<unsigned char>(s[at])) ||
      !std::isdigit(static_cast<unsigned char>(s[at + 1]))) {
    return -1;
  }
  return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

}  // namespace

std::optional<SysClock::time_point> parse_iso8601(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  const int y1 = two(s, 0), y2 = two(s, 2), mo = two(s, 5), d = two(s, 8), h = two(s, 11),
            mi = two(s, 14), se = two(s, 17);
  if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      se < 0 || se > 60) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y1 * 100 + y2),
                                        std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  std::size_t i = 19;
  std::chrono::milliseconds fraction{0};
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::int64_t ms = 0;
    int n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (n < 3) ms = ms * 10 + (s[i] - '0');
      ++n;
      ++i;
    }
    if (n == 0) return std::nullopt;
    for (int k = n; k < 3; ++k) ms *= 10;
    fraction = std::chrono::milliseconds(ms);
  }
  std::chrono::minutes offset{0};
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int oh = two(s, i + 1), om = two(s, i + 4);
    if (oh < 0 || om < 0 || i + 6 > s.size() || s[i + 3] != ':') return std::nullopt;
    offset = std::chrono::hours(oh) + std::chrono::minutes(om);
    if (s[i] == '-') offset = -offset;
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const auto t = std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) +
                 std::chrono::seconds(se) + fraction - offset;
  return std::chrono::time_point_cast<SysClock::duration>(t);
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

Result<std::unique_ptr<KeyStore>> KeyStore::open(std::string path) {
  std::unique_ptr<KeyStore> store(new KeyStore(std::move(path)));
  std::lock_guard lock(store->mu_);
  store->reads_.fetch_add(1);
  auto records = store->load();
  if (!records) return std::move(records).error();
  return store;
}

Result<std::vector<KeyRecord>> KeyStore::load() {
  auto text = read_file(path_);
  if (!text) return std::move(text).error();
  return parse_records(path_, *text);
}

Result<std::optional<KeyRecord>> KeyStore::find(std::string_view key) {
  std::lock_guard lock(mu_);
  reads_.fetch_add(1);
  auto records = load();
  if (!records) return std::move(records).error();
  for (KeyRecord& r : *records) {
    if (r.key == key) return std::optional<KeyRecord>(std::move(r));
  }
  return std::optional<KeyRecord>();
}

Result<std::size_t> KeyStore::apply(const std::vector<UsageDelta>& deltas,
                                    SysClock::time_point keep_after) {
  std::lock_guard lock(mu_);
  FileLock file_lock(path_);
  if (!file_lock.held()) {
    return config_error(path_,
                        fmt::format("cannot lock {}.lock ({})", path_, std::strerror(errno)));
  }
  auto records = load();
  if (!records) return std::move(records).error();
  std::map<std::string_view, KeyRecord*> by_key;
  for (KeyRecord& r : *records) by_key[r.key] = &r;
  std::set<std::string_view> changed;
  std::map<std::string_view, SysClock::time_point> last_used;
  for (const UsageDelta& d : deltas) {
    auto it = by_key.find(d.key);
    if (it == by_key.end()) continue;  // the key was removed meanwhile
    KeyRecord& r = *it->second;
    auto w = std::find_if(r.usage_windows.begin(), r.usage_windows.end(),
                          [&](const UsageWindow& u) { return u.start == d.bucket_start; });
    if (w == r.usage_windows.end()) {
      r.usage_windows.push_back(UsageWindow{d.bucket_start, 0});
      w = std::prev(r.usage_windows.end());
    }
    w->tokens += d.tokens;
    r.total_lifetime_tokens += d.tokens;
    auto& latest = last_used[r.key];
    latest = std::max(latest, d.used_at);
    changed.insert(r.key);
  }
  for (KeyRecord& r : *records) {
    if (!changed.count(r.key)) continue;
    std::erase_if(r.usage_windows, [&](const UsageWindow& u) { return u.start < keep_after; });
    std::sort(r.usage_windows.begin(), r.usage_windows.end(),
              [](const UsageWindow& a, const UsageWindow& b) { return a.start < b.start; });
    const auto previous = parse_iso8601(r.last_used);
    const auto latest = last_used[r.key];
    if (!previous || *previous < latest) r.last_used = format_iso8601(latest);
  }
  if (auto written = replace_file(path_, serialize(*records)); !written) {
    return std::move(written).error();
  }
  writes_.fetch_add(1);
  return changed.size();
}

}  // namespace glmproxy::detail
