#pragma once

// Where answers are cached: the CacheStore seam. Today's implementation is the in-process
// sharded LRU (MemoryCacheStore); a shared one (Redis, a later issue) implements the same three
// calls, and the call pipeline does not change.

#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "cache/cache_key.hpp"
#include "cache/lru_cache.hpp"
#include "glmproxy/config.hpp"
#include "glmproxy/response.hpp"

namespace glmproxy::detail {

/// One cached answer: a chat reply (with its events when it was streamed: a later identical
/// stream() replays them) or an embedding reply.
struct CachedAnswer {
  ChatResponse chat;
  std::vector<StreamEvent> events;
  EmbeddingResponse embedding;
};
using CachedAnswerPtr = std::shared_ptr<const CachedAnswer>;

/// Thread safety: implementations are thread-safe.
class CacheStore {
 public:
  virtual ~CacheStore() = default;
  /// The live answer stored under `key`, or nullopt (missing or expired).
  virtual std::optional<CachedAnswerPtr> get(const CacheKey& key) = 0;
  /// Stores `answer` under `key` (an implementation may decline: too large for its budget).
  virtual void put(const CacheKey& key, CachedAnswerPtr answer) = 0;
  /// Counters for metrics().cache.
  virtual LruCacheStats stats() const = 0;
};

/// The bytes an answer is accounted as (its strings, events and vectors, with overheads).
std::size_t answer_bytes(const CachedAnswer& answer) noexcept;

/// CACHE_ENABLED: the in-process store (CACHE_MAX_SIZE, GLMPROXY_CACHE_MAX_BYTES, CACHE_TTL_MS,
/// Config::clock); nullptr when the cache is off.
std::unique_ptr<CacheStore> make_cache_store(const Config& config);

/// The in-process implementation: a sharded LRU with TTL and a byte budget.
class MemoryCacheStore final : public CacheStore {
 public:
  explicit MemoryCacheStore(const LruCacheOptions& options) : lru_(options) {}
  std::optional<CachedAnswerPtr> get(const CacheKey& key) override { return lru_.get(key); }
  void put(const CacheKey& key, CachedAnswerPtr answer) override;
  LruCacheStats stats() const override { return lru_.stats(); }

 private:
  LruCache<CachedAnswerPtr> lru_;
};

}  // namespace glmproxy::detail
