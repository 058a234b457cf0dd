// What docs/transport.md says about the I/O thread, admission and the pool, and shutdown, one
// test per statement, against the mock upstream. Each test quotes what it checks; the table at
// the end of docs/transport.md lists them.

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/docs_support.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::mock::Fault;
using glmproxy::mock::MockUpstream;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test_support::closed_port;
using test_support::config_for;
using test_support::eventually;
using test_support::hello;
using test_support::make_client;
using test_support::numbered;
using test_support::start_mock;

namespace {

// The names in /proc/self/<dir> (threads in task/, descriptors in fd/).
std::vector<std::string> proc_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(("/proc/self/" + dir).c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}

std::size_t thread_count() { return proc_entries("task").size(); }

// The signal masks of the threads of this process called `name` (Name and SigBlk in
// /proc/self/task/<tid>/status). A thread that has not run yet has every signal blocked
// (glibc's pthread_create).
std::vector<unsigned long long> signal_masks_of(const std::string& name) {
  std::vector<unsigned long long> out;
  for (const std::string& tid : proc_entries("task")) {
    std::ifstream status("/proc/self/task/" + tid + "/status");
    std::string line, thread_name;
    while (std::getline(status, line)) {
      if (line.rfind("Name:", 0) == 0) {
        thread_name = line.substr(5);
        thread_name.erase(0, thread_name.find_first_not_of(" \t"));
      }
      if (line.rfind("SigBlk:", 0) != 0 || thread_name != name) continue;
      out.push_back(std::stoull(line.substr(7), nullptr, 16));
    }
  }
  return out;
}

// The descriptors of this process that are TCP connections to `port` (their peer's port), each
// with whether it is close-on-exec. Read from /proc only (fd -> socket inode -> /proc/net/tcp,
// flags from fdinfo): no call on a descriptor that another thread (the mock) may be closing.
struct Socket {
  int fd = -1;
  bool cloexec = false;
};
std::vector<Socket> sockets_to(std::uint16_t port) {
  std::vector<std::string> inodes;  // of the sockets whose remote port is `port`
  std::ifstream tcp("/proc/self/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
        timeout >> inode;
    const auto colon = remote.find(':');
    if (colon == std::string::npos) continue;
    if (std::stoul(remote.substr(colon + 1), nullptr, 16) == port) inodes.push_back(inode);
  }
  std::vector<Socket> out;
  for (const std::string& name : proc_entries("fd")) {
    char target[128] = {};
    const std::string link = "/proc/self/fd/" + name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    const std::string what(target, static_cast<std::size_t>(n));
    bool ours = false;
    for (const std::string& inode : inodes) ours = ours || what == "socket:[" + inode + "]";
    if (!ours) continue;
    std::ifstream info("/proc/self/fdinfo/" + name);
    std::string key;
    std::string flags;
    while (info >> key >> flags && key != "flags:") {
    }
    if (key != "flags:") continue;  // closed meanwhile
    const unsigned long octal = std::stoul(flags, nullptr, 8);
    out.push_back({std::stoi(name), (octal & O_CLOEXEC) != 0});
  }
  return out;
}

}  // namespace

// --- threads ----------------------------------------------------------------------------

// transport.md, Threads: "One I/O thread per client owns a libcurl multi handle ..." and
// "GLMPROXY_CALLBACK_THREADS (default 2) callback threads ... none when Config::callback_executor
// is set"; Shutdown: "The threads are joined before the destructor returns."
TEST_CASE(
    "docs: one I/O thread and the callback threads per client, joined before the "
    "destructor returns",
    "[docs][threads]") {
  auto server = start_mock();
  const std::size_t before = thread_count();
  {
    ProxyClient one = make_client(config_for(*server));  // default: 2 callback threads
    REQUIRE(one.complete(hello()));
    CHECK(thread_count() == before + 1 + 2);
    {
      Config config = config_for(*server);
      config.callback_threads = 3;
      ProxyClient two = make_client(config);
      REQUIRE(two.complete(numbered(1)));
      CHECK(thread_count() == before + 3 + 1 + 3);
    }
    CHECK(thread_count() == before + 3);
    {
      Config config = config_for(*server);
      config.callback_executor = [](std::function<void()> task) {
        std::thread(std::move(task)).join();
      };
      ProxyClient three = make_client(config);  // the application's executor: no pool threads
      REQUIRE(three.complete(numbered(2)));
      CHECK(thread_count() == before + 3 + 1);
    }
  }
  CHECK(thread_count() == before);
}

