// Issue 16's reply fields end to end: the mock upstream sends usage details, a refusal and Z.AI
// web_search when the prompt asks ("[mock:...]" markers, docs/mock-upstream.md), and
// ProxyClient::complete() and stream() hand them over, for both protocols; the tenant quota and
// the metrics count what docs/tenants.md says.

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/key_file.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::Protocol;
using glmproxy::ProxyClient;
using glmproxy::StreamEvent;
using glmproxy::mock::Fault;

using test_support::config_for;
using test_support::key_json;
using test_support::KeyFile;
using test_support::keys_file;
using test_support::make_client;
using test_support::start_mock;

namespace {

constexpr const char* kTenant = "pk_reply_fields_tenant";
constexpr const char* kRefusal = "I'm sorry, but I can't help with that request.";

ChatRequest asking(Protocol protocol, const std::string& text) {
  ChatRequest r;
  r.protocol = protocol;
  r.messages = {{"user", text}};
  r.api_key = kTenant;
  return r;
}

std::int64_t window_tokens(const ProxyClient& client) {
  auto stats = client.key_stats(kTenant);
  REQUIRE(stats);
  return stats->current_usage.tokens_used_in_current_window;
}

struct Streamed {
  std::string text, refusal, web_search;
  glmproxy::Usage usage;
  int usage_events = 0;
};

}  // namespace

TEST_CASE("client: usage details, refusal and web_search through complete() and stream()",
          "[client][reply_fields]") {
  auto server = start_mock();
  Fault tokens;  // every answer reports 100 prompt + 40 completion tokens
  tokens.times = 0;
  tokens.prompt_tokens = 100;
  tokens.completion_tokens = 40;
  server->add_fault(tokens);
  KeyFile file(keys_file({key_json(kTenant, 1'000'000)}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  auto client = make_client(config);
  std::int64_t charged = 0;

  SECTION("OpenAI") {
    auto r = client.complete(
        asking(Protocol::OpenAI, "[mock:usage_details] [mock:web_search] weather?"));
    INFO((r ? "" : r.error().describe()));
    REQUIRE(r);
    CHECK(r->usage.prompt_tokens == 100);
    CHECK(r->usage.cached_prompt_tokens == 50);
    CHECK(r->usage.reasoning_tokens == 20);
    CHECK(r->usage.total_tokens == 140);
    CHECK(r->request_id.rfind("req-mock-", 0) == 0);
    CHECK(r->created > 0);
    CHECK_THAT(r->web_search_json, Catch::StartsWith(R"([{"icon":)") &&
                                       Catch::Contains(R"("title":"Mock search result")"));
    CHECK(r->refusal.empty());
    charged += r->usage.total_tokens;
    CHECK(window_tokens(client) == charged);

    Streamed s;
    auto streamed = client.stream(
        asking(Protocol::OpenAI, "[mock:refusal] [mock:usage_details] [mock:web_search] no"),
        [&s](const StreamEvent& e) {
          if (e.type == StreamEvent::Type::Text) s.text += e.text;
          if (e.type == StreamEvent::Type::Refusal) s.refusal += e.text;
          if (e.type == StreamEvent::Type::WebSearch) s.web_search += e.text;
          if (e.type == StreamEvent::Type::Usage) {
            s.usage = e.usage;
            ++s.usage_events;
          }
          return true;
        });
    INFO((streamed ? "" : streamed.error().describe()));
    REQUIRE(streamed);
    CHECK(s.refusal == kRefusal);
    CHECK(s.text.empty());
    CHECK(streamed->refusal == kRefusal);
    CHECK(streamed->content.empty());
    CHECK(streamed->finish_reason == "stop");
    CHECK(s.web_search == r->web_search_json);
    CHECK(streamed->web_search_json == r->web_search_json);
    CHECK(streamed->request_id.rfind("req-mock-", 0) == 0);
    REQUIRE(s.usage_events == 1);
    CHECK(s.usage.cached_prompt_tokens == 50);
    CHECK(s.usage.reasoning_tokens == 20);
    CHECK(streamed->usage.cached_prompt_tokens == 50);
    charged += streamed->usage.total_tokens;
    CHECK(window_tokens(client) == charged);

    // Metrics count the parts of both calls.
    const auto m = client.metrics();
    CHECK(m.requests.cached_prompt_tokens == 100);
    CHECK(m.requests.reasoning_tokens == 40);
    CHECK(m.requests.cache_creation_tokens == 0);
    CHECK_THAT(client.prometheus_text(),
               Catch::Contains("glm_proxy_cached_prompt_tokens_total 100\n") &&
                   Catch::Contains("glm_proxy_reasoning_tokens_total 40\n"));
  }

  SECTION("Anthropic") {
    // The mock splits its 100 prompt tokens: 25 written to the cache, 50 read from it, 25 left.
    auto r = client.complete(asking(Protocol::Anthropic, "[mock:usage_details] hello"));
    INFO((r ? "" : r.error().describe()));
    REQUIRE(r);
    CHECK(r->usage.cache_read_input_tokens == 50);
    CHECK(r->usage.cache_creation_input_tokens == 25);
    CHECK(r->usage.cached_prompt_tokens == 50);
    CHECK(r->usage.prompt_tokens == 100);  // input_tokens + both cache counts
    CHECK(r->usage.total_tokens == 140);
    charged += r->usage.total_tokens;
    CHECK(window_tokens(client) == charged);

    Streamed s;
    auto streamed =
        client.stream(asking(Protocol::Anthropic, "[mock:usage_details] [mock:refusal]"),
                      [&s](const StreamEvent& e) {
                        if (e.type == StreamEvent::Type::Text) s.text += e.text;
                        if (e.type == StreamEvent::Type::Usage) {
                          s.usage = e.usage;
                          ++s.usage_events;
                        }
                        return true;
                      });
    INFO((streamed ? "" : streamed.error().describe()));
    REQUIRE(streamed);
    CHECK(streamed->finish_reason == "refusal");  // Anthropic's refusal has no text of its own
    CHECK(streamed->content.empty());
    REQUIRE(s.usage_events == 1);
    CHECK(s.usage.prompt_tokens == 100);
    CHECK(s.usage.cache_read_input_tokens == 50);
    CHECK(s.usage.cache_creation_input_tokens == 25);
    CHECK(streamed->usage.total_tokens == 140);
    charged += streamed->usage.total_tokens;
    CHECK(window_tokens(client) == charged);

    const auto m = client.metrics();
    CHECK(m.requests.prompt_tokens == 200);
    CHECK(m.requests.cached_prompt_tokens == 100);
    CHECK(m.requests.cache_creation_tokens == 50);
    CHECK_THAT(client.prometheus_text(),
               Catch::Contains("glm_proxy_cache_creation_tokens_total 50\n"));
  }
}
