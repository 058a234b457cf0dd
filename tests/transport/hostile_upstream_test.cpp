// An upstream that cannot be trusted: it echoes the key back, sends bombs, lies about usage,
// keeps finished streams open and invents error shapes. One case (or more) per item of the
// hardening issue that concerns what comes back from the upstream; the library must bound,
// validate and scrub all of it.

#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/docs_support.hpp"
#include "support/mock_client.hpp"
#include "transport/transport.hpp"

using glmproxy::ChatRequest;
using glmproxy::Config;
using glmproxy::Error;
using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::mock::Fault;
using glmproxy::mock::MockOptions;
using glmproxy::mock::MockUpstream;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test_support::config_for;
using test_support::make_client;
using test_support::start_mock;

namespace {

// Secrets made of letters and dashes only: the pattern scrub (long runs mixing letters and
// digits) does not recognise them, so only scrubbing the known secrets can hide them.
// Letters no message is made of, so that any 8 of them in a row are a leak.
const std::string kKey = "sk-qzxvkwplmrtnbhgfdsjycqzxv";
const std::string kTenant = "tk-wqpzrkxmvnbtlhjgfdqwpz";
const std::string kAdminToken = "at-jxqvzkpwmrbnthlgfdsxqj";
const std::string kUrlPassword = "pw-vkqzxjwpmnrbtlhgfzkq";

using test_support::hello;  // "Say hello." over a protocol

Config hostile_config(const MockUpstream& server) {
  Config c = config_for(server);
  c.upstream.api_key = kKey;
  c.admin.token = kAdminToken;
  c.retry.max_attempts = 2;
  c.cache.coalesce = false;
  return c;
}

// Every 8-byte window of `secret`: none of them may appear in public text.
void check_clean(const std::string& text, const std::string& what) {
  INFO(what << ": " << text);
  for (const std::string* secret : {&kKey, &kTenant, &kAdminToken, &kUrlPassword}) {
    for (std::size_t i = 0; i + 8 <= secret->size(); ++i) {
      REQUIRE(text.find(secret->substr(i, 8)) == std::string::npos);
    }
  }
}

void check_error_clean(const Error& e, const std::string& what) {
  check_clean(e.message, what + " message");
  check_clean(e.upstream_code, what + " upstream_code");
  check_clean(e.describe(), what + " describe()");
}

std::string openai_stream(const std::vector<std::string>& deltas, bool done = true) {
  std::string body;
  for (const std::string& d : deltas) {
    body += R"(data: {"id":"c1","model":"glm-4.7","choices":[{"index":0,"delta":{"content":")";
    body += d;
    body += "\"},\"finish_reason\":null}]}\n\n";
  }
  body += R"(data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})";
  body += "\n\n";
  if (done) body += "data: [DONE]\n\n";
  return body;
}

std::string anthropic_stream(const std::string& text) {
  return "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\","
         "\"model\":\"glm-4.7\",\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n"
         "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
         "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
         "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
         "\"delta\":{\"type\":\"text_delta\",\"text\":\"" +
         text +
         "\"}}\n\n"
         "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
         "\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n"
         "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
}

std::string gzip(const std::string& data) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

struct LogLines {
  std::mutex mu;
  std::vector<std::string> lines;
  glmproxy::LogCallback callback() {
    return [this](glmproxy::LogLevel, std::string_view m) {
      std::lock_guard lock(mu);
      lines.emplace_back(m);
    };
  }
};

}  // namespace

// --- 1. secrets --------------------------------------------------------------------------

