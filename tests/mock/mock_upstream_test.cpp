#include "glmproxy/mock/mock_upstream.hpp"

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/raw_http.hpp"
#include "support/sse_scan.hpp"
#include "support/tls_files.hpp"

using glmproxy::mock::Fault;
using glmproxy::mock::MockOptions;
using glmproxy::mock::MockUpstream;
using glmproxy::test::RawClient;
using glmproxy::test::RawResponse;
using test_support::parse;
using test_support::sse_data;
using test_support::sse_event_names;
using namespace std::chrono_literals;

namespace {

const std::string kChatBody =
    R"({"model":"glm-4.7","messages":[{"role":"user","content":"Say hello, please."}]})";
const std::string kStreamBody =
    R"({"model":"glm-4.7","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"Say hello."}]})";
const std::string kAnthropicBody = R"({"model":"glm-4.7","max_tokens":100,"stream":false,)"
                                   R"("messages":[{"role":"user","content":"Say hello."}]})";

std::unique_ptr<MockUpstream> start(MockOptions options = {}) {
  std::string error;
  auto server = MockUpstream::start(options, &error);
  INFO(error);
  REQUIRE(server != nullptr);
  return server;
}

}  // namespace

TEST_CASE("chat completion JSON on any base path", "[mock]") {
  MockOptions options;
  options.reply_text = "Hi \"there\"\n\xE4\xBD\xA0\xE5\xA5\xBD";
  auto server = start(options);
  RawClient client;
  for (const char* base : {"/v1", "/api/paas/v4", "/api/coding/paas/v4"}) {
    RawResponse r = client.post(server->base_url() + base + "/chat/completions", kChatBody);
    REQUIRE(r.curl_code == CURLE_OK);
    CHECK(r.status == 200);
    CHECK(r.has_header("Content-Type: application/json"));
    simdjson::dom::parser parser;
    auto doc = parse(parser, r.body);
    CHECK(std::string_view(doc["object"]) == "chat.completion");
    CHECK(std::string_view(doc["model"]) == "glm-4.7");
    CHECK(std::string_view(doc["choices"].at(0)["message"]["content"]) == options.reply_text);
    CHECK(std::string_view(doc["choices"].at(0)["finish_reason"]) == "stop");
    int64_t prompt = doc["usage"]["prompt_tokens"];
    int64_t completion = doc["usage"]["completion_tokens"];
    int64_t total = doc["usage"]["total_tokens"];
    CHECK(prompt > 0);
    CHECK(completion > 0);
    CHECK(total == prompt + completion);
  }
  CHECK(server->stats().chat_requests == 3);
}

TEST_CASE("chat completion stream: deltas, usage chunk and [DONE]", "[mock]") {
  MockOptions options;
  options.stream_chunks = 5;
  options.reasoning_text = "Thinking it over.";
  auto server = start(options);
  RawClient client;
  RawResponse r = client.post(server->base_url() + "/v1/chat/completions", kStreamBody);
  REQUIRE(r.curl_code == CURLE_OK);
  CHECK(r.status == 200);
  CHECK(r.has_header("Content-Type: text/event-stream"));
  auto data = sse_data(r.body);
  REQUIRE(data.size() >= 4);
  CHECK(data.back() == "[DONE]");
  std::string content, reasoning;
  bool saw_usage = false, saw_finish = false;
  simdjson::dom::parser parser;
  for (std::size_t i = 0; i + 1 < data.size(); ++i) {
    auto chunk = parse(parser, data[i]);
    CHECK(std::string_view(chunk["object"]) == "chat.completion.chunk");
    auto choices = chunk["choices"].get_array().value();
    if (choices.size() == 0) {
      saw_usage = true;
      CHECK(int64_t(chunk["usage"]["total_tokens"]) > 0);
      continue;
    }
    auto delta = choices.at(0)["delta"];
    std::string_view text;
    if (!delta["content"].get(text)) content += text;
    if (!delta["reasoning_content"].get(text)) reasoning += text;
    if (choices.at(0)["finish_reason"].is_string()) saw_finish = true;
  }
  CHECK(content == options.reply_text);
  CHECK(reasoning == options.reasoning_text);
  CHECK(saw_usage);
  CHECK(saw_finish);

  // Without stream_options.include_usage there is no usage chunk; thinking can be disabled.
  r = client.post(
      server->base_url() + "/v1/chat/completions",
      R"({"model":"glm-4.7","stream":true,"thinking":{"type":"disabled"},"messages":[]})");
  CHECK(r.body.find("\"usage\"") == std::string::npos);
  CHECK(r.body.find("reasoning_content") == std::string::npos);
  CHECK(server->stats().stream_requests == 2);
}