// transport.md, Threads: "SIGPIPE is blocked on the I/O thread."
TEST_CASE("docs: the I/O thread blocks SIGPIPE", "[docs][threads]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  REQUIRE(client.complete(hello()));
  constexpr auto bit = [](int sig) { return 1ULL << (sig - 1); };
  // Once it has run (SIGINT no longer blocked: it has its own mask), SIGPIPE stays blocked.
  std::vector<unsigned long long> io;
  REQUIRE(eventually([&] {
    io = signal_masks_of("glmproxy-io");
    return io.size() == 1 && (io[0] & bit(SIGINT)) == 0;
  }));
  CHECK((io[0] & bit(SIGPIPE)) != 0);
  // The callback threads keep the application's mask (nothing of theirs writes to a socket).
  REQUIRE(eventually([&] {
    const auto cb = signal_masks_of("glmproxy-cb");
    return cb.size() == 2 && (cb[0] & bit(SIGINT)) == 0 && (cb[1] & bit(SIGINT)) == 0;
  }));
  for (unsigned long long mask : signal_masks_of("glmproxy-cb")) CHECK((mask & bit(SIGPIPE)) == 0);
}

// transport.md, Threads: "`CURLOPT_NOSIGNAL` is set": libcurl never touches the process's signal
// dispositions (without it, it would set SIGPIPE to SIG_IGN and back around every transfer).
TEST_CASE("docs: libcurl leaves the process's SIGPIPE disposition alone", "[docs][threads]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  struct sigaction mine {};
  mine.sa_handler = [](int) {};
  struct sigaction saved {};
  REQUIRE(::sigaction(SIGPIPE, &mine, &saved) == 0);
  std::atomic<bool> stop{false};
  std::atomic<int> changed{0};
  std::thread watcher([&] {
    while (!stop.load()) {
      struct sigaction now {};
      ::sigaction(SIGPIPE, nullptr, &now);
      if (now.sa_handler != mine.sa_handler) changed.fetch_add(1);
    }
  });
  for (int i = 0; i < 200; ++i) REQUIRE(client.complete(numbered(i)));
  stop = true;
  watcher.join();
  ::sigaction(SIGPIPE, &saved, nullptr);
  CHECK(changed.load() == 0);
}

// transport.md, Threads: "Sockets are opened close-on-exec."
TEST_CASE("docs: connections are opened close-on-exec", "[docs][threads]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  REQUIRE(client.complete(hello()));  // its connection stays open (keep-alive)
  const auto sockets = sockets_to(server->port());
  REQUIRE_FALSE(sockets.empty());
  for (const Socket& socket : sockets) {
    INFO("fd " << socket.fd);
    CHECK(socket.cloexec);
  }
}

// transport.md, Threads: "`complete_async()` puts the request on a mutex-guarded queue and calls
// `curl_multi_wakeup` — only when the I/O thread is asleep in (or about to enter) its poll ...
// and a busy I/O thread takes the queue before it sleeps again." The I/O thread is held busy by
// a callback run inline by the application's executor (the one way user code gets there).
TEST_CASE("docs: submitting wakes a sleeping I/O thread only, a busy one takes the queue",
          "[docs][threads]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.callback_executor = [](std::function<void()> task) { task(); };
  ProxyClient client = make_client(config);
  REQUIRE(client.complete(hello()));
  // Keep the I/O thread busy inside a callback while 50 requests are submitted.
  auto entered = std::make_shared<std::promise<void>>();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  client.complete_async(hello(), [entered, released](Result<ChatResponse>) {
    entered->set_value();
    released.wait();
  });
  entered->get_future().wait();
  const std::uint64_t busy_before = client.diagnostics().wakeups;
  auto done = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < 50; ++i) {
    client.complete_async(numbered(i),
                          [done](Result<ChatResponse> r) { done->fetch_add(r ? 1 : 0); });
  }
  const std::uint64_t busy_after = client.diagnostics().wakeups;
  release.set_value();
  REQUIRE(eventually([&] { return done->load() == 50; }));
  CHECK(busy_after == busy_before);  // nobody woke the busy thread; it answered all 50
  // Idle now, asleep in its poll: one submission wakes it, once.
  std::this_thread::sleep_for(200ms);
  const std::uint64_t asleep = client.diagnostics().wakeups;
  client.complete_async(hello(), [done](Result<ChatResponse> r) { done->fetch_add(r ? 1 : 0); });
  REQUIRE(eventually([&] { return done->load() == 51; }));
  CHECK(client.diagnostics().wakeups == asleep + 1);
}

