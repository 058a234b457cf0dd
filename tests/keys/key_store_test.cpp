// The tenant key file: reading and checking it, ISO 8601 times, and usage written back under a
// lock, atomically, adding to what other writers wrote.

#include "keys/key_store.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using glmproxy::ErrorCode;
using glmproxy::detail::format_iso8601;
using glmproxy::detail::KeyStore;
using glmproxy::detail::parse_iso8601;
using glmproxy::detail::UsageDelta;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using SysTime = std::chrono::system_clock::time_point;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    std::random_device rd;
    dir =
        fs::temp_directory_path() / ("glmproxy-ks-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& text, const std::string& name = "apikeys.json") const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

const char* const kValid = R"({"keys": [
  {"key": "pk_alpha_1", "name": "Alpha", "model": "glm-4.5-air", "token_limit_per_5h": 5000,
   "expiry_date": "2099-12-31T23:59:59.000Z", "created_at": "2026-01-18T00:00:00Z",
   "last_used": null, "total_lifetime_tokens": 42,
   "usage_windows": [{"window_start": "2026-01-18T10:05:00Z", "tokens_used": 40}]},
  {"key": "pk_beta_2", "name": "Beta", "token_limit_per_5h": 100}
]})";

SysTime at(std::int64_t seconds) { return SysTime(std::chrono::seconds(seconds)); }

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("key store: ISO 8601 times", "[keys]") {
  auto t = parse_iso8601("2026-01-18T10:05:00Z");
  REQUIRE(t);
  CHECK(format_iso8601(*t) == "2026-01-18T10:05:00Z");
  CHECK(parse_iso8601("2026-01-18T10:05:00.250Z") == *t + 250ms);
  CHECK(parse_iso8601("2026-01-18T12:05:00+02:00") == *t);
  CHECK(parse_iso8601("2026-01-18T05:05:00-05:00") == *t);
  CHECK_FALSE(parse_iso8601("2026-02-30T00:00:00Z"));
  CHECK_FALSE(parse_iso8601("2026-01-18 10:05:00"));
  CHECK_FALSE(parse_iso8601("2026-01-18T10:05:00"));
  CHECK_FALSE(parse_iso8601("yesterday"));
  CHECK(format_iso8601(at(0)) == "1970-01-01T00:00:00Z");
}

TEST_CASE("key store: reads every field", "[keys]") {
  TempDir tmp;
  auto store = KeyStore::open(tmp.file(kValid));
  REQUIRE(store);
  auto alpha = (*store)->find("pk_alpha_1");
  REQUIRE(alpha);
  REQUIRE(alpha->has_value());
  const auto& r = **alpha;
  CHECK(r.name == "Alpha");
  CHECK(r.model == "glm-4.5-air");
  CHECK(r.token_limit_per_5h == 5000);
  REQUIRE(r.expiry);
  CHECK(format_iso8601(*r.expiry) == "2099-12-31T23:59:59Z");
  CHECK(r.created_at == "2026-01-18T00:00:00Z");
  CHECK(r.last_used.empty());
  CHECK(r.total_lifetime_tokens == 42);
  REQUIRE(r.usage_windows.size() == 1);
  CHECK(r.usage_windows[0].tokens == 40);
  auto beta = (*store)->find("pk_beta_2");
  REQUIRE(beta);
  REQUIRE(beta->has_value());
  CHECK_FALSE((**beta).expiry);
  auto none = (*store)->find("pk_gamma");
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
  CHECK((*store)->reads() == 4);  // open + three finds
}

TEST_CASE("key store: malformed JSON names the file and the line:column", "[keys]") {
  TempDir tmp;
  struct Case {
    std::string text, where;
  } cases[] = {
      {"{\"keys\": [\n  {\"key\": \"a\",, \"token_limit_per_5h\": 1}\n]}", "2:15"},
      {"{\"keys\": [\n  {\"key\": \"a\", \"token_limit_per_5h\": 1},\n]}", "3:1"},
      {"{\"keys\": [\n  {\"key\": \"a\", \"token_limit_per_5h\": 1}", "2:40"},
      {"{\"keys\": [{key: \"a\"}]}", "1:12"},
  };
  for (const Case& c : cases) {
    const std::string path = tmp.file(c.text);
    auto store = KeyStore::open(path);
    INFO(c.text);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == ErrorCode::InvalidConfig);
    CHECK_THAT(store.error().message, Catch::Contains(path));
    CHECK_THAT(store.error().message, Catch::Contains(c.where));
  }
}

