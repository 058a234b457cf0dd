// The tenant key file: reading and checking it, ISO 8601 times, and usage written back under a
// lock, atomically, adding to what other writers wrote.

#include "keys/key_store.hpp"

#include <cstdlib>
#include <new>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/secrets.hpp"
#include "keys/tenants.hpp"

using glmproxy::ErrorCode;
using glmproxy::Result;
using glmproxy::detail::format_iso8601;
using glmproxy::detail::KeyRecord;
using glmproxy::detail::KeyStore;
using glmproxy::detail::parse_iso8601;
using glmproxy::detail::UsageDelta;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using SysTime = std::chrono::system_clock::time_point;

namespace {

// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
  fs::path dir;
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    dir = fs::temp_directory_path() /
          ("glmproxy-key-store-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter.fetch_add(1)) + "-" + std::to_string(rd()));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& text, const std::string& name = "apikeys.json") const {
    std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << text;
    return (dir / name).string();
  }
};

const char* const kValid = R"({"keys": [
  {"key": "pk_alpha_1", "name": "Alpha \"A\" Zürich", "model": "glm-4.5-air",
   "token_limit_per_5h": 5000, "expiry_date": "2099-12-31T23:59:59.000Z",
   "created_at": "2026-01-18T00:00:00+00:00", "last_used": "2026-01-18T09:00:00.5Z",
   "total_lifetime_tokens": 42, "note": "unknown fields are dropped on write",
   "usage_windows": [{"window_start": "2026-01-18T01:00:00Z", "tokens_used": 3},
                     {"window_start": "2026-01-18T10:05:00Z", "tokens_used": 40},
                     {"window_start": "2026-01-18T12:10:00+02:00", "tokens_used": 7}]},
  {"key": "pk_beta_2", "name": "Beta", "token_limit_per_5h": 100, "last_used": null,
   "usage_windows": [{"window_start": "2026-01-17T00:00:00Z", "tokens_used": 1}]}
]})";

SysTime utc(const char* text) {
  auto t = parse_iso8601(text);
  REQUIRE(t);
  return *t;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

KeyRecord must_find(KeyStore& store, const std::string& key) {
  auto found = store.find(key);
  REQUIRE(found);
  REQUIRE(found->has_value());
  return **found;
}

std::string open_error(const TempDir& tmp, const std::string& text) {
  auto store = KeyStore::open(tmp.file(text));
  REQUIRE_FALSE(store);
  CHECK(store.error().code == ErrorCode::InvalidConfig);
  return store.error().message;
}

}  // namespace

TEST_CASE("key store: reads a valid file with every field", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto store = KeyStore::open(path);
  REQUIRE(store);
  CHECK((*store)->path() == path);
  const KeyRecord alpha = must_find(**store, "pk_alpha_1");
  CHECK(alpha.key == "pk_alpha_1");
  CHECK(alpha.name == "Alpha \"A\" Zürich");
  CHECK(alpha.model == "glm-4.5-air");
  CHECK(alpha.token_limit_per_5h == 5000);
  REQUIRE(alpha.expiry);
  CHECK(*alpha.expiry == utc("2099-12-31T23:59:59Z"));
  CHECK(alpha.expiry_date == "2099-12-31T23:59:59.000Z");
  CHECK(alpha.created_at == "2026-01-18T00:00:00+00:00");
  CHECK(alpha.last_used == "2026-01-18T09:00:00.5Z");
  CHECK(alpha.total_lifetime_tokens == 42);
  REQUIRE(alpha.usage_windows.size() == 3);
  CHECK(alpha.usage_windows[1].start == utc("2026-01-18T10:05:00Z"));
  CHECK(alpha.usage_windows[1].tokens == 40);
  CHECK(alpha.usage_windows[2].start == utc("2026-01-18T10:10:00Z"));
  CHECK(alpha.usage_windows[2].raw_start == "2026-01-18T12:10:00+02:00");
  CHECK(alpha.usage_windows[2].tokens == 7);

  const KeyRecord beta = must_find(**store, "pk_beta_2");
  CHECK(beta.model.empty());
  CHECK_FALSE(beta.expiry);
  CHECK(beta.expiry_date.empty());
  CHECK(beta.created_at.empty());
  CHECK(beta.last_used.empty());
  CHECK(beta.total_lifetime_tokens == 0);
  CHECK(beta.usage_windows.size() == 1);

  auto none = (*store)->find("pk_gamma_3");
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
  CHECK((*store)->reads() == 4);  // open + three finds
  CHECK((*store)->writes() == 0);
}