// transport.md, Threads: "`complete()`, `stream()` and `send()` hand the request over the same way
// and wait for the answer on the calling thread (a cache hit in `complete()` or `stream()` never
// leaves it" — answered while the I/O thread is busy elsewhere.
TEST_CASE("docs: cache hits in complete() and stream() never wait for the I/O thread",
          "[docs][threads][cache]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  // The I/O thread is held below by a callback that an inline executor runs there.
  config.callback_executor = [](std::function<void()> task) { task(); };
  ProxyClient client = make_client(config);
  REQUIRE(client.complete(hello()));
  REQUIRE(client.stream(hello(), [](const StreamEvent&) { return true; }));
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  // `released` by value: the callback may still be returning from wait() when the test's
  // locals are destroyed (before the client).
  client.complete_async(numbered(1), [&entered, released](Result<ChatResponse>) {
    entered.set_value();
    released.wait();  // the I/O thread is held here
  });
  entered.get_future().wait();
  auto hits = std::async(std::launch::async, [&] {
    auto a = client.complete(hello());
    auto b = client.stream(hello(), [](const StreamEvent&) { return true; });
    return a && a->from_cache && b && b->from_cache;
  });
  const bool answered = hits.wait_for(10s) == std::future_status::ready;
  release.set_value();
  REQUIRE(answered);
  CHECK(hits.get());
}

// transport.md, Threads: "Easy handles are reused from a free list (`curl_easy_reset`)."
TEST_CASE("docs: easy handles are reused", "[docs][threads]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  for (int i = 0; i < 50; ++i) REQUIRE(client.complete(numbered(i)));
  CHECK(client.diagnostics().easy_handles_created == 1);
}

// transport.md, Threads: "A callback may call the client again, blocking calls included"; "an
// executor that runs tasks inline ... blocking calls there return `InvalidArgument` instead of
// deadlocking."
TEST_CASE("docs: every blocking call made from a completion callback works", "[docs][threads]") {
  auto server = start_mock();
  Config config = config_for(*server);
  const bool inline_executor = GENERATE(false, true);
  INFO("inline executor: " << inline_executor);
  if (inline_executor) config.callback_executor = [](std::function<void()> task) { task(); };
  ProxyClient client = make_client(config);
  auto errors = std::make_shared<std::promise<std::vector<glmproxy::Error>>>();
  client.complete_async(hello(), [&client, errors](Result<ChatResponse>) {
    std::vector<glmproxy::Error> out;
    auto note = [&](const auto& r) {
      out.push_back(r ? glmproxy::make_error(ErrorCode::Internal, "it ran") : r.error());
    };
    note(client.complete(numbered(1)));
    note(client.stream(numbered(2), [](const StreamEvent&) { return true; }));
    glmproxy::HttpRequest get;
    get.path = "models";
    note(client.send(get));
    glmproxy::EmbeddingRequest e;
    e.input = {"text"};
    note(client.embed(e));
    errors->set_value(std::move(out));
  });
  auto future = errors->get_future();
  REQUIRE(future.wait_for(30s) == std::future_status::ready);
  const auto got = future.get();
  REQUIRE(got.size() == 4);
  for (const auto& e : got) {
    INFO(e.describe());
    if (inline_executor) {
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK_THAT(e.message, Catch::Contains("would deadlock"));
    } else {
      CHECK(e.message == "it ran");
    }
  }
}

