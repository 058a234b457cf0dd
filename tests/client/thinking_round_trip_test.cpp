// Anthropic extended thinking through ProxyClient against the mock upstream (issue 16): a
// reply's signed thinking blocks (and redacted_thinking blocks) come back in
// ChatResponse::thinking_blocks and, sent back with Message::assistant(reply), are accepted by
// the mock, which checks the signature as Anthropic does and answers 400 to an altered one
// (docs/mock-upstream.md). stream() gives the same blocks as complete(), and a cached stream
// replays them.

#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::Message;
using glmproxy::Protocol;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::ThinkingBlock;

using test_support::config_for;
using test_support::make_client;
using test_support::start_mock;

namespace {

ChatRequest thinking_request(std::string text) {
  ChatRequest r;
  r.protocol = Protocol::Anthropic;
  r.messages = {{"user", std::move(text)}};
  r.max_tokens = 2048;
  r.thinking_budget_tokens = 1024;  // turns thinking on (ChatRequest::thinking_budget_tokens)
  return r;
}

// The mock adds a redacted_thinking block after the thinking block (docs/mock-upstream.md).
ChatRequest with_redacted_block() {
  return thinking_request("Think hard. [mock:redacted_thinking]");
}

// The request that follows `first` once `reply` came: the reply's turn sent back, then "go on".
ChatRequest follow_up(const ChatRequest& first, const ChatResponse& reply) {
  ChatRequest next = first;
  next.messages.push_back(Message::assistant(reply));
  next.messages.push_back({"user", "go on"});
  return next;
}

bool same_blocks(const std::vector<ThinkingBlock>& a, const std::vector<ThinkingBlock>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].type != b[i].type || a[i].thinking != b[i].thinking ||
        a[i].signature != b[i].signature || a[i].data != b[i].data) {
      return false;
    }
  }
  return true;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The body of the newest request the mock recorded.
std::string last_body(const glmproxy::mock::MockUpstream& server) {
  auto recorded = server.recorded();
  REQUIRE_FALSE(recorded.empty());
  return recorded.back().body;
}

struct Seen {
  StreamEvent::Type type;
  std::string text;
  int index;
  bool operator==(const Seen&) const = default;
};

// stream() with every event kept (copied: the event is reused).
Result<ChatResponse> stream_all(ProxyClient& client, const ChatRequest& request,
                                std::vector<Seen>& seen) {
  return client.stream(request, [&](const StreamEvent& e) {
    seen.push_back({e.type, e.text, e.tool_index});
    return true;
  });
}

std::string joined(const std::vector<Seen>& seen, StreamEvent::Type type) {
  std::string out;
  for (const Seen& s : seen) {
    if (s.type == type) out += s.text;
  }
  return out;
}

std::vector<Seen> of_type(const std::vector<Seen>& seen, StreamEvent::Type type) {
  std::vector<Seen> out;
  for (const Seen& s : seen) {
    if (s.type == type) out.push_back(s);
  }
  return out;
}

}  // namespace