TEST_CASE("key store: ISO 8601 variants and round trip", "[keys]") {
  const SysTime t = utc("2026-01-18T10:05:00Z");
  CHECK(t == SysTime(std::chrono::sys_days(std::chrono::year(2026) / 1 / 18) + 10h + 5min));
  CHECK(parse_iso8601("2026-01-18t10:05:00z") == t);
  // Fractions (JavaScript's toISOString writes milliseconds).
  CHECK(parse_iso8601("2026-01-18T10:05:00.123Z") == t + 123ms);
  CHECK(parse_iso8601("2026-01-18T10:05:00.5Z") == t + 500ms);
  CHECK(parse_iso8601("2026-01-18T10:05:00.000000001Z") == t + 1ns);
  CHECK(parse_iso8601("2026-01-18T10:05:00.123456789999Z") == t + 123456789ns);
  // Offsets.
  CHECK(parse_iso8601("2026-01-18T10:05:00+00:00") == t);
  CHECK(parse_iso8601("2026-01-18T10:05:00-00:00") == t);
  CHECK(parse_iso8601("2026-01-18T12:05:00+02:00") == t);
  CHECK(parse_iso8601("2026-01-18T04:35:00-05:30") == t);
  CHECK(parse_iso8601("2026-01-19T00:05:00.250+14:00") == t + 250ms);
  CHECK(parse_iso8601("2024-02-29T00:00:00Z"));  // leap year
  // Not ISO 8601 / not a real time.
  for (const char* bad :
       {"", "yesterday", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
        "2026-01-18 10:05:00Z", "2026-01-18T10:05:00", "2026-01-18T24:00:00Z",
        "2026-01-18T10:60:00Z", "2026-01-18T10:05:00+0200", "2026-01-18T10:05:00+24:00",
        "2026-01-18T10:05:00.Z", "2026-01-18T10:05:00Zjunk", "2026-1-18T10:05:00Z",
        "20260118T100500Z"}) {
    INFO(bad);
    CHECK_FALSE(parse_iso8601(bad));
  }
  // Writing: seconds precision, always Z.
  CHECK(format_iso8601(t) == "2026-01-18T10:05:00Z");
  CHECK(format_iso8601(t + 999ms) == "2026-01-18T10:05:00Z");
  CHECK(format_iso8601(SysTime{}) == "1970-01-01T00:00:00Z");
  CHECK(format_iso8601(SysTime{} - 1s) == "1969-12-31T23:59:59Z");
  CHECK(format_iso8601(utc("2026-01-18T12:05:00+02:00")) == "2026-01-18T10:05:00Z");
  // Round trips both ways.
  for (const char* text : {"2026-01-18T10:05:00Z", "2000-02-29T23:59:59Z", "1970-01-01T00:00:00Z",
                           "2099-12-31T23:59:59Z", "1999-12-31T00:00:01Z"}) {
    INFO(text);
    CHECK(format_iso8601(utc(text)) == text);
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::int64_t> seconds(-2'000'000'000, 8'000'000'000);
  for (int i = 0; i < 2000; ++i) {
    const SysTime s{std::chrono::seconds(seconds(rng))};
    const auto back = parse_iso8601(format_iso8601(s));
    REQUIRE(back);
    CHECK(*back == s);
  }
}

TEST_CASE("key store: malformed JSON reports the path and line:column", "[keys]") {
  TempDir tmp;
  struct Case {
    std::string text, where, why;
  };
  const Case cases[] = {
      // A doubled comma: the second one is where a member name should start.
      {"{\"keys\": [\n  {\"key\": \"a\",, \"token_limit_per_5h\": 1}\n]}", "2:15 (byte 25)",
       "expected a string"},
      // A trailing comma.
      {"{\"keys\": [\n  {\"key\": \"a\", \"token_limit_per_5h\": 1},\n]}", "3:1 (byte 52)",
       "a comma before ']'"},
      {"{\"keys\": [{\"key\": \"a\", \"token_limit_per_5h\": 1,}]}", "1:48 (byte 47)",
       "a comma before '}'"},
      // Cut short.
      {"{\"keys\": [\n  {\"key\": \"a\", \"token_limit_per_5h\": 1}", "2:40 (byte 50)",
       "ends early"},
      {"{\"keys\": [{\"key\": \"pk_a", "1:24", "ends early"},
      // Missing quotes.
      {"{\"keys\": [{key: \"a\"}]}", "1:12 (byte 11)", "expected a string"},
      {"{\"keys\": [{\"key: \"a\", \"token_limit_per_5h\": 1}]}", "1:19", "expected ':'"},
      {"{\"keys\": [{\"key\": a}]}", "1:19", "expected a value"},
      // Columns count characters: "ü" is two bytes but one column.
      {"{\"keys\": [{\"name\": \"Zürich\" \"key\": \"a\"}]}", "1:29 (byte 29)",
       "expected ',' or '}'"},
      // A raw line break inside a string.
      {"{\"keys\": [{\"name\": \"two\nlines\"}]}", "1:24", "control character"},
      {"{\"keys\": [{\"key\": \"a\", \"token_limit_per_5h\": tru}]}", "1:49 (byte 48)",
       "lowercase"},
      {"{\"keys\": [{\"key\": \"a\\x\"}]}", "1:22 (byte 21)", "escape"},
      {"{\"keys\": [{\"key\": \"a\xff\"}]}", "1:21 (byte 20)", "UTF-8"},
      {"{\"keys\": []} {}", "1:14", "after the end"},
      {"{\"keys\": [01]}", "1:12", "expected ',' or ']'"},
      {"\n\n   ", "", "empty"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    const std::string path = tmp.file(c.text);
    auto store = KeyStore::open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == ErrorCode::InvalidConfig);
    CHECK_THAT(store.error().message, Catch::Contains(path));
    CHECK_THAT(store.error().message, Catch::Contains(c.why));
    if (!c.where.empty()) {
      CHECK_THAT(store.error().message, Catch::Contains("line:column " + c.where));
    }
  }
}

TEST_CASE("key store: wrong shapes name the JSON path and what was expected", "[keys]") {
  TempDir tmp;
  const std::string secret = "pk_secret_value_123";
  const std::string k = "\"key\": \"" + secret + "\", ";
  struct Case {
    std::string text, path, expected;
  };
  const Case cases[] = {
      {"[]", "top level", "got an array"},
      {R"({"kees": []})", "keys must be an array", "missing"},
      {R"({"keys": {}})", "keys must be an array", "got an object"},
      {R"({"keys": [1]})", "keys[0] must be an object", "got 1"},
      {R"({"keys": [{"name": "x", "token_limit_per_5h": 1}]})", "keys[0].key", "missing"},
      {R"({"keys": [{"key": 7, "token_limit_per_5h": 1}]})", "keys[0].key", "got 7"},
      {R"({"keys": [{"key": "", "token_limit_per_5h": 1}]})", "keys[0].key", "a non-empty string"},
      {R"({"keys": [{"key": "pk_other_1", "token_limit_per_5h": 1}, {)" + k +
           R"("token_limit_per_5h": "many"}]})",
       "keys[1].token_limit_per_5h (key pk_s…)", "an integer >= 1, got a string"},
      {"{\"keys\": [{" + k + R"("token_limit_per_5h": 1.5}]})", "keys[0].token_limit_per_5h",
       "got 1.5"},
      {"{\"keys\": [{" + k + R"("name": "x"}]})", "keys[0].token_limit_per_5h", "missing"},
      {"{\"keys\": [{" + k + R"("name": 5, "token_limit_per_5h": 1}]})", "keys[0].name",
       "a string, got 5"},
      {"{\"keys\": [{" + k + R"("model": ["m"], "token_limit_per_5h": 1}]})", "keys[0].model",
       "got an array"},
      {"{\"keys\": [{" + k + R"("token_limit_per_5h": 1, "expiry_date": "soon"}]})",
       "keys[0].expiry_date", "got \"soon\""},
      {"{\"keys\": [{" + k + R"("token_limit_per_5h": 1, "total_lifetime_tokens": -5}]})",
       "keys[0].total_lifetime_tokens", "an integer >= 0, got -5"},
      {"{\"keys\": [{" + k + R"("token_limit_per_5h": 1, "usage_windows": {}}]})",
       "keys[0].usage_windows", "an array"},
      {"{\"keys\": [{" + k + R"("token_limit_per_5h": 1, "usage_windows": [3]}]})",
       "keys[0].usage_windows[0]", "an object"},
      {"{\"keys\": [{" + k +
           R"("token_limit_per_5h": 1, "usage_windows": [{"window_start": "2026-13-01T00:00:00Z", "tokens_used": 1}]}]})",
       "keys[0].usage_windows[0].window_start", "ISO 8601"},
      {"{\"keys\": [{" + k + R"("token_limit_per_5h": 1, "usage_windows": [{"tokens_used": 1}]}]})",
       "keys[0].usage_windows[0].window_start", "missing"},
      {"{\"keys\": [{" + k +
           R"("token_limit_per_5h": 1, "usage_windows": [{"window_start": "2026-01-01T00:00:00Z", "tokens_used": -1}]}]})",
       "keys[0].usage_windows[0].tokens_used", "an integer >= 0, got -1"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    const std::string message = open_error(tmp, c.text);
    CHECK_THAT(message, Catch::Contains("apikeys.json"));
    CHECK_THAT(message, Catch::Contains(c.path));
    CHECK_THAT(message, Catch::Contains(c.expected));
    CHECK(message.find(secret) == std::string::npos);
  }
}

TEST_CASE("key store: a token limit below 1 names the key, redacted", "[keys]") {
  TempDir tmp;
  for (const char* limit : {"0", "-5"}) {
    const std::string message = open_error(
        tmp, std::string(R"({"keys": [{"key": "pk_live_abcdef", "token_limit_per_5h": )") + limit +
                 "}]}");
    INFO(message);
    CHECK_THAT(message, Catch::Contains("keys[0].token_limit_per_5h"));
    CHECK_THAT(message, Catch::Contains("pk_l…"));
    CHECK_THAT(message, Catch::Contains(std::string("got ") + limit));
    CHECK(message.find("pk_live_abcdef") == std::string::npos);
  }
}

TEST_CASE("key store: duplicate keys are an error", "[keys]") {
  TempDir tmp;
  const std::string message = open_error(tmp, R"({"keys": [
      {"key": "pk_secret_dup", "token_limit_per_5h": 1},
      {"key": "pk_other", "token_limit_per_5h": 1},
      {"key": "pk_secret_dup", "token_limit_per_5h": 2}]})");
  CHECK_THAT(message, Catch::Contains("keys[2].key"));
  CHECK_THAT(message, Catch::Contains("appears twice (also keys[0])"));
  CHECK_THAT(message, Catch::Contains("pk_s…"));
  CHECK(message.find("pk_secret_dup") == std::string::npos);
}