TEST_CASE("key store: a wrong shape names the JSON path; duplicates and missing files", "[keys]") {
  TempDir tmp;
  auto error_of = [&](const std::string& text) {
    auto store = KeyStore::open(tmp.file(text));
    REQUIRE_FALSE(store);
    CHECK(store.error().code == ErrorCode::InvalidConfig);
    return store.error().message;
  };
  CHECK_THAT(error_of(R"({"keys": {}})"), Catch::Contains("top level"));
  CHECK_THAT(error_of(R"({"keys": [{"key": "a", "token_limit_per_5h": 0}]})"),
             Catch::Contains("keys[0].token_limit_per_5h"));
  CHECK_THAT(error_of(R"({"keys": [{"key": "a", "token_limit_per_5h": 1},
      {"key": "b", "token_limit_per_5h": "many"}]})"),
             Catch::Contains("keys[1].token_limit_per_5h"));
  CHECK_THAT(
      error_of(R"({"keys": [{"key": "a", "token_limit_per_5h": 1, "expiry_date": "soon"}]})"),
      Catch::Contains("keys[0].expiry_date"));
  CHECK_THAT(error_of(R"({"keys": [{"key": "a", "token_limit_per_5h": 1,
      "usage_windows": [{"window_start": "2026-01-01T00:00:00Z", "tokens_used": -1}]}]})"),
             Catch::Contains("keys[0].usage_windows[0].tokens_used"));
  const std::string dup = error_of(R"({"keys": [{"key": "pk_secret_dup", "token_limit_per_5h": 1},
      {"key": "pk_secret_dup", "token_limit_per_5h": 2}]})");
  CHECK_THAT(dup, Catch::Contains("more than once"));
  CHECK(dup.find("pk_secret_dup") == std::string::npos);  // redacted
  auto missing = KeyStore::open((tmp.dir / "nope.json").string());
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::InvalidConfig);
  CHECK_THAT(missing.error().message, Catch::Contains("nope.json"));
}

TEST_CASE("key store: apply adds usage, keeps the rest, replaces the file atomically", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto store = KeyStore::open(path);
  REQUIRE(store);
  const SysTime bucket = *parse_iso8601("2026-01-18T10:05:00Z");
  const SysTime later = bucket + 10min;
  std::vector<UsageDelta> deltas = {
      {"pk_alpha_1", 10, bucket, bucket + 1min},
      {"pk_alpha_1", 5, later, later + 2min},
      {"pk_unknown", 99, later, later},
  };
  auto changed = (*store)->apply(deltas, bucket - 1h);
  REQUIRE(changed);
  CHECK(*changed == 1);
  CHECK((*store)->writes() == 1);
  auto r = (*store)->find("pk_alpha_1");
  REQUIRE(r);
  REQUIRE(r->has_value());
  CHECK((**r).total_lifetime_tokens == 42 + 15);
  REQUIRE((**r).usage_windows.size() == 2);
  CHECK((**r).usage_windows[0].tokens == 50);
  CHECK((**r).usage_windows[1].tokens == 5);
  CHECK((**r).last_used == format_iso8601(later + 2min));
  CHECK((**r).expiry_date == "2099-12-31T23:59:59.000Z");  // untouched fields as they were
  // Windows older than keep_after are dropped.
  REQUIRE((*store)->apply({{"pk_alpha_1", 1, later, later}}, later));
  auto pruned = (*store)->find("pk_alpha_1");
  REQUIRE(pruned);
  CHECK((**pruned).usage_windows.size() == 1);
  // Only the file and its lock remain: no temporary files left behind.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(tmp.dir)) {
    const std::string name = entry.path().filename().string();
    CHECK((name == "apikeys.json" || name == "apikeys.json.lock"));
    ++files;
  }
  CHECK(files == 2);
}

TEST_CASE("key store: two writers on one file both count (the lock and the merge)", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto a = KeyStore::open(path);
  auto b = KeyStore::open(path);  // as a second process would
  REQUIRE(a);
  REQUIRE(b);
  const SysTime bucket = *parse_iso8601("2026-01-18T10:05:00Z");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    KeyStore* store = t % 2 == 0 ? a->get() : b->get();
    threads.emplace_back([store, bucket] {
      for (int i = 0; i < 100; ++i) {
        (void)store->apply({{"pk_beta_2", 3, bucket, bucket}}, bucket - 1h);
      }
    });
  }
  for (auto& t : threads) t.join();
  auto r = (*a)->find("pk_beta_2");
  REQUIRE(r);
  REQUIRE(r->has_value());
  CHECK((**r).total_lifetime_tokens == 4 * 100 * 3);
  CHECK((*a)->writes() + (*b)->writes() == 400);
}

TEST_CASE("key store: a reader never sees a half-written file", "[keys]") {
  TempDir tmp;
  const std::string path = tmp.file(kValid);
  auto store = KeyStore::open(path);
  REQUIRE(store);
  std::atomic<bool> stop{false};
  const SysTime bucket = *parse_iso8601("2026-01-18T10:05:00Z");
  std::thread writer([&] {
    for (int i = 0; i < 300; ++i)
      (void)(*store)->apply({{"pk_alpha_1", 1, bucket, bucket}}, bucket);
    stop = true;
  });
  int reads = 0, broken = 0;
  while (!stop.load()) {
    const std::string text = read(path);
    ++reads;
    // A torn file would be cut short: every complete one holds both keys and ends with '}'.
    const auto last = text.find_last_not_of(" \n");
    if (text.find("pk_beta_2") == std::string::npos || last == std::string::npos ||
        text[last] != '}') {
      ++broken;
    }
  }
  writer.join();
  CHECK(reads > 0);
  CHECK(broken == 0);
  auto final_store = KeyStore::open(path);
  REQUIRE(final_store);
}