TEST_CASE("thinking round trip: a signed block comes back and is accepted when sent back",
          "[client][thinking]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  const ChatRequest first = thinking_request("What is 2 + 2?");
  auto reply = client.complete(first);
  INFO((reply ? std::string() : reply.error().describe()));
  REQUIRE(reply);
  REQUIRE(reply->thinking_blocks.size() == 1);
  const ThinkingBlock& block = reply->thinking_blocks[0];
  CHECK(block.type == ThinkingBlock::Type::Thinking);
  CHECK_FALSE(block.thinking.empty());
  CHECK(block.thinking == reply->reasoning_content);
  CHECK(block.signature.rfind("mocksig-", 0) == 0);

  auto second = client.complete(follow_up(first, *reply));
  INFO((second ? std::string() : second.error().describe()));
  REQUIRE(second);
  CHECK(server->stats().messages_requests == 2);
  // The mock answers 400 to a wrong signature, so success means it checked this one; the body
  // shows the block went back as it came.
  const std::string body = last_body(*server);
  CHECK(contains(body, R"("signature":")" + block.signature + '"'));
  CHECK(contains(body, R"({"type":"thinking","thinking":")"));
}

TEST_CASE("thinking round trip: an altered signature is refused as InvalidArgument, HTTP 400",
          "[client][thinking]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  const ChatRequest first = thinking_request("What is 2 + 2?");
  auto reply = client.complete(first);
  REQUIRE(reply);
  REQUIRE_FALSE(reply->thinking_blocks.empty());
  std::string& signature = reply->thinking_blocks[0].signature;
  REQUIRE(signature.size() > 8);
  signature.back() = signature.back() == '0' ? '1' : '0';  // one character changed

  auto refused = client.complete(follow_up(first, *reply));
  REQUIRE_FALSE(refused);
  INFO(refused.error().describe());
  CHECK(refused.error().code == ErrorCode::InvalidArgument);
  CHECK(refused.error().http_status == 400);
  CHECK_FALSE(refused.error().retryable());
  CHECK(contains(refused.error().message, "signature"));
  CHECK(server->stats().messages_requests == 2);  // not retried
}

TEST_CASE("thinking round trip: a redacted block comes back and is accepted when sent back",
          "[client][thinking]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  const ChatRequest first = with_redacted_block();
  auto reply = client.complete(first);
  REQUIRE(reply);
  REQUIRE(reply->thinking_blocks.size() == 2);
  CHECK(reply->thinking_blocks[0].type == ThinkingBlock::Type::Thinking);
  const ThinkingBlock& redacted = reply->thinking_blocks[1];
  CHECK(redacted.type == ThinkingBlock::Type::Redacted);
  CHECK_FALSE(redacted.data.empty());
  CHECK(redacted.signature.empty());

  auto second = client.complete(follow_up(first, *reply));
  INFO((second ? std::string() : second.error().describe()));
  REQUIRE(second);
  CHECK(contains(last_body(*server),
                 R"({"type":"redacted_thinking","data":")" + redacted.data + R"("})"));

  // The mock checks redacted data too: altered, it is refused.
  ChatResponse altered = *reply;
  altered.thinking_blocks[1].data.insert(0, "x");
  auto refused = client.complete(follow_up(first, altered));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::InvalidArgument);
  CHECK(contains(refused.error().message, "data"));
}

TEST_CASE("thinking round trip: stream() gives Reasoning, Signature and RedactedThinking events",
          "[client][thinking][stream]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  const ChatRequest request = with_redacted_block();
  auto whole = client.complete(request);
  REQUIRE(whole);
  REQUIRE(whole->thinking_blocks.size() == 2);

  std::vector<Seen> seen;
  auto streamed = stream_all(client, request, seen);
  INFO((streamed ? std::string() : streamed.error().describe()));
  REQUIRE(streamed);
  CHECK_FALSE(streamed->from_cache);
  CHECK(server->stats().stream_requests == 1);
  CHECK(joined(seen, StreamEvent::Type::Reasoning) == whole->thinking_blocks[0].thinking);
  const auto signatures = of_type(seen, StreamEvent::Type::Signature);
  REQUIRE_FALSE(signatures.empty());
  CHECK(signatures.front().index == 0);  // content block 0, the thinking block
  CHECK(joined(seen, StreamEvent::Type::Signature) == whole->thinking_blocks[0].signature);
  const auto redacted = of_type(seen, StreamEvent::Type::RedactedThinking);
  REQUIRE(redacted.size() == 1);
  CHECK(redacted[0].index == 1);
  CHECK(redacted[0].text == whole->thinking_blocks[1].data);
  CHECK(same_blocks(streamed->thinking_blocks, whole->thinking_blocks));
  CHECK(streamed->reasoning_content == whole->reasoning_content);

  // The streamed reply's turn is as good to send back as the complete() one.
  auto next = client.complete(follow_up(request, *streamed));
  INFO((next ? std::string() : next.error().describe()));
  CHECK(next);
}

TEST_CASE("cached stream replay keeps Signature and RedactedThinking events and the blocks",
          "[client][thinking][stream][cache]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  auto client = make_client(config);
  const ChatRequest request = with_redacted_block();

  std::vector<Seen> first, second;
  auto r1 = stream_all(client, request, first);
  REQUIRE(r1);
  CHECK_FALSE(r1->from_cache);
  auto r2 = stream_all(client, request, second);
  REQUIRE(r2);
  CHECK(r2->from_cache);
  CHECK(server->stats().messages_requests == 1);  // the second was not sent

  REQUIRE(r1->thinking_blocks.size() == 2);
  CHECK(same_blocks(r2->thinking_blocks, r1->thinking_blocks));
  CHECK(of_type(first, StreamEvent::Type::Signature).size() >= 1);
  CHECK(of_type(first, StreamEvent::Type::RedactedThinking).size() == 1);
  CHECK(of_type(second, StreamEvent::Type::Signature) ==
        of_type(first, StreamEvent::Type::Signature));
  CHECK(of_type(second, StreamEvent::Type::RedactedThinking) ==
        of_type(first, StreamEvent::Type::RedactedThinking));
  CHECK(second == first);

  // The replayed reply's turn still carries a signature the upstream accepts.
  auto next = client.complete(follow_up(request, *r2));
  INFO((next ? std::string() : next.error().describe()));
  CHECK(next);
  CHECK(server->stats().messages_requests == 2);
}