TEST_CASE("key store: a missing file is InvalidConfig", "[keys]") {
  TempDir tmp;
  const std::string path = (tmp.dir / "nope.json").string();
  auto missing = KeyStore::open(path);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::InvalidConfig);
  CHECK_THAT(missing.error().message, Catch::Contains(path));
  CHECK_THAT(missing.error().message, Catch::Contains("No such file"));
}

TEST_CASE("key store: find() reads the file each time and sees a key removed", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto store = KeyStore::open(path);
  REQUIRE(store);
  CHECK((*store)->reads() == 1);
  CHECK(must_find(**store, "pk_beta_2").token_limit_per_5h == 100);
  CHECK((*store)->reads() == 2);

  tmp.file(R"({"keys": [{"key": "pk_alpha_1", "token_limit_per_5h": 7}]})");
  auto gone = (*store)->find("pk_beta_2");
  REQUIRE(gone);
  CHECK_FALSE(gone->has_value());
  CHECK(must_find(**store, "pk_alpha_1").token_limit_per_5h == 7);
  CHECK((*store)->reads() == 4);

  // A file that became malformed, or went away: the error open() would give.
  tmp.file("{\"keys\": [\n  {\"key\": \"pk_alpha_1\",}\n]}");
  auto broken = (*store)->find("pk_alpha_1");
  REQUIRE_FALSE(broken);
  CHECK(broken.error().code == ErrorCode::InvalidConfig);
  CHECK_THAT(broken.error().message, Catch::Contains(path));
  CHECK_THAT(broken.error().message, Catch::Contains("2:24 (byte 34)"));
  fs::remove(path);
  auto removed = (*store)->find("pk_alpha_1");
  REQUIRE_FALSE(removed);
  CHECK(removed.error().code == ErrorCode::InvalidConfig);
  CHECK((*store)->reads() == 6);
}

