#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace glmproxy::detail {

/// A 128-bit key (XXH3-128 of the request, computed in cache_key.cpp).
struct CacheKey {
  std::uint64_t lo = 0, hi = 0;
  friend bool operator==(const CacheKey&, const CacheKey&) = default;
};

struct CacheKeyHash {
  std::size_t operator()(const CacheKey& k) const noexcept {
    return static_cast<std::size_t>(k.lo ^ (k.hi * 0x9E3779B97F4A7C15ull));
  }
};

/// Time source for expiry; empty = std::chrono::steady_clock::now.
using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;

struct LruCacheOptions {
  std::size_t max_entries = 1000;
  std::size_t max_bytes = 64u << 20;      ///< sum of the `bytes` estimates given to put()
  std::chrono::milliseconds ttl{300000};  ///< absolute, from insertion; negative acts as 0
  std::size_t shards = 16;  ///< rounded up to a power of two; fewer when max_entries is small
  SteadyClock clock;
};

struct LruCacheStats {
  std::uint64_t hits = 0, misses = 0, stores = 0;
  std::uint64_t evictions = 0;    ///< least-recently-used entries removed to fit a budget
  std::uint64_t expirations = 0;  ///< entries found expired (by get/visit/put/erase or the sweep)
  std::uint64_t rejected = 0;     ///< values larger than their shard's byte budget, not stored
  std::size_t entries = 0;        ///< may include expired entries nobody has touched yet
  std::size_t bytes = 0;
};

/// A key -> V map bounded by entry count and by bytes, with least-recently-used eviction and an
/// absolute TTL: reading an entry moves it to the front but does not extend its life.
///
/// The map is split into shards by key, each with its own lock, list and index, so lookups on
/// different shards do not contend. LRU is per shard and the budgets are split evenly across
/// shards: together the shards never hold more than max_entries (at least 1) or max_bytes, but an
/// entry can be evicted while another shard holds older ones, and a value is rejected when it
/// exceeds its shard's share of max_bytes (max_bytes / shards), not max_bytes. There is no expiry
/// thread: expired entries are dropped when touched, and put() sweeps a few from its shard's tail,
/// so stats().entries may count expired entries until then.
///
/// Thread safety: thread-safe. visit() runs its callback on the calling thread under the shard
/// lock. The clock is called without any lock held.
/// Example:
///   LruCache<std::string> cache({.max_entries = 1000, .ttl = 5min});
///   cache.put(key, body, body.size());
///   if (auto hit = cache.get(key)) use(*hit);
template <class V>
class LruCache {
 public:
  explicit LruCache(LruCacheOptions options)
      : ttl_(options.ttl.count() < 0 ? std::chrono::milliseconds(0) : options.ttl),
        clock_(std::move(options.clock)) {
    std::size_t n = 1;
    while (n < options.shards && n <= (SIZE_MAX >> 1)) n <<= 1;
    // Every shard needs room for at least one entry: halve until the entry budget covers them.
    while (n > 1 && n > options.max_entries) n >>= 1;
    shard_count_ = n;
    shards_ = std::make_unique<Shard[]>(n);
    // Split exactly (the first shards take the remainder): together never over the budgets.
    for (std::size_t i = 0; i < n; ++i) {
      shards_[i].max_entries = std::max<std::size_t>(1, share(options.max_entries, n, i));
      shards_[i].max_bytes = share(options.max_bytes, n, i);
    }
  }

  /// A copy of the value when present and not expired (an expired entry is removed and counted).
  /// Moves the entry to the front. Counts a hit or a miss.
  std::optional<V> get(const CacheKey& key) {
    std::optional<V> out;
    visit(key, [&out](const V& value) { out.emplace(value); });
    return out;
  }

  /// Calls f(const V&) under the shard lock instead of copying the value (for callers that copy
  /// out only part); returns whether it was a hit. Counts like get(). `f` must not call back
  /// into this cache.
  template <class F>
  bool visit(const CacheKey& key, F&& f) {
    const auto now = this->now();
    Shard& s = shard_of(key);
    std::lock_guard lock(s.mu);
    Entry* e = s.find_live(key, now);
    if (e == nullptr) return false;
    std::forward<F>(f)(std::as_const(e->value));
    return true;
  }

  /// Inserts or replaces; `bytes` is the caller's size estimate of the value. Evicts the shard's
  /// least-recently-used entries until both budgets hold. A value larger than the shard's byte
  /// budget is not stored (counted as rejected; an older entry under the same key is removed,
  /// so get() never returns a value older than the last put). TTL is absolute from this call.
  void put(const CacheKey& key, V value, std::size_t bytes) {
    const auto now = this->now();
    const auto expires_at = expiry_from(now);
    Shard& s = shard_of(key);
    std::lock_guard lock(s.mu);
    if (bytes > s.max_bytes) {
      ++s.rejected;
      if (auto found = s.index.find(key); found != s.index.end()) s.remove(&found->second);
      return;
    }
    s.sweep(now);
    if (auto found = s.index.find(key); found != s.index.end()) {
      Entry* e = &found->second;
      if (e->expires_at <= now) ++s.expirations;
      e->value = std::move(value);
      s.bytes = s.bytes - e->bytes + bytes;
      e->bytes = bytes;
      e->expires_at = expires_at;
      s.to_front(e);
    } else {
      auto [it, inserted] = s.index.try_emplace(key, key, std::move(value), bytes, expires_at);
      s.link_front(&it->second);
      s.bytes += bytes;
    }
    ++s.stores;
    // The new entry fits alone (bytes <= max_bytes, max_entries >= 1), so this stops before it.
    while (s.index.size() > s.max_entries || s.bytes > s.max_bytes) {
      Entry* last = s.tail;
      ++(last->expires_at <= now ? s.expirations : s.evictions);
      s.remove(last);
    }
  }

