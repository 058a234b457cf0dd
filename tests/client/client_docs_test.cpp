// Behaviours of the call pipeline that docs/caching.md and docs/tenants.md promise, one test
// each, against the mock upstream. Each test quotes the sentence it checks.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/key_file.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::EmbeddingRequest;
using glmproxy::EmbeddingResponse;
using glmproxy::ErrorCode;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::mock::Fault;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

using test_support::config_for;
using test_support::key_json;
using test_support::KeyFile;
using test_support::keys_file;
using test_support::make_client;
using test_support::start_mock;

namespace {

// A key file holding one tenant, in a fresh temporary directory removed at the end.
constexpr const char* kTenant = "pk_docs_tenant_1";

ChatRequest as_tenant(const std::string& text) {
  ChatRequest r;
  r.messages = {{"user", text}};
  r.api_key = kTenant;
  return r;
}

// The tenant's tokens in the current window and over its lifetime.
std::pair<std::int64_t, std::int64_t> used(const ProxyClient& client) {
  auto stats = client.key_stats(kTenant);
  REQUIRE(stats);
  return {stats->current_usage.tokens_used_in_current_window, stats->total_lifetime_tokens};
}

// Runs `make(i)` for i in [0, n) on n threads released together; returns the results in order.
template <class R>
std::vector<R> together(int n, const std::function<R(int)>& make) {
  std::vector<std::optional<R>> out(static_cast<std::size_t>(n));
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      start.wait();
      out[static_cast<std::size_t>(i)].emplace(make(i));
    });
  }
  go.set_value();
  for (auto& t : threads) t.join();
  std::vector<R> results;
  for (auto& r : out) results.push_back(std::move(*r));
  return results;
}

// How often `needle` occurs in `haystack`.
std::size_t occurrences(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<std::pair<std::int64_t, std::int64_t>> {
  static std::string convert(const std::pair<std::int64_t, std::int64_t>& p) {
    return "{window " + std::to_string(p.first) + ", lifetime " + std::to_string(p.second) + "}";
  }
};
}  // namespace Catch