TEST_CASE("anthropic messages JSON and event sequence", "[mock]") {
  auto server = start();
  RawClient client;
  RawResponse r = client.post(server->base_url() + "/api/anthropic/v1/messages", kAnthropicBody,
                              {"x-api-key: test", "anthropic-version: 2023-06-01"});
  REQUIRE(r.status == 200);
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.body);
  CHECK(std::string_view(doc["type"]) == "message");
  CHECK(std::string_view(doc["content"].at(0)["type"]) == "text");
  CHECK(std::string_view(doc["stop_reason"]) == "end_turn");
  CHECK(int64_t(doc["usage"]["input_tokens"]) > 0);
  CHECK(int64_t(doc["usage"]["output_tokens"]) > 0);

  std::string stream_body = kAnthropicBody;
  stream_body.replace(stream_body.find("\"stream\":false"), 14, "\"stream\":true");
  r = client.post(server->base_url() + "/api/anthropic/v1/messages", stream_body);
  REQUIRE(r.status == 200);
  auto names = sse_event_names(r.body);
  REQUIRE(names.size() >= 6);
  CHECK(names.front() == "message_start");
  CHECK(names[1] == "content_block_start");
  CHECK(std::find(names.begin(), names.end(), "ping") != names.end());
  CHECK(std::find(names.begin(), names.end(), "content_block_delta") != names.end());
  CHECK(names[names.size() - 3] == "content_block_stop");
  CHECK(names[names.size() - 2] == "message_delta");
  CHECK(names.back() == "message_stop");
  CHECK(server->stats().messages_requests == 2);
}

TEST_CASE("models and embeddings", "[mock]") {
  auto server = start();
  RawClient client;
  RawResponse r = client.get(server->base_url() + "/api/paas/v4/models");
  REQUIRE(r.status == 200);
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.body);
  CHECK(std::string_view(doc["data"].at(0)["id"]) == "glm-4.7");

  r = client.post(server->base_url() + "/v1/embeddings",
                  R"({"model":"embedding-3","input":["a","b","a"]})");
  REQUIRE(r.status == 200);
  doc = parse(parser, r.body);
  auto data = doc["data"].get_array().value();
  REQUIRE(data.size() == 3);
  // Same input, same vector; the order follows the input.
  CHECK(simdjson::to_string(data.at(0)["embedding"]) ==
        simdjson::to_string(data.at(2)["embedding"]));
  CHECK(simdjson::to_string(data.at(0)["embedding"]) !=
        simdjson::to_string(data.at(1)["embedding"]));
  CHECK(int64_t(data.at(2)["index"]) == 2);
}

TEST_CASE("keep-alive: one connection serves many requests, counters see each", "[mock]") {
  auto server = start();
  RawClient client;
  for (int i = 0; i < 50; ++i) {
    RawResponse r = client.post(server->base_url() + "/v1/chat/completions", kChatBody);
    REQUIRE(r.status == 200);
  }
  auto stats = server->stats();
  CHECK(stats.connections_accepted == 1);
  CHECK(stats.requests == 50);

  for (int i = 0; i < 10; ++i) {
    RawResponse r = client.perform("POST", server->base_url() + "/v1/chat/completions", &kChatBody,
                                   {}, /*fresh_connection=*/true);
    REQUIRE(r.status == 200);
    CHECK(r.connects == 1);
  }
  CHECK(server->stats().connections_accepted == 11);

  // Connection: close from the client is honoured.
  RawResponse r =
      client.post(server->base_url() + "/v1/chat/completions", kChatBody, {"Connection: close"});
  CHECK(r.has_header("Connection: close"));
}

TEST_CASE("concurrent clients", "[mock]") {
  MockOptions options;
  options.record_limit = 0;
  auto server = start(options);
  constexpr int kThreads = 8, kEach = 100;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      RawClient client;
      for (int i = 0; i < kEach; ++i) {
        if (client.post(server->base_url() + "/v1/chat/completions", kChatBody).status == 200) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == kThreads * kEach);
  auto stats = server->stats();
  CHECK(stats.requests == kThreads * kEach);
  CHECK(stats.connections_accepted == kThreads);
}