TEST_CASE("hostile: an upstream echoing the key never gets it into an error, log or metric",
          "[hostile][secrets]") {
  auto server = start_mock();
  Config config = hostile_config(*server);
  // The URL password is sent as Basic auth and is a secret too.
  const std::string base = server->base_url();
  const std::string with_password =
      "http://user:" + kUrlPassword + "@" + base.substr(std::string("http://").size());
  config.upstream.openai_base_url = with_password + "/api/paas/v4";
  config.profiling.enabled = true;
  LogLines log;
  config.logger = log.callback();
  config.log_level = glmproxy::LogLevel::Trace;
  ProxyClient client = make_client(config);
  std::vector<Error> errors;

  auto fault = [&](Fault f) {
    f.echo_key = true;
    server->add_fault(std::move(f));
  };
  {
    Fault f;  // JSON 401 quoting the key, in the message and as the code
    f.status = 401;
    f.body = R"({"error":{"code":"{{key}}","message":"Authentication failed for key {{key}}"}})";
    fault(f);
    auto r = client.complete(hello());
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::Unauthorized);
    CHECK(r.error().message.find("Authentication failed for key") != std::string::npos);
    errors.push_back(r.error());
  }
  {
    Fault f;  // plain text 500, on every attempt
    f.status = 500;
    f.times = 2;
    f.headers = {{"Content-Type", "text/plain"}};
    f.body = "internal error while checking {{key}}: upstream exploded";
    fault(f);
    auto r = client.complete(hello());
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::UpstreamError);
    CHECK(r.error().message.find("upstream exploded") != std::string::npos);
    errors.push_back(r.error());
  }
  {
    Fault f;  // a long message whose 500-byte cut falls inside the key
    f.status = 400;
    f.headers = {{"Content-Type", "text/plain"}};
    f.body = std::string(490, 'x') + " {{key}} tail";
    fault(f);
    auto r = client.complete(hello());
    REQUIRE_FALSE(r);
    errors.push_back(r.error());
  }
  {
    Fault f;  // an OpenAI error object inside a 200 stream
    f.stream_error_after_events = 1;
    f.stream_error_json = R"({"error":{"code":"invalid_api_key","message":"bad key {{key}}"}})";
    fault(f);
    auto r = client.stream(hello(), [](const StreamEvent&) { return true; });
    REQUIRE_FALSE(r);
    errors.push_back(r.error());
  }
  {
    Fault f;  // an Anthropic error event (the key came as x-api-key)
    f.stream_error_after_events = 1;
    f.stream_error_json =
        R"({"type":"error","error":{"type":"authentication_error","message":"key {{key}} revoked"}})";
    fault(f);
    auto r = client.stream(hello(Protocol::Anthropic), [](const StreamEvent&) { return true; });
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::Unauthorized);
    errors.push_back(r.error());
  }
  {
    Fault f;  // the flat `event: error` shape
    f.sse_body =
        "event: error\ndata: {\"message\":\"no access for {{key}}\",\"code\":"
        "\"{{key}}\",\"type\":\"invalid_request_error\"}\n\n";
    fault(f);
    auto r = client.stream(hello(), [](const StreamEvent&) { return true; });
    REQUIRE_FALSE(r);
    errors.push_back(r.error());
  }
  {
    Fault f;  // a malformed event carrying the key: the message must not quote the event
    f.sse_body = "data: {\"choices\": [ {{key}} ]}\n\n";
    fault(f);
    auto r = client.stream(hello(), [](const StreamEvent&) { return true; });
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::BadResponse);
    errors.push_back(r.error());
  }
  {
    Fault f;  // embeddings
    f.status = 403;
    f.body = R"({"error":{"message":"key {{key}} may not embed"}})";
    fault(f);
    glmproxy::EmbeddingRequest e;
    e.input = {"a"};
    auto r = client.embed(e);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::Forbidden);
    errors.push_back(r.error());
  }
  {
    // send(): an error after a 200 (the size cap) with the key in the body.
    Config small = config;
    small.stream.max_response_bytes = 4096;
    small.logger = nullptr;
    ProxyClient capped = make_client(small);
    Fault f;
    f.body = "{{key}}" + std::string(8192, ' ');
    fault(f);
    glmproxy::HttpRequest request;
    request.method = "GET";
    request.path = "models";
    auto r = capped.send(request);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::BadResponse);
    errors.push_back(r.error());
  }
  for (std::size_t i = 0; i < errors.size(); ++i) {
    check_error_clean(errors[i], "error " + std::to_string(i));
  }
  check_clean(client.metrics().to_json(), "metrics().to_json()");
  check_clean(client.prometheus_text(), "prometheus_text()");
  check_clean(client.profiling(100).to_json(), "profiling().to_json()");
  check_clean(config.describe(), "Config::describe()");
  std::lock_guard lock(log.mu);
  for (const std::string& line : log.lines) check_clean(line, "log line");
}

