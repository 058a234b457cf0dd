// The call pipeline against doubles of its two store seams (QuotaStore, CacheStore): no file,
// no network. What a shared (Redis) store must provide is exactly what these doubles do.

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cache/cache_key.hpp"
#include "client/call_pipeline.hpp"

using glmproxy::CachePolicy;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::KeyStats;
using glmproxy::Result;
using glmproxy::Usage;
using glmproxy::detail::CachedAnswer;
using glmproxy::detail::CachedAnswerPtr;
using glmproxy::detail::CacheKey;
using glmproxy::detail::CacheStore;
using glmproxy::detail::CallPipeline;
using glmproxy::detail::LruCacheStats;
using glmproxy::detail::QuotaStore;

namespace {

struct FakeQuotas final : QuotaStore {
  std::map<std::string, std::int64_t, std::less<>> used;
  Result<std::string> admit(std::string_view key) override {
    if (key == "sk-blocked") {
      return glmproxy::make_error(ErrorCode::QuotaExceeded, "the double's quota is used up");
    }
    if (key == "sk-pinned") return std::string("glm-4.5-air");
    if (key.empty()) return glmproxy::make_error(ErrorCode::Unauthorized, "no key");
    return std::string();
  }
  void record_usage(std::string_view key, std::int64_t tokens) noexcept override {
    used[std::string(key)] += tokens;
  }
  Result<KeyStats> stats(std::string_view) override { return KeyStats{}; }
  void invalidate(std::string_view) noexcept override {}
};

struct FakeCache final : CacheStore {
  std::map<std::pair<std::uint64_t, std::uint64_t>, CachedAnswerPtr> entries;
  int puts = 0;
  std::optional<CachedAnswerPtr> get(const CacheKey& key) override {
    auto it = entries.find({key.lo, key.hi});
    if (it == entries.end()) return std::nullopt;
    return it->second;
  }
  void put(const CacheKey& key, CachedAnswerPtr answer) override {
    ++puts;
    entries[{key.lo, key.hi}] = std::move(answer);
  }
  LruCacheStats stats() const override { return {}; }
};

}  // namespace

TEST_CASE("pipeline: tenant admission and usage go through the QuotaStore seam", "[pipeline]") {
  Config config;
  auto quotas = std::make_unique<FakeQuotas>();
  FakeQuotas* q = quotas.get();
  auto pipeline = CallPipeline::with_stores(config, std::move(quotas), nullptr);

  auto ok = pipeline->admit("", "sk-tenant", "glm-4.7", /*key_model=*/true, nullptr);
  REQUIRE(ok);
  CHECK(*ok == "glm-4.7");
  auto pinned = pipeline->admit("", "sk-pinned", "glm-4.7", /*key_model=*/true, nullptr);
  REQUIRE(pinned);
  CHECK(*pinned == "glm-4.5-air");  // the key's model override (chat)
  auto embed = pipeline->admit("", "sk-pinned", "embedding-3", /*key_model=*/false, nullptr);
  REQUIRE(embed);
  CHECK(*embed == "embedding-3");  // embeddings keep their own model
  auto refused = pipeline->admit("", "sk-blocked", "glm-4.7", true, nullptr);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::QuotaExceeded);
  auto bad_id = pipeline->admit("bad\nid", "sk-tenant", "glm-4.7", true, nullptr);
  REQUIRE_FALSE(bad_id);
  CHECK(bad_id.error().code == ErrorCode::InvalidArgument);

  Usage usage;
  usage.prompt_tokens = 7;
  usage.completion_tokens = 5;
  usage.total_tokens = 12;
  pipeline->charge("sk-tenant", usage);
  pipeline->charge("sk-tenant", usage);
  CHECK(q->used["sk-tenant"] == 24);
  // With a registry, a request's answer is its tenant's.
  CHECK(pipeline->tenant_scope("sk-tenant") == "sk-tenant");
}

TEST_CASE("pipeline: without a QuotaStore every key is admitted and api_key is ignored",
          "[pipeline]") {
  Config config;
  auto pipeline = CallPipeline::with_stores(config, nullptr, nullptr);
  auto ok = pipeline->admit("", "anything", "glm-4.7", true, nullptr);
  REQUIRE(ok);
  CHECK(*ok == "glm-4.7");
  CHECK(pipeline->tenant_scope("anything").empty());
  CHECK_FALSE(pipeline->policy(CachePolicy::Default).read_cache);  // no cache store
}

TEST_CASE("pipeline: answers are stored and found through the CacheStore seam", "[pipeline]") {
  Config config;
  auto cache = std::make_unique<FakeCache>();
  FakeCache* c = cache.get();
  auto pipeline = CallPipeline::with_stores(config, nullptr, std::move(cache));
  const auto policy = pipeline->policy(CachePolicy::Default);
  CHECK(policy.read_cache);
  CHECK(policy.write_cache);
  CHECK_FALSE(pipeline->policy(CachePolicy::Bypass).write_cache);
  CHECK_FALSE(pipeline->policy(CachePolicy::Refresh).read_cache);
  CHECK(pipeline->policy(CachePolicy::Refresh).write_cache);

  glmproxy::ChatRequest request;
  request.messages = {{"user", "hello"}};
  const CacheKey key = glmproxy::detail::chat_cache_key(request, "http://upstream/v4", "glm-4.7",
                                                        /*stream=*/false, {});
  CHECK_FALSE(pipeline->lookup(key, nullptr).has_value());
  CachedAnswer answer;
  answer.chat.content = "hi";
  pipeline->store(key, std::move(answer));
  CHECK(c->puts == 1);
  auto hit = pipeline->lookup(key, nullptr);
  REQUIRE(hit.has_value());
  CHECK((*hit)->chat.content == "hi");
}