TEST_CASE("fault: status, headers and Z.AI body for a number of requests", "[mock][fault]") {
  auto server = start();
  Fault f;
  f.status = 429;
  f.headers = {{"Retry-After", "1"}, {"retry-after-ms", "1000"}};
  f.body = R"({"error":{"code":"1302","message":"High concurrency usage of this API"}})";
  f.times = 2;
  server->add_fault(f);
  RawClient client;
  for (int i = 0; i < 2; ++i) {
    RawResponse r = client.post(server->base_url() + "/v1/chat/completions", kChatBody);
    CHECK(r.status == 429);
    CHECK(r.has_header("Retry-After: 1"));
    CHECK(r.has_header("retry-after-ms: 1000"));
    CHECK(r.body == *f.body);
  }
  CHECK(client.post(server->base_url() + "/v1/chat/completions", kChatBody).status == 200);
  CHECK(server->stats().faults_applied == 2);

  // Default error bodies follow the API's shape; path_contains picks which requests.
  for (int status : {500, 503, 529}) {
    Fault e;
    e.status = status;
    e.path_contains = "/messages";
    server->add_fault(e);
    CHECK(client.post(server->base_url() + "/v1/chat/completions", kChatBody).status == 200);
    RawResponse r = client.post(server->base_url() + "/v1/messages", kAnthropicBody);
    CHECK(r.status == status);
    simdjson::dom::parser parser;
    auto doc = parse(parser, r.body);
    CHECK(std::string_view(doc["type"]) == "error");
    if (status == 529) CHECK(std::string_view(doc["error"]["type"]) == "overloaded_error");
  }
}

TEST_CASE("fault: delay before headers does not block other connections", "[mock][fault]") {
  auto server = start();
  Fault slow;
  slow.delay_before_headers = 300ms;
  slow.path_contains = "/slow";
  server->add_fault(slow);
  // Catch2 assertions are not thread-safe: the thread only records, the test checks.
  RawResponse slow_response;
  std::thread t([&] {
    RawClient c;
    slow_response = c.post(server->base_url() + "/slow/chat/completions", kChatBody);
  });
  std::this_thread::sleep_for(50ms);
  RawClient fast;
  RawResponse r = fast.post(server->base_url() + "/v1/chat/completions", kChatBody);
  CHECK(r.status == 200);
  CHECK(r.elapsed < 250ms);
  t.join();
  CHECK(slow_response.status == 200);
  CHECK(slow_response.elapsed >= 300ms);
}

TEST_CASE("fault: SSE in byte pieces with delays arrives in pieces, same bytes", "[mock][fault]") {
  auto server = start();
  RawClient client;
  RawResponse whole = client.post(server->base_url() + "/v1/messages",
                                  R"({"model":"m","stream":true,"messages":[]})");
  Fault f;
  f.split_pieces = {1, 7, 3};
  f.delay_between_chunks = 2ms;
  server->add_fault(f);
  RawResponse pieces = client.post(server->base_url() + "/v1/messages",
                                   R"({"model":"m","stream":true,"messages":[]})");
  REQUIRE(pieces.curl_code == CURLE_OK);
  // Same events (ids differ by the response counter).
  CHECK(sse_event_names(pieces.body) == sse_event_names(whole.body));
  CHECK(pieces.body.size() == whole.body.size());
  CHECK(pieces.body_callbacks > 50);
  CHECK(pieces.elapsed >= 50ms);

  Fault slow;
  slow.delay_between_chunks = 20ms;
  server->add_fault(slow);
  RawResponse slow_r = client.post(server->base_url() + "/v1/chat/completions", kStreamBody);
  auto events = sse_data(slow_r.body).size();
  CHECK(slow_r.elapsed >= std::chrono::milliseconds(20 * (events - 1)));
}