// transport.md, Threads: "Chat requests without a request id send one of four prebuilt header
// lists (OpenAI/Anthropic × JSON/SSE)" — what each of the four says on the wire, and the list a
// request id makes.
TEST_CASE("docs: the four chat header lists, and a request id's own", "[docs][threads]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  auto last = [&] { return server->recorded().back(); };
  auto common = [](const glmproxy::mock::RecordedRequest& r) {
    CHECK(r.header("content-type") == "application/json");
    CHECK_THAT(r.header("user-agent").value_or(""), Catch::StartsWith("glmproxy/"));
  };
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    for (bool stream : {false, true}) {
      for (const std::string id : {"", "req-7"}) {
        INFO((protocol == Protocol::OpenAI ? "OpenAI" : "Anthropic")
             << (stream ? " stream" : " JSON") << " id '" << id << "'");
        ChatRequest r = numbered(static_cast<int>(protocol) * 10 + stream * 2 + !id.empty());
        r.protocol = protocol;
        r.request_id = id;
        if (stream) {
          REQUIRE(client.stream(r, [](const StreamEvent&) { return true; }));
        } else {
          REQUIRE(client.complete(r));
        }
        const auto rec = last();
        common(rec);
        CHECK(rec.header("accept") == (stream ? "text/event-stream" : "application/json"));
        if (protocol == Protocol::OpenAI) {
          CHECK(rec.header("authorization") == "Bearer sk-test-key-123456");
          CHECK_FALSE(rec.header("x-api-key"));
        } else {
          CHECK(rec.header("x-api-key") == "sk-test-key-123456");
          CHECK(rec.header("anthropic-version") == "2023-06-01");
          CHECK_FALSE(rec.header("authorization"));
        }
        if (id.empty()) {
          CHECK_FALSE(rec.header("x-request-id"));
        } else {
          CHECK(rec.header("x-request-id") == id);
        }
      }
    }
  }
}

// transport.md, Threads: "`send()` keeps them all" (the response headers).
TEST_CASE("docs: send() returns every response header, names lower-cased", "[docs][send]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  Fault f;
  f.path_contains = "/models";
  f.headers = {{"X-Custom-Header", "kept"}, {"X-Other", "too"}};
  server->add_fault(f);
  glmproxy::HttpRequest get;
  get.path = "models";
  auto r = client.send(get);
  REQUIRE(r);
  auto has = [&](const std::string& name, const std::string& value) {
    for (const auto& [k, v] : r->headers) {
      if (k == name && v == value) return true;
    }
    return false;
  };
  CHECK(has("x-custom-header", "kept"));
  CHECK(has("x-other", "too"));
  bool content_type = false;
  for (const auto& h : r->headers) content_type = content_type || h.first == "content-type";
  CHECK(content_type);
}

// --- admission and the pool ----------------------------------------------------------

// transport.md, Admission: "a request whose model is at its limit lets later requests of other
// models pass."
TEST_CASE("docs: a request held by its model's limit lets other models' requests pass",
          "[docs][admission]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.max_connections = 4;
  config.admission.model_concurrency = 1;  // one request per model on the wire
  config.pool.acquire_timeout = 30s;
  auto client = make_client(config);
  Fault slow;  // the first request (model a) holds its model's only slot for a while
  slow.delay_before_headers = 3s;
  server->add_fault(slow);

  std::mutex mu;
  std::vector<std::string> finished;  // in the order the answers came
  std::atomic<int> done{0};
  auto send = [&](const std::string& model, int i, const std::string& name) {
    ChatRequest r = numbered(i);
    r.model = model;
    client.complete_async(r, [&, name](Result<ChatResponse> reply) {
      {
        std::lock_guard lock(mu);
        finished.push_back(name + (reply ? "" : " failed: " + reply.error().describe()));
      }
      done.fetch_add(1);
    });
  };
  send("model-a", 1, "a1");
  REQUIRE(eventually([&] { return server->stats().chat_requests == 1; }));  // a1 on the wire
  send("model-a", 2, "a2");  // waits: model a is at its limit
  send("model-b", 3, "b1");  // queued after a2, but its model is free
  REQUIRE(eventually([&] { return done.load() == 3; }, 60s));
  std::lock_guard lock(mu);
  CHECK(finished == std::vector<std::string>{"b1", "a1", "a2"});
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 3);
  CHECK(recorded[1].body.find("\"model-b\"") != std::string::npos);  // b1 went before a2
  CHECK(recorded[2].body.find("\"model-a\"") != std::string::npos);
}