TEST_CASE("hostile: tenant keys and a failing warm-up's log are scrubbed", "[hostile][secrets]") {
  auto server = start_mock();
  const std::string dir = "/tmp/glmproxy-hostile-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/keys.json";
  {
    std::ofstream out(file);
    out << R"({"keys":[{"key":")" << kTenant
        << R"(","name":"alice","token_limit_per_5h":1000000,"expiry_date":"2099-01-01T00:00:00Z",)"
        << R"("created_at":"2024-01-01T00:00:00Z","last_used":null,"total_lifetime_tokens":0,)"
        << R"("usage_windows":[]}]})";
  }
  Config config = hostile_config(*server);
  config.keys.file = file;
  ProxyClient client = make_client(config);
  Fault f;
  f.status = 429;
  f.times = 3;
  f.body = R"({"error":{"code":"1113","message":"tenant )" + kTenant + R"( has no balance"}})";
  server->add_fault(f);
  ChatRequest request = hello();
  request.api_key = kTenant;
  auto r = client.complete(request);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::QuotaExceeded);
  check_error_clean(r.error(), "tenant echo");
  // An unknown tenant key is the caller's secret too, even though no registry knows it.
  request.api_key = "an-unknown-tenant-key-" + kTenant;
  auto unknown = client.complete(request);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == ErrorCode::Unauthorized);
  check_error_clean(unknown.error(), "unknown tenant");
  std::filesystem::remove_all(dir);

  // POOL_WARM against a port nobody listens on: the warning names the URL without its password.
  LogLines log;
  Config warm;
  warm.upstream.api_key = kKey;
  warm.upstream.openai_base_url = "http://user:" + kUrlPassword + "@127.0.0.1:1/v4";
  warm.pool.warm = true;
  warm.timeouts.connect = 200ms;
  warm.logger = log.callback();
  ProxyClient warmed = make_client(warm);
  std::lock_guard lock(log.mu);
  REQUIRE_FALSE(log.lines.empty());
  for (const std::string& line : log.lines) check_clean(line, "warm-up log");
}

// --- 2. malformed data is located, not quoted ----------------------------------------------

TEST_CASE("hostile: a malformed stream event's error names the event, not its text",
          "[hostile][stream]") {
  auto server = start_mock();
  ProxyClient client = make_client(hostile_config(*server));
  for (const std::string& data : {std::string("{\"choices\": [ sk-live-CREDENTIAL-abc ]}"),
                                  std::string("[\"sk-live-CREDENTIAL-abc\"]")}) {
    Fault f;
    f.sse_body =
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"ok\"}}]}\n\ndata: " +
        data + "\n\n";
    server->add_fault(f);
    auto r = client.stream(hello(), [](const StreamEvent&) { return true; });
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(r.error().code == ErrorCode::BadResponse);
    CHECK(r.error().http_status == 200);
    CHECK(r.error().message.find("stream event 2") != std::string::npos);
    CHECK(r.error().message.find("CREDENTIAL") == std::string::npos);
    CHECK(r.error().message.find("choices") == std::string::npos);
  }
}

// --- 3. resource bounds ----------------------------------------------------------------------