TEST_CASE("key store: apply() adds deltas, creates windows, drops old ones, keeps raw strings",
          "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto store = KeyStore::open(path);
  REQUIRE(store);
  const SysTime b0 = utc("2026-01-18T10:05:00Z");
  const std::vector<UsageDelta> deltas = {
      {"pk_alpha_1", 10, b0, b0 + 1min},
      {"pk_alpha_1", 5, b0 + 5min, b0 + 7min},  // the window written as 12:10:00+02:00
      {"pk_alpha_1", 2, b0 + 10min, b0 + 11min},
      {"pk_alpha_1", 0, b0 + 10min, b0 + 4min},  // earlier used_at: last_used keeps the max
      {"pk_unknown", 99, b0, b0 + 1h},
  };
  auto changed = (*store)->apply(deltas, b0 - 5min);
  REQUIRE(changed);
  CHECK(*changed == 1);
  CHECK((*store)->writes() == 1);
  CHECK((*store)->reads() == 1);  // apply()'s own read is part of its write

  const KeyRecord a = must_find(**store, "pk_alpha_1");
  CHECK(a.total_lifetime_tokens == 42 + 17);
  REQUIRE(a.usage_windows.size() == 3);  // the 01:00 window is older than keep_after
  CHECK(a.usage_windows[0].raw_start == "2026-01-18T10:05:00Z");
  CHECK(a.usage_windows[0].tokens == 50);
  CHECK(a.usage_windows[1].raw_start == "2026-01-18T12:10:00+02:00");  // unchanged text
  CHECK(a.usage_windows[1].tokens == 12);
  CHECK(a.usage_windows[2].raw_start == "2026-01-18T10:15:00Z");  // created
  CHECK(a.usage_windows[2].tokens == 2);
  CHECK(a.last_used == "2026-01-18T10:16:00Z");
  // What apply() did not change is written back exactly as read.
  CHECK(a.name == "Alpha \"A\" Zürich");
  CHECK(a.model == "glm-4.5-air");
  CHECK(a.token_limit_per_5h == 5000);
  CHECK(a.expiry_date == "2099-12-31T23:59:59.000Z");
  CHECK(a.created_at == "2026-01-18T00:00:00+00:00");

  // A key without deltas: old windows dropped, nothing else touched.
  const KeyRecord b = must_find(**store, "pk_beta_2");
  CHECK(b.usage_windows.empty());
  CHECK(b.last_used.empty());
  CHECK(b.total_lifetime_tokens == 0);
  CHECK_FALSE(b.expiry);

  const std::string text = slurp(path);
  CHECK(text.find("\"note\"") == std::string::npos);  // unknown fields are dropped (documented)
  CHECK(text.find("\"last_used\": null") != std::string::npos);

  // last_used is the later of the file's and the deltas'.
  REQUIRE((*store)->apply({{"pk_alpha_1", 1, b0, b0}}, b0 - 5min));
  CHECK(must_find(**store, "pk_alpha_1").last_used == "2026-01-18T10:16:00Z");
  CHECK(must_find(**store, "pk_alpha_1").usage_windows[0].tokens == 51);
  // No deltas: still one write that prunes.
  auto none = (*store)->apply({}, b0 + 6min);
  REQUIRE(none);
  CHECK(*none == 0);
  CHECK(must_find(**store, "pk_alpha_1").usage_windows.size() == 1);
  CHECK((*store)->writes() == 3);
}