// transport.md, Admission: "If that fails, `create()` still succeeds and the failure goes to the
// logger." ("waiting at most GLMPROXY_CONNECT_TIMEOUT_MS for them")
TEST_CASE("docs: POOL_WARM against an unreachable upstream: create() succeeds and logs",
          "[docs][warm]") {
  Config config;
  config.upstream.openai_base_url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v4";
  config.pool.warm = true;
  config.pool.min_connections = 2;
  config.timeouts.connect = 500ms;
  auto lines = std::make_shared<std::vector<std::pair<glmproxy::LogLevel, std::string>>>();
  auto mu = std::make_shared<std::mutex>();
  config.logger = [lines, mu](glmproxy::LogLevel level, std::string_view line) {
    std::lock_guard lock(*mu);
    lines->emplace_back(level, std::string(line));
  };
  const auto start = Clock::now();
  auto client = ProxyClient::create(config);
  const auto took = Clock::now() - start;
  INFO((client ? "" : client.error().describe()));
  REQUIRE(client);
  CHECK(took < 5s);  // the warm-up gave up after about one connect timeout (500 ms)
  {
    std::lock_guard lock(*mu);
    REQUIRE(lines->size() == 1);
    CHECK(lines->front().first == glmproxy::LogLevel::Warn);
    CHECK_THAT(lines->front().second, Catch::StartsWith("pool warm-up failed"));
    CHECK_THAT(lines->front().second, Catch::Contains("ConnectionFailed"));
  }
  // The client works: its requests fail as the upstream makes them fail, no more.
  auto reply = client->complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::ConnectionFailed);
}

// transport.md, Admission: "At most `POOL_MAX_CONNECTIONS` transfers are on the wire (and libcurl
// may open at most that many connections".
TEST_CASE("docs: at most POOL_MAX_CONNECTIONS requests are on the wire", "[docs][admission]") {
  glmproxy::mock::MockOptions options;
  options.max_concurrent_requests = 1000;  // counts the peak (and never refuses: 12 < 1000)
  auto server = start_mock(options);
  Config config = config_for(*server);
  config.pool.max_connections = 3;
  config.pool.min_connections = 1;
  config.pool.acquire_timeout = 30s;
  ProxyClient client = make_client(config);
  Fault slow;
  slow.delay_before_headers = 200ms;
  slow.times = 0;
  server->add_fault(slow);
  std::atomic<int> done{0};
  std::atomic<int> most_slots{0};  // the transport's own count of slots taken
  std::thread watcher([&] {
    while (done.load() < 12) {
      most_slots = std::max(most_slots.load(), client.diagnostics().in_flight);
      std::this_thread::sleep_for(1ms);
    }
  });
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i) {
    ChatRequest request = numbered(i);
    request.model = i % 2 == 0 ? "model-a" : "model-b";  // each model's own limit is 3 too
    client.complete_async(request, [&](Result<ChatResponse> r) {
      ok.fetch_add(r ? 1 : 0);
      done.fetch_add(1);
    });
  }
  REQUIRE(eventually([&] { return done.load() == 12; }, 60s));
  watcher.join();
  CHECK(ok.load() == 12);
  CHECK(most_slots.load() == 3);
  CHECK(server->stats().peak_concurrency == 3);
  CHECK(server->stats().connections_accepted == 3);
}

// transport.md, Admission: "Further requests wait in FIFO order".
TEST_CASE("docs: requests waiting for a connection slot go in FIFO order", "[docs][admission]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.max_connections = 1;
  config.pool.min_connections = 1;
  config.pool.acquire_timeout = 30s;
  ProxyClient client = make_client(config);
  Fault slow;  // the first holds the only slot while the others queue up
  slow.delay_before_headers = 500ms;
  server->add_fault(slow);
  std::atomic<int> done{0};
  auto count = [&](Result<ChatResponse> r) { done.fetch_add(r ? 1 : 0); };
  client.complete_async(numbered(0), count);
  REQUIRE(eventually([&] { return server->stats().chat_requests == 1; }));
  for (int i = 1; i <= 6; ++i) client.complete_async(numbered(i), count);
  REQUIRE(eventually([&] { return done.load() == 7; }, 60s));
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 7);
  for (int i = 0; i <= 6; ++i) {
    INFO(i << ": " << recorded[static_cast<std::size_t>(i)].body);
    CHECK(recorded[static_cast<std::size_t>(i)].body.find("\"request " + std::to_string(i) +
                                                          "\"") != std::string::npos);
  }
}