// tenants.md, Token quotas: "Cache hits cost no tokens; coalesced requests are charged once (one
// upstream call)."
TEST_CASE("docs: cache hits cost a tenant no tokens", "[docs][keys][cache]") {
  auto server = start_mock();
  Fault tokens;  // every answer reports 100 + 50 tokens
  tokens.times = 0;
  tokens.prompt_tokens = 100;
  tokens.completion_tokens = 50;
  server->add_fault(tokens);
  KeyFile file(keys_file({key_json(kTenant, 1'000'000)}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  config.cache.enabled = true;
  auto client = make_client(config);

  // complete(): the first call is charged, the hit is not.
  auto first = client.complete(as_tenant("cached question"));
  INFO((first ? "" : first.error().describe()));
  REQUIRE(first);
  CHECK(first->usage.total_tokens == 150);
  CHECK(used(client) == std::make_pair<std::int64_t, std::int64_t>(150, 150));
  auto hit = client.complete(as_tenant("cached question"));
  REQUIRE(hit);
  CHECK(hit->from_cache);
  CHECK(used(client) == std::make_pair<std::int64_t, std::int64_t>(150, 150));

  // complete_async(): the hit answers on the callback executor, still free.
  std::promise<Result<ChatResponse>> async;
  client.complete_async(as_tenant("cached question"),
                        [&](Result<ChatResponse> r) { async.set_value(std::move(r)); });
  auto async_hit = async.get_future().get();
  REQUIRE(async_hit);
  CHECK(async_hit->from_cache);
  CHECK(used(client) == std::make_pair<std::int64_t, std::int64_t>(150, 150));

  // stream(): the replay of a stored stream is free too.
  auto streamed =
      client.stream(as_tenant("cached stream"), [](const StreamEvent&) { return true; });
  INFO((streamed ? "" : streamed.error().describe()));
  REQUIRE(streamed);
  const auto after_stream = used(client);
  CHECK(after_stream.first > 150);  // the live stream was charged what it reported
  auto replayed =
      client.stream(as_tenant("cached stream"), [](const StreamEvent&) { return true; });
  REQUIRE(replayed);
  CHECK(replayed->from_cache);
  CHECK(used(client) == after_stream);

  // embed(): the same.
  EmbeddingRequest e;
  e.input = {"cached embedding input"};
  e.api_key = kTenant;
  auto vectors = client.embed(e);
  INFO((vectors ? "" : vectors.error().describe()));
  REQUIRE(vectors);
  const auto after_embed = used(client);
  CHECK(after_embed.first > after_stream.first);
  auto vectors_hit = client.embed(e);
  REQUIRE(vectors_hit);
  CHECK(vectors_hit->from_cache);
  CHECK(used(client) == after_embed);
  CHECK(server->stats().requests == 3);  // one chat, one stream, one embeddings call
}

TEST_CASE("docs: coalesced requests are charged to their tenant once", "[docs][keys][coalesce]") {
  auto server = start_mock();
  Fault slow;  // every answer reports 100 + 50 tokens, after a while (so the calls overlap)
  slow.times = 0;
  slow.prompt_tokens = 100;
  slow.completion_tokens = 50;
  slow.delay_before_headers = 500ms;
  server->add_fault(slow);
  KeyFile file(keys_file({key_json(kTenant, 1'000'000)}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  REQUIRE(config.cache.coalesce);
  auto client = make_client(config);
  auto results = together<Result<ChatResponse>>(
      8, [&](int) { return client.complete(as_tenant("one question, eight callers")); });
  for (auto& r : results) {
    INFO((r ? "" : r.error().describe()));
    REQUIRE(r);
    CHECK(r->usage.total_tokens == 150);
  }
  REQUIRE(server->stats().chat_requests == 1);
  CHECK(used(client) == std::make_pair<std::int64_t, std::int64_t>(150, 150));
}

// caching.md, The batching queue: "Identical requests in a batch are sent once (single-flight
// normally catches them earlier)." Embedding requests reach the batch without single-flight when
// coalescing is off; with the cache on they are still recognised as identical.
TEST_CASE("docs: identical embedding requests in one batch are sent once", "[docs][batch][embed]") {
  auto server = start_mock();
  Config plain = config_for(*server);
  auto reference = make_client(plain);
  EmbeddingRequest same;
  same.input = {"the same text"};
  auto expected = reference.embed(same);
  REQUIRE(expected);
  server->reset();

  Config config = config_for(*server);
  config.batch.enabled = true;
  config.batch.window = 300ms;  // all of them land in one batch
  config.batch.max_size = 100;
  config.cache.enabled = true;
  config.cache.coalesce = false;  // nothing catches them before the batch
  auto client = make_client(config);
  auto results = together<Result<EmbeddingResponse>>(6, [&](int i) {
    EmbeddingRequest r;
    r.input = {i == 5 ? "another text" : "the same text"};
    return client.embed(r);
  });
  for (int i = 0; i < 6; ++i) {
    auto& r = results[static_cast<std::size_t>(i)];
    INFO(i << ": " << (r ? "" : r.error().describe()));
    REQUIRE(r);
    REQUIRE(r->embeddings.size() == 1);
    if (i < 5) CHECK(r->embeddings[0] == expected->embeddings[0]);
  }
  REQUIRE(server->stats().embeddings_requests == 1);
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 1);
  INFO(recorded[0].body);
  CHECK(occurrences(recorded[0].body, "\"the same text\"") == 1);  // the upstream saw it once
  CHECK(occurrences(recorded[0].body, "\"another text\"") == 1);
  CHECK(client.metrics().batching.batched_requests == 6);
}

// caching.md: identical chat requests are caught by single-flight before the batch; with
// coalescing off each is its own call ("to get several samples of one prompt, send them with
// `CachePolicy::Bypass` (which also skips coalescing) or turn coalescing off"), batched or not.
TEST_CASE("docs: identical chat requests in a batch: one call coalesced, one each without",
          "[docs][batch][coalesce]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.batch.enabled = true;
  config.batch.window = 300ms;
  config.batch.max_size = 100;
  auto ask = [](int) {
    ChatRequest r;
    r.messages = {{"user", "one prompt"}};
    return r;
  };
  {
    auto client = make_client(config);
    auto results =
        together<Result<ChatResponse>>(5, [&](int i) { return client.complete(ask(i)); });
    for (auto& r : results) CHECK(r);
    CHECK(server->stats().chat_requests == 1);
  }
  server->reset();
  config.cache.coalesce = false;
  {
    auto client = make_client(config);
    auto results =
        together<Result<ChatResponse>>(5, [&](int i) { return client.complete(ask(i)); });
    for (auto& r : results) CHECK(r);
    CHECK(server->stats().chat_requests == 5);  // samples: each its own call
  }
}
