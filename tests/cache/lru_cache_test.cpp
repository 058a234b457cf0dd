// LruCache: hit/miss counting, absolute TTL, per-shard LRU by entries and bytes, rejection of
// oversized values, and consistent stats under concurrent use. Time is an injected clock the
// tests move; nothing sleeps.

#include "cache/lru_cache.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using glmproxy::detail::CacheKey;
using glmproxy::detail::LruCache;
using glmproxy::detail::LruCacheOptions;
using glmproxy::detail::LruCacheStats;
using namespace std::chrono_literals;

namespace {

// A clock the test advances; copies share the time.
struct FakeClock {
  std::shared_ptr<std::atomic<std::int64_t>> ms = std::make_shared<std::atomic<std::int64_t>>(0);

  glmproxy::detail::SteadyClock fn() const {
    return
        [m = ms] { return std::chrono::steady_clock::time_point(std::chrono::milliseconds(*m)); };
  }
  void advance(std::chrono::milliseconds d) { ms->fetch_add(d.count()); }
};

CacheKey key(std::uint64_t i) { return CacheKey{i, i * 7919 + 1}; }

LruCacheOptions one_shard(const FakeClock& clock) {
  LruCacheOptions o;
  o.shards = 1;
  o.ttl = 1000ms;
  o.clock = clock.fn();
  return o;
}

// Counts copies made of it, so visit() can be shown not to copy.
struct CopyCounter {
  std::shared_ptr<int> copies;
  int payload = 0;
  CopyCounter(std::shared_ptr<int> c, int p) : copies(std::move(c)), payload(p) {}
  CopyCounter(const CopyCounter& other) : copies(other.copies), payload(other.payload) {
    ++*copies;
  }
  CopyCounter(CopyCounter&&) = default;
  CopyCounter& operator=(const CopyCounter& other) {
    copies = other.copies;
    payload = other.payload;
    ++*copies;
    return *this;
  }
  CopyCounter& operator=(CopyCounter&&) = default;
};

}  // namespace

TEST_CASE("lru cache: counts hits and misses") {
  FakeClock clock;
  LruCache<std::string> cache(one_shard(clock));
  CHECK_FALSE(cache.get(key(1)));
  cache.put(key(1), "one", 3);
  auto hit = cache.get(key(1));
  REQUIRE(hit);
  CHECK(*hit == "one");
  CHECK(cache.get(key(1)));
  CHECK_FALSE(cache.get(key(2)));

  const LruCacheStats s = cache.stats();
  CHECK(s.hits == 2);
  CHECK(s.misses == 2);
  CHECK(s.stores == 1);
  CHECK(s.entries == 1);
  CHECK(s.bytes == 3);
  CHECK(s.evictions == 0);
  CHECK(s.expirations == 0);
  CHECK(cache.size() == 1);
}

TEST_CASE("lru cache: ttl is absolute from insertion") {
  FakeClock clock;
  LruCache<int> cache(one_shard(clock));  // ttl 1000 ms
  cache.put(key(1), 1, 1);
  clock.advance(999ms);
  CHECK(cache.get(key(1)) == 1);  // a hit does not extend the life
  clock.advance(1ms);
  CHECK_FALSE(cache.get(key(1)));
  LruCacheStats s = cache.stats();
  CHECK(s.hits == 1);
  CHECK(s.misses == 1);
  CHECK(s.expirations == 1);
  CHECK(s.entries == 0);
  CHECK(s.bytes == 0);

  SECTION("a replacement starts a new life") {
    cache.put(key(2), 2, 1);
    clock.advance(600ms);
    cache.put(key(2), 22, 1);
    clock.advance(600ms);
    CHECK(cache.get(key(2)) == 22);
    clock.advance(400ms);
    CHECK_FALSE(cache.get(key(2)));
  }
  SECTION("visit and erase see expiry too") {
    cache.put(key(3), 3, 1);
    cache.put(key(4), 4, 1);
    clock.advance(1000ms);
    CHECK_FALSE(cache.visit(key(3), [](const int&) {}));
    CHECK_FALSE(cache.erase(key(4)));  // was there, but not alive
    s = cache.stats();
    CHECK(s.expirations == 3);
    CHECK(s.entries == 0);
  }
}

TEST_CASE("lru cache: put sweeps expired entries from its shard's tail") {
  FakeClock clock;
  LruCache<int> cache(one_shard(clock));
  for (std::uint64_t i = 0; i < 3; ++i) cache.put(key(i), 0, 1);
  clock.advance(1000ms);
  cache.put(key(10), 10, 1);
  const LruCacheStats s = cache.stats();
  CHECK(s.expirations == 3);
  CHECK(s.evictions == 0);
  CHECK(s.entries == 1);
  CHECK(s.bytes == 1);
}