TEST_CASE("hostile: gzip bombs stop at GLMPROXY_MAX_RESPONSE_BYTES, decoded size counted",
          "[hostile][bounds]") {
  auto server = start_mock();
  Config config = hostile_config(*server);
  config.stream.max_response_bytes = 1u << 20;
  config.retry.max_attempts = 1;
  ProxyClient client = make_client(config);
  // 256 MiB of spaces in about 256 KiB: the old client buffered all of it (275 MB for one).
  const std::string bomb = gzip(std::string(256u << 20, ' '));
  REQUIRE(bomb.size() < (1u << 20));
  const long before = peak_rss_kib();
  constexpr int kAtOnce = 8;
  for (int i = 0; i < kAtOnce; ++i) {
    Fault f;
    f.headers = {{"Content-Encoding", "gzip"}, {"Content-Type", "application/json"}};
    f.body = bomb;
    server->add_fault(f);
  }
  std::vector<std::future<Result<glmproxy::ChatResponse>>> calls;
  for (int i = 0; i < kAtOnce; ++i) {
    calls.push_back(std::async(
        std::launch::async, [&client, i] { return client.complete(test_support::numbered(i)); }));
  }
  for (auto& call : calls) {
    auto r = call.get();
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(r.error().code == ErrorCode::BadResponse);
    CHECK(r.error().http_status == 200);
    CHECK(r.error().message.find("GLMPROXY_MAX_RESPONSE_BYTES=1048576") != std::string::npos);
  }
  // Eight bombs in flight together cost about eight caps, not eight decoded bodies (2 GB).
  const long grown_mib = (peak_rss_kib() - before) / 1024;
  INFO("peak RSS grew by " << grown_mib << " MiB");
  CHECK(grown_mib < 200);
}

TEST_CASE("hostile: a stream of many small deltas stops at the cap, and so do endless headers",
          "[hostile][bounds]") {
  auto server = start_mock();
  Config config = hostile_config(*server);
  config.stream.max_response_bytes = 64u << 10;
  config.retry.max_attempts = 1;
  ProxyClient client = make_client(config);
  std::vector<std::string> deltas(2000, std::string(100, 'a'));
  Fault f;
  f.sse_body = openai_stream(deltas);
  server->add_fault(f);
  std::size_t delivered = 0;
  auto r = client.stream(hello(), [&](const StreamEvent& e) {
    delivered += e.text.size();
    return true;
  });
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code == ErrorCode::BadResponse);
  CHECK(r.error().http_status == 200);
  CHECK(r.error().message.find("GLMPROXY_MAX_RESPONSE_BYTES") != std::string::npos);
  CHECK(delivered <= (64u << 10));

  // Tool-call names and ids count too: a thousand calls with 100 KB names each.
  std::string tools;
  for (int i = 0; i < 1000; ++i) {
    tools += R"(data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":)" +
             std::to_string(i) + R"(,"id":"call)" + std::to_string(i) +
             R"(","function":{"name":")" + std::string(100'000, 'n') +
             R"(","arguments":""}}]}}]})" + "\n\n";
  }
  Fault calls;
  calls.sse_body = tools + "data: [DONE]\n\n";
  server->add_fault(calls);
  auto named = client.stream(hello(), [](const StreamEvent&) { return true; });
  REQUIRE_FALSE(named);
  INFO(named.error().message);
  CHECK(named.error().message.find("GLMPROXY_MAX_RESPONSE_BYTES") != std::string::npos);

  // An embedding value outside float's range is refused, not converted (undefined behaviour).
  Fault huge;
  huge.body = R"({"object":"list","model":"embedding-3","data":[{"object":"embedding","index":0,)"
              R"("embedding":[0.5,1e300]}],"usage":{"prompt_tokens":1,"total_tokens":1}})";
  huge.headers = {{"Content-Type", "application/json"}};
  server->add_fault(huge);
  glmproxy::EmbeddingRequest e;
  e.input = {"a"};
  auto vec = client.embed(e);
  REQUIRE_FALSE(vec);
  CHECK(vec.error().code == ErrorCode::BadResponse);

  Fault headers;
  for (int i = 0; i < 1200; ++i) {
    headers.headers.emplace_back("X-Filler-" + std::to_string(i), std::string(1000, 'h'));
  }
  server->add_fault(headers);
  auto big = client.complete(hello());
  REQUIRE_FALSE(big);
  INFO(big.error().message);
  CHECK(big.error().code == ErrorCode::BadResponse);
  CHECK(big.error().message.find("headers") != std::string::npos);
}