TEST_CASE("key store: apply() writes atomically and leaves no temp files", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  auto store = KeyStore::open(path);
  REQUIRE(store);
  const SysTime b0 = utc("2026-01-18T10:05:00Z");
  for (int i = 0; i < 5; ++i) {
    REQUIRE((*store)->apply({{"pk_beta_2", 1, b0, b0}}, b0 - 1h));
  }
  // The result parses as a valid key file, by us and from scratch.
  auto reopened = KeyStore::open(path);
  REQUIRE(reopened);
  CHECK(must_find(**reopened, "pk_beta_2").total_lifetime_tokens == 5);
  // The file keeps its permissions (it holds keys), and only it and its lock file remain.
  CHECK(fs::status(path).permissions() ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(tmp.dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"apikeys.json", "apikeys.json.lock"});

  // A failed write leaves the file as it was.
  tmp.file("{\"keys\": [");
  auto failed = (*store)->apply({{"pk_beta_2", 1, b0, b0}}, b0 - 1h);
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == ErrorCode::InvalidConfig);
  CHECK(slurp(path) == "{\"keys\": [");
  CHECK((*store)->writes() == 5);
}

TEST_CASE("key store: two stores on one file, 4 threads, every delta counts", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto a = KeyStore::open(path);
  auto b = KeyStore::open(path);  // as a second process would: its own lock file descriptor
  REQUIRE(a);
  REQUIRE(b);
  const SysTime b0 = utc("2026-01-18T10:05:00Z");
  constexpr int kThreads = 4, kApplies = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    KeyStore* store = t % 2 == 0 ? a->get() : b->get();
    threads.emplace_back([store, b0, t, &failures] {
      for (int i = 0; i < kApplies; ++i) {
        const SysTime bucket = b0 + (i % 2) * 5min;
        auto r = store->apply({{"pk_beta_2", t + 1, bucket, bucket + 1s},
                               {"pk_alpha_1", 1, b0, b0 + std::chrono::seconds(i)}},
                              b0 - 1h);
        if (!r || *r != 2) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK((*a)->writes() + (*b)->writes() == kThreads * kApplies);

  const KeyRecord beta = must_find(**a, "pk_beta_2");
  CHECK(beta.total_lifetime_tokens == kApplies * (1 + 2 + 3 + 4));
  REQUIRE(beta.usage_windows.size() == 2);
  CHECK(beta.usage_windows[0].tokens == kApplies / 2 * (1 + 2 + 3 + 4));
  CHECK(beta.usage_windows[1].tokens == kApplies / 2 * (1 + 2 + 3 + 4));
  const KeyRecord alpha = must_find(**b, "pk_alpha_1");
  CHECK(alpha.total_lifetime_tokens == 42 + kThreads * kApplies);
  CHECK(alpha.usage_windows[0].tokens == 40 + kThreads * kApplies);
}

TEST_CASE("key store: a reader never sees a half-written file", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto writer_store = KeyStore::open(path);
  auto reader_store = KeyStore::open(path);  // its own mutex: reads run during writes
  REQUIRE(writer_store);
  REQUIRE(reader_store);
  const SysTime b0 = utc("2026-01-18T10:05:00Z");
  constexpr int kApplies = 300;
  std::atomic<bool> stop{false};
  std::atomic<int> write_failures{0};
  std::thread writer([&] {
    for (int i = 0; i < kApplies; ++i) {
      if (!(*writer_store)->apply({{"pk_alpha_1", 1, b0, b0}}, b0 - 1h)) ++write_failures;
    }
    stop = true;
  });
  int reads = 0, broken = 0, went_back = 0;
  std::int64_t last_total = 0;
  while (true) {
    const bool last_round = stop.load();
    // Each find() reads the whole file and checks it as open() does.
    auto found = (*reader_store)->find("pk_alpha_1");
    ++reads;
    if (!found || !found->has_value()) {
      ++broken;
      UNSCOPED_INFO((found ? std::string("no record") : found.error().message));
    } else {
      if ((**found).total_lifetime_tokens < last_total) ++went_back;
      last_total = (**found).total_lifetime_tokens;
    }
    if (last_round) break;
  }
  writer.join();
  CHECK(write_failures == 0);
  CHECK(reads > 1);
  CHECK(broken == 0);
  CHECK(went_back == 0);
  CHECK(last_total == 42 + kApplies);
}

TEST_CASE("key store: apply() sums stop at INT64_MAX", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(R"({"keys": [{"key": "pk_max_1", "token_limit_per_5h": 1,
      "total_lifetime_tokens": 9223372036854775000,
      "usage_windows": [{"window_start": "2026-01-18T10:05:00Z",
                         "tokens_used": 9223372036854775807}]}]})");
  auto store = KeyStore::open(path);
  REQUIRE(store);
  const SysTime bucket = utc("2026-01-18T10:05:00Z");
  const std::vector<UsageDelta> deltas = {{"pk_max_1", INT64_MAX, bucket, bucket},
                                          {"pk_max_1", INT64_MAX, bucket + 5min, bucket},
                                          {"pk_max_1", -1, bucket, bucket}};
  for (int round = 0; round < 2; ++round) {
    auto applied = (*store)->apply(deltas, bucket - 1h);
    REQUIRE(applied);
  }
  const KeyRecord r = must_find(**store, "pk_max_1");
  CHECK(r.total_lifetime_tokens == INT64_MAX);
  REQUIRE(r.usage_windows.size() == 2);
  CHECK(r.usage_windows[0].tokens == INT64_MAX);
  CHECK(r.usage_windows[1].tokens == INT64_MAX);
}