TEST_CASE("lru cache: touching an entry saves it from eviction") {
  FakeClock clock;
  LruCacheOptions o = one_shard(clock);
  o.max_entries = 3;
  LruCache<int> cache(o);
  cache.put(key(1), 1, 1);
  cache.put(key(2), 2, 1);
  cache.put(key(3), 3, 1);
  SECTION("by get") { CHECK(cache.get(key(1)) == 1); }
  SECTION("by visit") {
    CHECK(cache.visit(key(1), [](const int&) {}));
  }
  SECTION("by replacing it") { cache.put(key(1), 1, 1); }
  cache.put(key(4), 4, 1);  // evicts 2, the least recently used

  CHECK(cache.get(key(1)));
  CHECK_FALSE(cache.get(key(2)));
  CHECK(cache.get(key(3)));
  CHECK(cache.get(key(4)));
  const LruCacheStats s = cache.stats();
  CHECK(s.evictions == 1);
  CHECK(s.entries == 3);
}

TEST_CASE("lru cache: evicts least recently used entries to fit the byte budget") {
  FakeClock clock;
  LruCacheOptions o = one_shard(clock);
  o.max_bytes = 100;
  LruCache<int> cache(o);
  cache.put(key(1), 1, 40);
  cache.put(key(2), 2, 40);
  cache.put(key(3), 3, 10);
  CHECK(cache.stats().bytes == 90);
  cache.put(key(4), 4, 50);  // 140 > 100: drops 1, then 100 fits

  CHECK_FALSE(cache.get(key(1)));
  CHECK(cache.get(key(2)));
  CHECK(cache.get(key(3)));
  CHECK(cache.get(key(4)));
  LruCacheStats s = cache.stats();
  CHECK(s.bytes == 100);
  CHECK(s.evictions == 1);

  cache.put(key(5), 5, 95);  // needs all of 2, 3 and 4 gone
  s = cache.stats();
  CHECK(s.entries == 1);
  CHECK(s.bytes == 95);
  CHECK(s.evictions == 4);
}

TEST_CASE("lru cache: a value bigger than the byte budget is rejected") {
  FakeClock clock;
  LruCacheOptions o = one_shard(clock);
  o.max_bytes = 100;
  LruCache<int> cache(o);
  cache.put(key(1), 1, 50);
  cache.put(key(2), 2, 50);
  cache.put(key(3), 3, 101);

  LruCacheStats s = cache.stats();
  CHECK(s.rejected == 1);
  CHECK(s.stores == 2);
  CHECK(s.evictions == 0);
  CHECK(s.entries == 2);
  CHECK(s.bytes == 100);
  CHECK_FALSE(cache.get(key(3)));
  CHECK(cache.get(key(1)));
  CHECK(cache.get(key(2)));

  SECTION("exactly the budget fits") {
    cache.put(key(4), 4, 100);
    CHECK(cache.get(key(4)));
    CHECK(cache.stats().entries == 1);
  }
  SECTION("an oversized replacement removes the older value of that key") {
    cache.put(key(1), 11, 500);
    CHECK_FALSE(cache.get(key(1)));
    CHECK(cache.get(key(2)));
    s = cache.stats();
    CHECK(s.rejected == 2);
    CHECK(s.bytes == 50);
  }
}

TEST_CASE("lru cache: put replaces value and bytes") {
  FakeClock clock;
  LruCacheOptions o = one_shard(clock);
  o.max_bytes = 100;
  LruCache<std::string> cache(o);
  cache.put(key(1), "old", 30);
  cache.put(key(2), "two", 30);
  cache.put(key(1), "new", 60);

  CHECK(cache.get(key(1)) == "new");
  LruCacheStats s = cache.stats();
  CHECK(s.entries == 2);
  CHECK(s.bytes == 90);
  CHECK(s.stores == 2 + 1);

  cache.put(key(1), "small", 5);
  s = cache.stats();
  CHECK(s.bytes == 35);
  CHECK(s.evictions == 0);
}

TEST_CASE("lru cache: erase and clear") {
  FakeClock clock;
  LruCacheOptions o;
  o.shards = 4;
  o.clock = clock.fn();
  LruCache<int> cache(o);
  for (std::uint64_t i = 0; i < 20; ++i) cache.put(key(i), static_cast<int>(i), 10);

  CHECK(cache.erase(key(3)));
  CHECK_FALSE(cache.erase(key(3)));
  CHECK_FALSE(cache.get(key(3)));
  CHECK(cache.size() == 19);
  CHECK(cache.stats().bytes == 190);

  cache.clear();
  CHECK(cache.size() == 0);
  const LruCacheStats s = cache.stats();
  CHECK(s.entries == 0);
  CHECK(s.bytes == 0);
  CHECK(s.stores == 20);  // counters survive clear()
  CHECK_FALSE(cache.get(key(5)));

  cache.put(key(5), 5, 10);
  CHECK(cache.get(key(5)) == 5);
}