// --- 4. usage numbers --------------------------------------------------------------------

TEST_CASE("hostile: usage counts saturate and never go negative", "[hostile][usage]") {
  auto server = start_mock();
  ProxyClient client = make_client(hostile_config(*server));
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const std::string max = std::to_string(kMax);
  struct Case {
    Protocol protocol;
    std::string body;
    glmproxy::Usage expected;
  };
  const std::vector<Case> cases = {
      {Protocol::OpenAI,
       R"({"id":"a","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},)"
       R"("finish_reason":"stop"}],"usage":{"prompt_tokens":)" +
           max + R"(,"completion_tokens":1}})",
       {kMax, 1, kMax}},
      {Protocol::OpenAI,
       R"({"id":"a","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},)"
       R"("finish_reason":"stop"}],"usage":{"prompt_tokens":-5,"completion_tokens":-7,)"
       R"("total_tokens":-12}})",
       {0, 0, 0}},
      {Protocol::OpenAI,
       R"({"id":"a","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},)"
       R"("finish_reason":"stop"}],"usage":{"prompt_tokens":18446744073709551615,)"
       R"("completion_tokens":18446744073709551615}})",
       {kMax, kMax, kMax}},
      {Protocol::Anthropic,
       R"({"id":"m","type":"message","role":"assistant","model":"m","content":[{"type":"text",)"
       R"("text":"x"}],"stop_reason":"end_turn","usage":{"input_tokens":)" +
           max + R"(,"output_tokens":)" + max + "}}",
       {kMax, kMax, kMax}},
      {Protocol::Anthropic,
       R"({"id":"m","type":"message","role":"assistant","model":"m","content":[{"type":"text",)"
       R"("text":"x"}],"stop_reason":"end_turn","usage":{"input_tokens":-1,"output_tokens":4}})",
       {0, 4, 4}},
  };
  for (const Case& c : cases) {
    Fault f;
    f.body = c.body;
    f.headers = {{"Content-Type", "application/json"}};
    server->add_fault(f);
    auto r = client.complete(hello(c.protocol));
    INFO(c.body);
    REQUIRE(r);
    CHECK(r->usage.prompt_tokens == c.expected.prompt_tokens);
    CHECK(r->usage.completion_tokens == c.expected.completion_tokens);
    CHECK(r->usage.total_tokens == c.expected.total_tokens);
  }
  // Streams: the OpenAI usage chunk and Anthropic's message_start + message_delta.
  {
    Fault f;
    f.sse_body =
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
        "\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"c\",\"choices\":[],\"usage\":"
        "{\"prompt_tokens\":" +
        max + ",\"completion_tokens\":" + max + "}}\n\ndata: [DONE]\n\n";
    server->add_fault(f);
    auto r = client.stream(hello(), [](const StreamEvent&) { return true; });
    REQUIRE(r);
    CHECK(r->usage.total_tokens == kMax);
  }
  {
    Fault f;
    f.sse_body =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\","
        "\"model\":\"m\",\"usage\":{\"input_tokens\":" +
        max +
        ",\"output_tokens\":-3}}}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"end_turn\"},\"usage\":{\"output_tokens\":" +
        max + "}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    server->add_fault(f);
    auto r = client.stream(hello(Protocol::Anthropic), [](const StreamEvent&) { return true; });
    REQUIRE(r);
    CHECK(r->usage.prompt_tokens == kMax);
    CHECK(r->usage.completion_tokens == kMax);
    CHECK(r->usage.total_tokens == kMax);
  }
  // The saturated counts went into the metrics without wrapping them negative.
  CHECK(client.metrics().requests.prompt_tokens > 0);
}

// --- 5. nothing escapes the public boundary -------------------------------------------------