  /// Removes the entry; returns whether a live (unexpired) entry was removed.
  bool erase(const CacheKey& key) {
    const auto now = this->now();
    Shard& s = shard_of(key);
    std::lock_guard lock(s.mu);
    auto found = s.index.find(key);
    if (found == s.index.end()) return false;
    const bool live = found->second.expires_at > now;
    if (!live) ++s.expirations;
    s.remove(&found->second);
    return live;
  }

  /// Removes every entry; the counters are kept.
  void clear() {
    for (std::size_t i = 0; i < shard_count_; ++i) {
      std::lock_guard lock(shards_[i].mu);
      shards_[i].index.clear();
      shards_[i].head = shards_[i].tail = nullptr;
      shards_[i].bytes = 0;
    }
  }

  /// Sums over the shards, locking one at a time: not a single atomic snapshot.
  LruCacheStats stats() const {
    LruCacheStats out;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      const Shard& s = shards_[i];
      std::lock_guard lock(s.mu);
      out.hits += s.hits;
      out.misses += s.misses;
      out.stores += s.stores;
      out.evictions += s.evictions;
      out.expirations += s.expirations;
      out.rejected += s.rejected;
      out.entries += s.index.size();
      out.bytes += s.bytes;
    }
    return out;
  }

  /// Entries held, including expired ones not yet dropped.
  std::size_t size() const { return stats().entries; }

  std::size_t shard_count() const noexcept { return shard_count_; }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Entries live in the map's nodes (their addresses are stable) and are chained into the
  // recency list by hand: std::list::splice would do, but in unoptimised builds it drags in an
  // abort() call (libstdc++'s unequal-allocator check) that a library must not reference.
  struct Entry {
    Entry(const CacheKey& k, V v, std::size_t n, TimePoint t)
        : key(k), value(std::move(v)), bytes(n), expires_at(t) {}
    CacheKey key;
    V value;
    std::size_t bytes;
    TimePoint expires_at;
    Entry* prev = nullptr;  // towards the most recently used
    Entry* next = nullptr;  // towards the least recently used
  };

  // Entries checked from the tail by each put(): bounded, so put() stays O(1).
  static constexpr int kSweepLimit = 4;

  // Aligned so that two shards' locks and counters never share a cache line.
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<CacheKey, Entry, CacheKeyHash> index;
    Entry* head = nullptr;  // most recently used
    Entry* tail = nullptr;  // least recently used
    std::size_t bytes = 0, max_entries = 1, max_bytes = 0;
    std::uint64_t hits = 0, misses = 0, stores = 0, evictions = 0, expirations = 0, rejected = 0;

    void link_front(Entry* e) noexcept {
      e->prev = nullptr;
      e->next = head;
      if (head != nullptr) head->prev = e;
      head = e;
      if (tail == nullptr) tail = e;
    }

    void unlink(Entry* e) noexcept {
      (e->prev != nullptr ? e->prev->next : head) = e->next;
      (e->next != nullptr ? e->next->prev : tail) = e->prev;
      e->prev = e->next = nullptr;
    }

    void to_front(Entry* e) noexcept {
      if (e == head) return;
      unlink(e);
      link_front(e);
    }

    void remove(Entry* e) {
      bytes -= e->bytes;
      unlink(e);
      const CacheKey key = e->key;  // erase() destroys the entry the key lives in
      index.erase(key);
    }

    // The live entry moved to the front, or nullptr; counts the hit or miss.
    Entry* find_live(const CacheKey& key, TimePoint now) {
      auto found = index.find(key);
      if (found == index.end()) {
        ++misses;
        return nullptr;
      }
      Entry* e = &found->second;
      if (e->expires_at <= now) {
        ++expirations;
        ++misses;
        remove(e);
        return nullptr;
      }
      ++hits;
      to_front(e);
      return e;
    }

    // The tail is the least recently used, not necessarily the first to expire: this is a
    // cheap partial sweep, not a guarantee.
    void sweep(TimePoint now) {
      for (int i = 0; i < kSweepLimit && tail != nullptr; ++i) {
        if (tail->expires_at > now) break;
        ++expirations;
        remove(tail);
      }
    }
  };

  static std::size_t share(std::size_t total, std::size_t n, std::size_t i) {
    return total / n + (i < total % n ? std::size_t{1} : std::size_t{0});
  }

  TimePoint now() const { return clock_ ? clock_() : std::chrono::steady_clock::now(); }

  // now + ttl, saturating instead of overflowing for very long TTLs.
  TimePoint expiry_from(TimePoint now) const {
    const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::max() - now);
    return ttl_ >= room ? TimePoint::max() : now + ttl_;
  }

  // From the high bits of a multiply-mix of key.hi: not the bits the per-shard map buckets on,
  // and small keys (tests) still spread.
  Shard& shard_of(const CacheKey& key) const {
    const std::uint64_t h = (key.hi ^ (key.hi >> 33)) * 0xff51afd7ed558ccdull;
    return shards_[static_cast<std::size_t>(h >> 32) & (shard_count_ - 1)];
  }

  std::chrono::milliseconds ttl_;
  SteadyClock clock_;
  std::size_t shard_count_ = 1;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace glmproxy::detail