TEST_CASE("fault: close mid-body, malformed JSON, error event in a 200 stream", "[mock][fault]") {
  auto server = start();
  RawClient client;

  Fault cut;
  cut.close_after_body_bytes = 20;
  server->add_fault(cut);
  RawResponse r = client.post(server->base_url() + "/v1/chat/completions", kChatBody);
  CHECK((r.curl_code == CURLE_PARTIAL_FILE || r.curl_code == CURLE_RECV_ERROR));
  CHECK(r.body.size() == 20);

  server->add_fault(cut);
  r = client.post(server->base_url() + "/v1/chat/completions", kStreamBody);
  CHECK(r.curl_code != CURLE_OK);

  Fault bad;
  bad.malformed_json = true;
  server->add_fault(bad);
  r = client.post(server->base_url() + "/v1/chat/completions", kChatBody);
  CHECK(r.status == 200);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  CHECK(parser.parse(r.body).get(doc) != simdjson::SUCCESS);

  Fault err;
  err.stream_error_after_events = 2;
  server->add_fault(err);
  r = client.post(server->base_url() + "/v1/chat/completions", kStreamBody);
  CHECK(r.status == 200);
  auto data = sse_data(r.body);
  REQUIRE(data.size() == 3);
  CHECK(data.back().find("\"error\"") != std::string::npos);
  CHECK(r.body.find("[DONE]") == std::string::npos);

  server->add_fault(err);
  r = client.post(server->base_url() + "/v1/messages",
                  R"({"model":"m","stream":true,"messages":[]})");
  auto names = sse_event_names(r.body);
  REQUIRE(names.size() == 3);
  CHECK(names.back() == "error");
  CHECK(r.body.find("overloaded_error") != std::string::npos);
}

TEST_CASE("fault: server drops a keep-alive connection after the response", "[mock][fault]") {
  auto server = start();
  Fault f;
  f.close_after_response = true;
  server->add_fault(f);
  RawClient client;
  CHECK(client.post(server->base_url() + "/v1/chat/completions", kChatBody).status == 200);
  std::this_thread::sleep_for(50ms);
  CHECK(server->stats().connections_open == 0);
  CHECK(client.post(server->base_url() + "/v1/chat/completions", kChatBody).status == 200);
  CHECK(server->stats().connections_accepted == 2);

  server->drop_connections();
  std::this_thread::sleep_for(50ms);
  CHECK(server->stats().connections_open == 0);
}

TEST_CASE("usage override and recorded requests", "[mock]") {
  auto server = start();
  Fault f;
  f.prompt_tokens = 300;
  f.completion_tokens = 100;
  server->add_fault(f);
  RawClient client;
  RawResponse r = client.post(server->base_url() + "/v1/chat/completions", kChatBody,
                              {"Authorization: Bearer sk-test", "X-Request-ID: abc"});
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.body);
  CHECK(int64_t(doc["usage"]["total_tokens"]) == 400);
  auto recorded = server->recorded();
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0].method == "POST");
  CHECK(recorded[0].path == "/v1/chat/completions");
  CHECK(recorded[0].header("authorization") == "Bearer sk-test");
  CHECK(recorded[0].header("x-request-id") == "abc");
  CHECK(recorded[0].body == kChatBody);
  CHECK(recorded[0].connection_id == 1);
}

TEST_CASE("control endpoints script the mock from another process", "[mock]") {
  auto server = start();
  RawClient client;
  RawResponse r = client.post(
      server->base_url() + "/__mock/faults",
      R"([{"status":503,"times":1,"headers":{"Retry-After":"0"}},{"split_pieces":[5],"delay_between_chunks":1}])");
  REQUIRE(r.status == 200);
  CHECK(client.post(server->base_url() + "/v1/chat/completions", kChatBody).status == 503);
  r = client.post(server->base_url() + "/v1/chat/completions", kChatBody);
  CHECK(r.status == 200);
  CHECK(r.body_callbacks > 5);

  r = client.post(server->base_url() + "/__mock/faults", R"([{"stauts":500}])");
  CHECK(r.status == 400);
  CHECK(r.body.find("stauts") != std::string::npos);

  r = client.get(server->base_url() + "/__mock/stats");
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.body);
  CHECK(uint64_t(doc["requests"]) == 2);
  CHECK(uint64_t(doc["faults_applied"]) == 2);
  CHECK(client.post(server->base_url() + "/__mock/reset", "").status == 200);
  CHECK(server->stats().requests == 0);
}