// transport.md, Admission: "one that waits `POOL_ACQUIRE_TIMEOUT` ms fails with `PoolTimeout`
// (saying whether the pool or its model's concurrency limit held it)."
TEST_CASE("docs: PoolTimeout says whether the pool or the model's limit held the request",
          "[docs][admission]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.acquire_timeout = 200ms;
  auto held = [&](ProxyClient& client) {
    Fault slow;
    slow.delay_before_headers = 2s;
    server->add_fault(slow);
    // Shared with the callback: the promise outlives its set_value() however the threads run.
    auto first = std::make_shared<std::promise<void>>();
    client.complete_async(numbered(1), [first](Result<ChatResponse>) { first->set_value(); });
    REQUIRE(eventually([&] { return server->stats().chat_requests >= 1; }));
    auto reply = client.complete(numbered(2));
    first->get_future().wait();
    REQUIRE_FALSE(reply);
    CHECK(reply.error().code == ErrorCode::PoolTimeout);
    CHECK_THAT(reply.error().message, Catch::Contains("POOL_ACQUIRE_TIMEOUT=200 ms"));
    return reply.error().message;
  };
  SECTION("the pool") {
    config.pool.max_connections = 1;
    config.pool.min_connections = 1;
    ProxyClient client = make_client(config);
    CHECK_THAT(held(client), Catch::Contains("(1 requests on the wire)"));
  }
  SECTION("the model's configured limit") {
    config.pool.max_connections = 4;
    config.admission.model_concurrency = 1;
    ProxyClient client = make_client(config);
    CHECK_THAT(held(client), Catch::Contains("model glm-4.7 at its limit of 1 requests at once "
                                             "(GLMPROXY_MODEL_CONCURRENCY)"));
  }
  SECTION("the model's limit, cut after a 429/1302") {
    config.pool.max_connections = 2;  // the model's limit starts at 2
    ProxyClient client = make_client(config);
    Fault busy;
    busy.status = 429;
    busy.body = R"({"error":{"code":"1302","message":"High concurrency usage of this API"}})";
    server->add_fault(busy);
    REQUIRE(client.complete(numbered(0)));  // retried after the cut to 1
    server->reset();
    CHECK_THAT(held(client),
               Catch::Contains("model glm-4.7 held to 1 requests at once after the upstream said "
                               "it had too many (429/1302)"));
  }
}

// transport.md, Admission: "`POOL_WARM` opens `POOL_MIN_CONNECTIONS` connections in `create()`
// with that many concurrent `HEAD` requests to the OpenAI base URL (no key is sent; any HTTP
// answer counts)"; "Warm-up and keep-alive probes are outside the metrics".
TEST_CASE("docs: POOL_WARM sends keyless HEADs to the OpenAI base URL, any answer counts",
          "[docs][warm]") {
  auto server = start_mock();
  Fault refused;  // the warm-up's HEADs are answered 500: still warm connections
  refused.path_contains = "/api/paas/v4";
  refused.status = 500;
  refused.times = 3;
  server->add_fault(refused);
  Config config = config_for(*server);
  config.pool.warm = true;
  config.pool.min_connections = 3;
  auto logged = std::make_shared<std::atomic<int>>(0);
  config.logger = [logged](glmproxy::LogLevel, std::string_view) { logged->fetch_add(1); };
  ProxyClient client = make_client(config);
  CHECK(logged->load() == 0);  // not a failure
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 3);
  for (const auto& r : recorded) {
    CHECK(r.method == "HEAD");
    CHECK(r.path == "/api/paas/v4");
    CHECK_FALSE(r.header("authorization"));
    CHECK_FALSE(r.header("x-api-key"));
  }
  CHECK(server->stats().connections_accepted == 3);  // concurrent: one connection each
  const auto m = client.metrics();
  CHECK(m.upstream.attempts == 0);
  CHECK(m.requests.total == 0);
  CHECK(m.requests.errors == 0);
}