TEST_CASE("hostile: a throwing logger and throwing callbacks stay inside the library",
          "[hostile][boundary]") {
  Config config;
  config.upstream.openai_base_url = "http://127.0.0.1:1/v4";
  config.pool.warm = true;
  config.timeouts.connect = 100ms;
  config.logger = [](glmproxy::LogLevel, std::string_view) { throw std::runtime_error("log"); };
  auto client = ProxyClient::create(config);  // logs the failed warm-up: must not throw
  REQUIRE(client);
  std::promise<Error> answered;
  client->complete_async(hello(), [&](Result<glmproxy::ChatResponse> r) {
    answered.set_value(r.error());
    throw std::runtime_error("user callback");
  });
  CHECK(answered.get_future().get().code == ErrorCode::ConnectionFailed);
  // A lookup function that throws is the caller's, but its exception still stays inside.
  auto from_env = Config::from_env(
      [](std::string_view) -> std::optional<std::string> { throw std::runtime_error("lookup"); });
  REQUIRE_FALSE(from_env);
  CHECK(from_env.error().code == ErrorCode::InvalidConfig);
}

// --- 8. errors that tell the truth -------------------------------------------------------

TEST_CASE("hostile: a URL curl cannot use is InvalidArgument, tried once", "[hostile][errors]") {
  Config config;
  auto transport = glmproxy::detail::Transport::create(config);
  REQUIRE(transport);
  std::promise<Result<glmproxy::detail::HttpResult>> done;
  glmproxy::detail::HttpExchange ex;
  ex.method = "GET";
  ex.url = "gopherx://127.0.0.1/";
  (*transport)->submit(std::move(ex), [&](Result<glmproxy::detail::HttpResult> r) {
    done.set_value(std::move(r));
  });
  auto r = done.get_future().get();
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code == ErrorCode::InvalidArgument);
  CHECK_FALSE(r.error().retryable());
  CHECK((*transport)->stats().attempts == 1);
}

TEST_CASE("hostile: errors after a 200 header carry status 200", "[hostile][errors]") {
  auto server = start_mock();
  Config config = hostile_config(*server);
  config.retry.max_attempts = 1;
  ProxyClient client = make_client(config);
  {
    Fault f;  // reset in the middle of a Content-Length body
    f.close_after_body_bytes = 10;
    server->add_fault(f);
    auto r = client.complete(hello());
    REQUIRE_FALSE(r);
    INFO(r.error().describe());
    CHECK(r.error().http_status == 200);
  }
  {
    Fault f;  // a stream cut after some events
    f.close_after_body_bytes = 150;
    server->add_fault(f);
    auto r = client.stream(hello(), [](const StreamEvent&) { return true; });
    REQUIRE_FALSE(r);
    INFO(r.error().describe());
    CHECK(r.error().http_status == 200);
  }
}

// --- 9. streams end when the protocol says so ----------------------------------------------

TEST_CASE("hostile: a stream held open after [DONE] / message_stop returns at once",
          "[hostile][stream]") {
  auto server = start_mock();
  Config config = hostile_config(*server);
  config.timeouts.stream_idle = 10s;
  config.timeouts.total = 30s;
  ProxyClient client = make_client(config);
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    server->reset();
    const std::string big(512u << 10, 'z');  // the Done event must not repeat this
    Fault f;
    f.sse_body = protocol == Protocol::OpenAI ? openai_stream({"Hel", "lo", big})
                                              : anthropic_stream("Hello" + big);
    f.hold_open = true;
    server->add_fault(f);
    std::vector<std::pair<StreamEvent::Type, std::size_t>> events;
    const auto start = Clock::now();
    auto r = client.stream(hello(protocol), [&](const StreamEvent& e) {
      events.emplace_back(e.type, e.text.size());
      return true;
    });
    const auto took = Clock::now() - start;
    INFO((r ? std::string("ok") : r.error().describe()));
    REQUIRE(r);
    CHECK(r->content == "Hello" + big);
    // Well before the 10 s idle timeout that used to end it (as a retryable Timeout).
    CHECK(took < 5s);
    REQUIRE_FALSE(events.empty());
    CHECK(events.back().first == StreamEvent::Type::Done);
    CHECK(events.back().second == 0);
    // The body never ended cleanly: that connection is closed, the next request goes on
    // another one and succeeds.
    auto next = client.complete(hello(protocol));
    REQUIRE(next);
    const auto recorded = server->recorded();
    REQUIRE(recorded.size() == 2);
    CHECK(recorded[0].connection_id != recorded[1].connection_id);
  }
  // A stream that ends cleanly after [DONE] leaves its connection for the next request.
  server->reset();
  REQUIRE(client.stream(hello(), [](const StreamEvent&) { return true; }));
  REQUIRE(client.complete(hello()));
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 2);
  CHECK(recorded[0].connection_id == recorded[1].connection_id);
}