TEST_CASE("bad requests get 400/404, large bodies with Expect: 100-continue", "[mock]") {
  auto server = start();
  RawClient client;
  RawResponse r = client.post(server->base_url() + "/v1/chat/completions", "{not json");
  CHECK(r.status == 400);
  r = client.post(server->base_url() + "/v1/chat/completions", R"({"messages":[]})");
  CHECK(r.status == 400);
  CHECK(r.body.find("model") != std::string::npos);
  r = client.get(server->base_url() + "/nothing-here");
  CHECK(r.status == 404);

  // curl sends Expect: 100-continue for bodies over 1 MiB; the mock must answer it at once.
  std::string big = R"({"model":"glm-4.7","messages":[{"role":"user","content":")" +
                    std::string(2 << 20, 'x') + R"("}]})";
  r = client.post(server->base_url() + "/v1/chat/completions", big);
  CHECK(r.status == 200);
  CHECK(r.elapsed < 900ms);
  CHECK(server->recorded().back().header("expect") == "100-continue");

  // Garbage that is not HTTP gets 400 and a closed connection, and the server lives on.
  r = client.perform("BREW coffee", server->base_url() + "/v1/chat/completions", nullptr, {});
  CHECK(client.post(server->base_url() + "/v1/chat/completions", kChatBody).status == 200);
}

TEST_CASE("TLS mode: https, keep-alive, large bodies, paced pieces, stats", "[mock][tls]") {
  const auto& cert = test_support::test_certificate();
  MockOptions options;
  options.tls_cert_file = cert.cert_file;
  options.tls_key_file = cert.key_file;
  options.reply_text = std::string(50'000, 'y');  // answers span several TLS records
  auto server = start(options);
  REQUIRE(server->base_url().starts_with("https://127.0.0.1:"));
  RawClient client;
  client.ca_file = cert.cert_file;
  // A request body of many TLS records (the mock reads until OpenSSL wants more).
  const std::string big = R"({"model":"glm-4.7","messages":[{"role":"user","content":")" +
                          std::string(200'000, 'a') + R"("}]})";
  RawResponse r = client.post(server->base_url() + "/v1/chat/completions", big);
  INFO(curl_easy_strerror(r.curl_code));
  REQUIRE(r.curl_code == CURLE_OK);
  CHECK(r.status == 200);
  CHECK(r.body.find(options.reply_text) != std::string::npos);
  Fault f;
  f.split_pieces = {7};
  f.delay_between_chunks = 1ms;
  f.close_after_body_bytes = 5000;
  server->add_fault(f);
  r = client.post(server->base_url() + "/v1/chat/completions", kChatBody);
  CHECK(r.curl_code == CURLE_PARTIAL_FILE);  // cut as scripted, over TLS as over plain HTTP
  r = client.post(server->base_url() + "/v1/chat/completions", kStreamBody);
  CHECK(r.status == 200);
  CHECK(sse_data(r.body).back() == "[DONE]");
  r = client.get(server->base_url() + "/__mock/stats");
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.body);
  CHECK(uint64_t(doc["tls_handshakes"]) == 2);  // the cut connection was replaced
  CHECK(uint64_t(doc["tls_resumed"]) == 1);     // by a resumed session
  CHECK(server->stats().connections_accepted == 2);
  CHECK(server->stats().requests == 3);

  RawClient untrusting;  // the system CA store does not know the test certificate
  r = untrusting.get(server->base_url() + "/__mock/stats");
  CHECK(r.curl_code == CURLE_PEER_FAILED_VERIFICATION);
}

TEST_CASE("TLS mode: unusable certificate settings fail start() with the reason", "[mock][tls]") {
  const auto& cert = test_support::test_certificate();
  std::string error;
  MockOptions options;
  options.tls_cert_file = cert.cert_file;  // no key
  CHECK(MockUpstream::start(options, &error) == nullptr);
  CHECK(error.find("tls_key_file") != std::string::npos);
  options.tls_key_file = "/nonexistent/key.pem";
  CHECK(MockUpstream::start(options, &error) == nullptr);
  CHECK(error.find("/nonexistent/key.pem") != std::string::npos);
  options.tls_cert_file = "/nonexistent/cert.pem";
  options.tls_key_file = cert.key_file;
  CHECK(MockUpstream::start(options, &error) == nullptr);
  CHECK(error.find("/nonexistent/cert.pem") != std::string::npos);
}