// transport.md, Admission: "While the client is idle, `POOL_MIN_CONNECTIONS` connections are kept
// from ageing out by the same `HEAD` requests, every `GLMPROXY_POOL_MAX_IDLE_MS`/2, once the
// client has connected."; "Warm-up and keep-alive probes are outside the metrics".
TEST_CASE("docs: keep-alive probes start once connected and stay out of the metrics",
          "[docs][pool]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.min_connections = 1;
  config.pool.max_idle = 1000ms;  // a probe every 500 ms of idleness
  ProxyClient client = make_client(config);
  std::this_thread::sleep_for(1500ms);
  CHECK(server->stats().requests == 0);  // never connected: nothing to keep
  REQUIRE(client.complete(hello()));
  REQUIRE(eventually([&] { return server->stats().requests >= 2; }, 10s));  // a probe came
  std::this_thread::sleep_for(600ms);
  int heads = 0;
  for (const auto& r : server->recorded()) heads += r.method == "HEAD" ? 1 : 0;
  CHECK(heads >= 1);
  for (const auto& r : server->recorded()) {
    if (r.method == "HEAD") CHECK(r.path == "/api/paas/v4");  // the base URL of that request
  }
  CHECK(server->stats().connections_accepted == 1);
  const auto m = client.metrics();
  CHECK(m.upstream.attempts == 1);  // the chat request only
  CHECK(m.requests.total == 1);
  // "They go to the configured base URL last used": after an Anthropic request, its base.
  REQUIRE(client.complete(hello(Protocol::Anthropic)));
  server->reset();
  auto anthropic_probe = [&] {
    for (const auto& r : server->recorded()) {
      if (r.method == "HEAD" && r.path == "/api/anthropic") return true;
    }
    return false;
  };
  CHECK(eventually(anthropic_probe, 10s));
}

// transport.md, HTTP/2: "Plain `http://` never multiplexes and does not wait" — a burst opens a
// connection per request and they run at once.
TEST_CASE("docs: a burst over plain http opens its own connections at once", "[docs][pool]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.max_connections = 4;
  ProxyClient client = make_client(config);
  Fault slow;
  slow.delay_before_headers = 1000ms;
  slow.times = 0;
  server->add_fault(slow);
  std::atomic<int> done{0};
  const auto start = Clock::now();
  for (int i = 0; i < 4; ++i) {
    client.complete_async(numbered(i), [&](Result<ChatResponse> r) { done.fetch_add(r ? 1 : 0); });
  }
  REQUIRE(eventually([&] { return done.load() == 4; }, 30s));
  const auto took = Clock::now() - start;
  CHECK(server->stats().connections_accepted == 4);
  CHECK(took < 3500ms);  // together (one after another would take 4 s)
}

// --- shutdown ---------------------------------------------------------------------------

// transport.md, Shutdown: "requests on the wire get `Cancelled`, queued or backing-off ones
// `ShuttingDown`; each callback runs exactly once."
TEST_CASE("docs: a request waiting out a backoff at destruction gets ShuttingDown, once",
          "[docs][shutdown]") {
  auto server = start_mock();
  Fault later;  // answered 503 with a 30 s Retry-After: the request waits it out
  later.status = 503;
  later.headers = {{"Retry-After", "30"}};
  server->add_fault(later);
  std::atomic<int> calls{0};
  std::promise<glmproxy::Error> answered;
  const auto start = Clock::now();
  {
    ProxyClient client = make_client(config_for(*server));
    client.complete_async(hello(), [&](Result<ChatResponse> r) {
      if (calls.fetch_add(1) == 0) answered.set_value(r ? glmproxy::Error{} : r.error());
    });
    REQUIRE(eventually([&] {
      const auto s = client.diagnostics();
      return server->stats().chat_requests == 1 && s.attempts == 1 && s.in_flight == 0 &&
             s.waiting == 0;
    }));
  }  // destroyed while the request waits for its retry
  CHECK(Clock::now() - start < 20s);
  auto future = answered.get_future();
  REQUIRE(future.wait_for(0s) == std::future_status::ready);
  const glmproxy::Error e = future.get();
  CHECK(e.code == ErrorCode::ShuttingDown);
  CHECK(calls.load() == 1);
  CHECK(server->stats().chat_requests == 1);
}