TEST_CASE("lru cache: visit reads in place without copying") {
  FakeClock clock;
  LruCache<CopyCounter> cache(one_shard(clock));
  auto copies = std::make_shared<int>(0);
  cache.put(key(1), CopyCounter(copies, 42), 1);
  REQUIRE(*copies == 0);

  int seen = 0;
  CHECK(cache.visit(key(1), [&](const CopyCounter& v) { seen = v.payload; }));
  CHECK(seen == 42);
  CHECK(*copies == 0);
  CHECK_FALSE(cache.visit(key(2), [&](const CopyCounter&) { seen = -1; }));
  CHECK(seen == 42);

  CHECK(cache.get(key(1))->payload == 42);  // get() does copy
  CHECK(*copies == 1);
  const LruCacheStats s = cache.stats();
  CHECK(s.hits == 2);
  CHECK(s.misses == 1);
}

TEST_CASE("lru cache: shards split the budgets and never exceed them in total") {
  FakeClock clock;
  LruCacheOptions o;
  o.max_entries = 1000;
  o.max_bytes = 1 << 20;
  o.shards = 16;
  o.clock = clock.fn();
  LruCache<int> cache(o);
  REQUIRE(cache.shard_count() == 16);

  for (std::uint64_t i = 0; i < 10'000; ++i) {
    cache.put(key(i), static_cast<int>(i), 100);
    if (i % 97 == 0) REQUIRE(cache.size() <= 1000);
  }
  const LruCacheStats s = cache.stats();
  CHECK(s.entries <= 1000);
  CHECK(s.entries > 900);  // keys spread over the shards: most of the budget is used
  CHECK(s.stores == 10'000);
  CHECK(s.stores - s.evictions == s.entries);
  CHECK(s.bytes == s.entries * 100);
  CHECK(s.expirations == 0);
  CHECK(s.rejected == 0);

  std::size_t found = 0;
  for (std::uint64_t i = 0; i < 10'000; ++i) {
    if (cache.get(key(i))) ++found;
  }
  CHECK(found == s.entries);
}

TEST_CASE("lru cache: shard count follows options") {
  FakeClock clock;
  LruCacheOptions o;
  o.clock = clock.fn();
  o.shards = 5;
  CHECK(LruCache<int>(o).shard_count() == 8);
  o.shards = 0;
  CHECK(LruCache<int>(o).shard_count() == 1);

  SECTION("fewer shards when max_entries is small") {
    o.shards = 16;
    o.max_entries = 3;
    LruCache<int> cache(o);
    CHECK(cache.shard_count() == 2);
    for (std::uint64_t i = 0; i < 100; ++i) cache.put(key(i), 0, 1);
    CHECK(cache.size() <= 3);
    CHECK(cache.size() >= 2);
  }
  SECTION("max_entries 0 still holds one entry") {
    o.max_entries = 0;
    LruCache<int> cache(o);
    CHECK(cache.shard_count() == 1);
    cache.put(key(1), 1, 1);
    CHECK(cache.size() == 1);
  }
}

TEST_CASE("lru cache: concurrent get, visit, put and erase keep stats consistent") {
  FakeClock clock;
  LruCacheOptions o;
  o.max_entries = 300;
  o.max_bytes = 300 * 64;
  o.ttl = 50ms;
  o.shards = 8;
  o.clock = clock.fn();
  LruCache<std::string> cache(o);

  constexpr int kThreads = 4;
  constexpr int kOpsPerThread = 50'000;
  constexpr std::uint64_t kKeys = 1000;
  std::vector<std::uint64_t> gets(kThreads, 0), hits(kThreads, 0), puts(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
      std::uniform_int_distribution<std::uint64_t> pick(0, kKeys - 1);
      for (int i = 0; i < kOpsPerThread; ++i) {
        const std::uint64_t k = pick(rng);
        const auto t_index = static_cast<std::size_t>(t);
        switch (rng() % 8) {
          case 0:
          case 1:
          case 2:
            ++gets[t_index];
            if (auto v = cache.get(key(k))) {
              if (*v == std::to_string(k)) ++hits[t_index];
            }
            break;
          case 3: {
            ++gets[t_index];
            bool same = false;
            if (cache.visit(key(k), [&](const std::string& v) { same = v == std::to_string(k); })) {
              if (same) ++hits[t_index];
            }
            break;
          }
          case 4:
          case 5:
          case 6:
            ++puts[t_index];
            cache.put(key(k), std::to_string(k), 10 + k % 100);
            break;
          default:
            cache.erase(key(k));
        }
        if (i % 256 == 0) clock.advance(1ms);
      }
    });
  }
  for (auto& th : threads) th.join();

  std::uint64_t total_gets = 0, total_hits = 0, total_puts = 0;
  for (int t = 0; t < kThreads; ++t) {
    total_gets += gets[static_cast<std::size_t>(t)];
    total_hits += hits[static_cast<std::size_t>(t)];
    total_puts += puts[static_cast<std::size_t>(t)];
  }
  const LruCacheStats s = cache.stats();
  CHECK(s.hits + s.misses == total_gets);
  CHECK(s.hits == total_hits);  // every hit returned the value stored under its key
  CHECK(s.hits > 0);
  CHECK(s.misses > 0);
  CHECK(s.stores == total_puts);
  CHECK(s.rejected == 0);
  CHECK(s.entries <= 300);
  CHECK(s.bytes <= 300 * 64);
  CHECK(s.entries == cache.size());
}