TEST_CASE("key store: times past system_clock's range are held at its ends", "[keys]") {
  using TP = std::chrono::system_clock::time_point;
  CHECK(parse_iso8601("9999-12-31T23:59:59Z") == TP::max());
  CHECK(parse_iso8601("9999-12-31T23:59:59.999999999-23:59") == TP::max());
  CHECK(parse_iso8601("2262-04-12T00:00:00Z") == TP::max());
  CHECK(parse_iso8601("0000-01-01T00:00:00Z") == TP::min());
  CHECK(parse_iso8601("1600-01-01T00:00:00+23:59") == TP::min());
  // Just inside (the range ends at 2262-04-11T23:47:16.854775807Z and
  // 1677-09-21T00:12:43.145224192Z; the whole seconds at the ends are held too).
  const auto late = parse_iso8601("2262-04-11T23:47:15Z");
  REQUIRE(late);
  CHECK(*late < TP::max());
  CHECK(format_iso8601(*late) == "2262-04-11T23:47:15Z");
  const auto early = parse_iso8601("1677-09-21T00:12:45Z");
  REQUIRE(early);
  CHECK(*early > TP::min());
  CHECK(format_iso8601(*early) == "1677-09-21T00:12:45Z");
}

// --- what is not a key file: devices, directories, FIFOs, files over the size limit ----------

namespace {

// A sparse file of `size` bytes (no disk blocks, written in no time) that begins with `head`.
std::string sparse_file(const TempDir& tmp, std::size_t size, const std::string& head = "") {
  const std::string path = tmp.file(head, "sparse.json");
  REQUIRE(::truncate(path.c_str(), static_cast<off_t>(size)) == 0);
  return path;
}

std::string refused(const std::string& path) {
  std::string message;
  CHECK_NOTHROW([&] {
    auto store = KeyStore::open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == ErrorCode::InvalidConfig);
    message = store.error().message;
  }());
  INFO(message);
  CHECK_THAT(message, Catch::StartsWith("APIKEYS_FILE " + path + ": "));
  return message;
}

}  // namespace

TEST_CASE("key store: /dev/zero, a directory and a FIFO are refused, not read", "[keys]") {
  TempDir tmp;
  CHECK_THAT(refused("/dev/zero"), Catch::Contains("it is a character device, not a regular file"));
  CHECK_THAT(refused(tmp.dir.string()), Catch::Contains("it is a directory, not a regular file"));
  const std::string fifo = (tmp.dir / "keys.fifo").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // No writer: a blocking open would wait forever.
  CHECK_THAT(refused(fifo), Catch::Contains("it is a FIFO, not a regular file"));
}