// --- 10. the flat `event: error` of OpenAI-compatible servers --------------------------------

TEST_CASE("hostile: event: error with a flat error object is a typed error", "[hostile][stream]") {
  auto server = start_mock();
  Config config = hostile_config(*server);
  config.retry.max_attempts = 1;
  ProxyClient client = make_client(config);
  struct Case {
    std::string data;
    ErrorCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"message":"The model is overloaded","code":"1305","type":"server_error"})",
       ErrorCode::RateLimited, "The model is overloaded"},
      {R"({"message":"bad field","code":null,"type":"invalid_request_error"})",
       ErrorCode::InvalidArgument, "bad field"},
      {R"({"error":{"message":"nested shape","type":"server_error"}})", ErrorCode::UpstreamError,
       "nested shape"},
      {"not json at all", ErrorCode::UpstreamError, "error event"},
  };
  for (const Case& c : cases) {
    Fault f;
    f.sse_body =
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}"
        "\n\nevent: error\ndata: " +
        c.data + "\n\n";
    server->add_fault(f);
    auto r = client.stream(hello(), [](const StreamEvent&) { return true; });
    REQUIRE_FALSE(r);
    INFO(c.data << " -> " << r.error().describe());
    CHECK(r.error().code == c.code);
    CHECK(r.error().message.find(c.message) != std::string::npos);
    CHECK(r.error().message.find("cut") == std::string::npos);
  }
}

// --- 13. warm-up and keep-alive probes ----------------------------------------------------

TEST_CASE("hostile: POOL_WARM against a silent upstream holds create() one connect timeout",
          "[hostile][warm]") {
  auto server = start_mock();
  Config config = hostile_config(*server);
  config.pool.warm = true;
  config.pool.min_connections = 2;
  config.timeouts.connect = 300ms;
  config.admission.breaker_failures = 1;  // one reported failure would open it
  Fault silent;                           // the warm-up HEADs get no answer for 5 s
  silent.path_contains = "/api/paas/v4";
  silent.times = 2;
  silent.delay_before_headers = 5s;
  server->add_fault(silent);
  const auto start = Clock::now();
  ProxyClient client = make_client(config);
  const auto took = Clock::now() - start;
  CHECK(took < 3s);  // the first-byte timeout (300 s by default) used to hold it
  // The failed warm-up did not open the breaker: the first real request goes through.
  auto r = client.complete(hello());
  INFO((r ? std::string("ok") : r.error().describe()));
  CHECK(r);
}

TEST_CASE("hostile: keep-alive probes go to the base URL, never to a send() path",
          "[hostile][warm]") {
  auto server = start_mock(1000);
  Config config = hostile_config(*server);
  config.pool.min_connections = 1;
  config.pool.max_idle = 1s;  // a probe after 500 ms idle
  ProxyClient client = make_client(config);
  glmproxy::HttpRequest request;
  request.method = "GET";
  request.path = "models?signature=signed-query-never-resent";
  auto r = client.send(request);
  REQUIRE(r);
  std::this_thread::sleep_for(1500ms);
  int heads = 0;
  for (const auto& rec : server->recorded()) {
    if (rec.method != "HEAD") continue;
    ++heads;
    CHECK(rec.path == "/api/paas/v4");
    CHECK(rec.path.find("signature") == std::string::npos);
  }
  CHECK(heads >= 1);
}