TEST_CASE("key store: a file over 64 MiB is refused, one of 64 MiB is read", "[keys]") {
  TempDir tmp;
  STATIC_REQUIRE(KeyStore::kMaxFileBytes == 64 * 1024 * 1024);
  const std::string big = sparse_file(tmp, KeyStore::kMaxFileBytes + 1);
  const std::string message = refused(big);
  CHECK_THAT(message,
             Catch::Contains("the file is larger than the limit of 64 MiB (67108864 bytes)"));
  CHECK_THAT(message, Catch::Contains("it has 67108865 bytes"));
  // At the limit it is read, and then is not JSON: a NUL after the value.
  const std::string at_limit = sparse_file(tmp, KeyStore::kMaxFileBytes, R"({"keys": []})");
  CHECK_THAT(refused(at_limit), Catch::Contains("line:column 1:13 (byte 12): text after the end"));
}

TEST_CASE("key store: find() and apply() refuse a key file replaced by a non-file or a huge one",
          "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto store = KeyStore::open(path);
  REQUIRE(store);
  const std::string moved = path + ".saved";
  REQUIRE(::rename(path.c_str(), moved.c_str()) == 0);
  const SysTime now = utc("2026-01-18T10:05:00Z");
  const std::vector<UsageDelta> delta = {{"pk_alpha_1", 5, now, now}};
  auto check_refused = [&](const std::string& why) {
    auto found = (*store)->find("pk_alpha_1");
    REQUIRE_FALSE(found);
    CHECK(found.error().code == ErrorCode::InvalidConfig);
    CHECK_THAT(found.error().message, Catch::Contains(why));
    auto applied = (*store)->apply(delta, now - 5h);
    REQUIRE_FALSE(applied);
    CHECK(applied.error().code == ErrorCode::InvalidConfig);
    CHECK_THAT(applied.error().message, Catch::Contains(why));
  };
  fs::create_directory(path);
  check_refused("it is a directory");
  fs::remove(path);
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  check_refused("it is a FIFO");
  fs::remove(path);
  REQUIRE(::symlink("/dev/zero", path.c_str()) == 0);
  check_refused("it is a character device");
  fs::remove(path);
  const std::string big = sparse_file(tmp, KeyStore::kMaxFileBytes + 1);
  REQUIRE(::rename(big.c_str(), path.c_str()) == 0);
  check_refused("larger than the limit of 64 MiB");
  CHECK(fs::file_size(path) == KeyStore::kMaxFileBytes + 1);  // apply() left it as it was
  CHECK((*store)->writes() == 0);
  // The file back: both work again.
  REQUIRE(::rename(moved.c_str(), path.c_str()) == 0);
  CHECK(must_find(**store, "pk_alpha_1").total_lifetime_tokens == 42);
  REQUIRE((*store)->apply(delta, now - 5h));
  CHECK(must_find(**store, "pk_alpha_1").total_lifetime_tokens == 47);
}

// --- allocation failures: no exception leaves KeyStore or Tenants ----------------------------
//
// operator new is replaced for this test program: armed on one thread, the n-th allocation
// there throws std::bad_alloc. Each operation is run with n = 0, 1, 2, ... until it completes
// without reaching n: every allocation it makes has failed once.

namespace {

thread_local long allocations_left = -1;  // < 0: never fail

struct FailingAllocation {
  explicit FailingAllocation(long n) { allocations_left = n; }
  ~FailingAllocation() { allocations_left = -1; }
  // Whether the operation ran to its end without the failure.
  static bool missed() { return allocations_left >= 0; }
};

// Runs `op` with each allocation failing in turn; `check` after each run and `setup` before it
// (not armed). Returns how many allocations the operation makes.
template <class Op, class Check, class Setup = void (*)()>
long each_allocation_failing(
    Op op, Check check, Setup setup = [] {}) {
  for (long n = 0; n < 100'000; ++n) {
    bool threw = false, completed = false;
    std::string what;
    what.reserve(256);
    setup();
    {
      FailingAllocation arm(n);
      try {
        op();
      } catch (const std::exception& e) {
        threw = true;
        what = e.what();
      } catch (...) {
        threw = true;
      }
      completed = FailingAllocation::missed();
    }
    INFO("allocation " << n << " failed; thrown: " << what);
    REQUIRE_FALSE(threw);
    check(completed);
    if (completed) return n;
  }
  FAIL("more than 100000 allocations");
  return -1;
}

}  // namespace

void* operator new(std::size_t size) {
  if (allocations_left == 0) {
    allocations_left = -2;  // one failure per run: what handles it may allocate again
    throw std::bad_alloc();
  }
  if (allocations_left > 0) --allocations_left;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// Every form of new and delete is replaced, so that all pair up (AddressSanitizer checks it);
// the nothrow forms fail with the others (simdjson allocates with them).
void* operator new[](std::size_t size) { return ::operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return ::operator new(size, std::nothrow);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

TEST_CASE("key store: every allocation failing in turn: errors, never an exception",
          "[keys][oom]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  const SysTime now = utc("2026-01-18T10:05:00Z");

  Result<std::unique_ptr<KeyStore>> opened = glmproxy::make_error(ErrorCode::Internal, "unset");
  std::string argument;  // copied outside: the copy is the caller's allocation
  const long opens = each_allocation_failing([&] { opened = KeyStore::open(std::move(argument)); },
                                             [&](bool completed) {
                                               if (completed) REQUIRE(opened);
                                               if (!opened) CHECK(!opened.error().message.empty());
                                             },
                                             [&] { argument = path; });
  CHECK(opens > 10);

  auto store = KeyStore::open(path);
  REQUIRE(store);
  Result<std::optional<KeyRecord>> found = glmproxy::make_error(ErrorCode::Internal, "unset");
  each_allocation_failing([&] { found = (*store)->find("pk_alpha_1"); },
                          [&](bool completed) {
                            if (completed) {
                              REQUIRE(found);
                              REQUIRE(found->has_value());
                            } else if (!found) {
                              CHECK(found.error().code == ErrorCode::Internal);
                              CHECK_THAT(found.error().message, Catch::Contains(path));
                            }
                          });

  // apply(): a failed one leaves the file as it was (valid, without the delta), a completed one
  // adds the delta once; no temp file is left behind either way.
  std::int64_t expected = must_find(**store, "pk_alpha_1").total_lifetime_tokens;
  Result<std::size_t> applied = std::size_t{0};
  const std::vector<UsageDelta> delta = {{"pk_alpha_1", 1, now, now}};
  each_allocation_failing(
      [&] { applied = (*store)->apply(delta, now - 5h); },
      [&](bool completed) {
        if (applied) ++expected;
        if (completed) REQUIRE(applied);
        CHECK(must_find(**store, "pk_alpha_1").total_lifetime_tokens == expected);
        for (const auto& entry : fs::directory_iterator(tmp.dir)) {
          const std::string name = entry.path().filename().string();
          CHECK((name == "apikeys.json" || name == "apikeys.json.lock"));
        }
      });
}

TEST_CASE("tenants: every allocation failing in turn: errors, never an exception", "[keys][oom]") {
  TempDir tmp;
  glmproxy::Config config;
  config.keys.file = tmp.file(kValid);
  config.wall_clock = [] { return *parse_iso8601("2026-01-18T12:00:00Z"); };
  config.rate_limit.batch_interval = 1h;  // written by flush() only
  std::mutex lines_mu;
  std::vector<std::string> lines;
  config.logger = [&](glmproxy::LogLevel, std::string_view line) {
    std::lock_guard lock(lines_mu);
    lines.emplace_back(line);
  };
  // The process-wide secret registry is made once, on first use, by a noexcept function (its
  // allocation failing there would terminate): made here, before allocations fail.
  (void)glmproxy::detail::SecretRegistry::instance();
  bool created = false;
  each_allocation_failing(
      [&] {
        auto tenants = glmproxy::detail::Tenants::create(config);  // also the writer thread
        created = tenants.has_value();
      },
      [&](bool completed) {
        if (completed) REQUIRE(created);
      });

  auto tenants = glmproxy::detail::Tenants::create(config);
  REQUIRE(tenants);
  auto& t = **tenants;
  Result<std::string> admitted = std::string();
  each_allocation_failing([&] { admitted = t.admit("pk_alpha_1"); },
                          [&](bool completed) {
                            if (completed) {
                              REQUIRE(admitted);
                              CHECK(*admitted == "glm-4.5-air");
                            }
                          });
  Result<glmproxy::KeyStats> stats = glmproxy::KeyStats{};
  each_allocation_failing([&] { stats = t.stats("pk_alpha_1"); },
                          [&](bool completed) {
                            if (completed) REQUIRE(stats);
                          });
  t.invalidate("pk_alpha_1");  // the next record_usage reads the file
  each_allocation_failing([&] { t.record_usage("pk_alpha_1", 10); }, [](bool) {});
  each_allocation_failing([&] { t.invalidate("pk_alpha_1"); }, [](bool) {});
  each_allocation_failing(
      [&] {
        t.record_usage("pk_alpha_1", 1);
        t.flush();
      },
      [](bool) {});
  // Some usage was counted (the runs that got far enough), some lost: each loss is logged.
  auto after = t.stats("pk_alpha_1");
  REQUIRE(after);
  CHECK(after->total_lifetime_tokens > 42);
  std::lock_guard lock(lines_mu);
  CHECK_FALSE(lines.empty());
  for (const std::string& line : lines) CHECK(line.find("pk_alpha_1") == std::string::npos);
}
