#pragma once

// The client behind ProxyClient: the call pipeline, the dispatcher and transport, the callback
// executor, wired together. Each public call is one of the files client/*_call.cpp.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cache/single_flight.hpp"
#include "client/call_pipeline.hpp"
#include "client/callback_pool.hpp"
#include "client/dispatcher.hpp"
#include "client/upstream_request.hpp"
#include "core/secrets.hpp"
#include "glmproxy/config.hpp"
#include "glmproxy/keys.hpp"
#include "glmproxy/metrics.hpp"
#include "glmproxy/profiling.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"
#include "metrics/process_stats.hpp"
#include "transport/transport.hpp"

namespace glmproxy::detail {

/// Thread safety: thread-safe, as ProxyClient.
class Client {
 public:
  using Clock = std::chrono::steady_clock;
  using ChatCallback = std::function<void(Result<ChatResponse>)>;

  explicit Client(Config config);
  /// Every pending request answered (ShuttingDown / Cancelled), queued callbacks run, threads
  /// joined. Not from one of the client's own threads (see on_own_thread()).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<void> start();

  // The public calls (client/chat_call.cpp, stream_call.cpp, embed_call.cpp, client.cpp).
  void complete_async(const ChatRequest& request, ChatCallback on_done);
  Result<ChatResponse> complete(const ChatRequest& request);
  Result<ChatResponse> stream(const ChatRequest& request,
                              const std::function<bool(const StreamEvent&)>& on_event);
  Result<EmbeddingResponse> embed(const EmbeddingRequest& request);
  Result<HttpResponse> send(const HttpRequest& request);

  /// `on_done` gets `error` on the callback executor.
  void fail_async(Error error, ChatCallback on_done);

  MetricsSnapshot metrics() const { return metrics(transport_->stats()); }
  std::string prometheus_text() const;
  ProfilingReport profiling(std::size_t slowest) const;
  std::optional<RequestProfile> request_profile(std::string_view request_id) const;
  Result<KeyStats> key_stats(std::string_view key) const;
  void invalidate_key(std::string_view key);
  const Config& config() const noexcept { return config_; }

  std::uint64_t key_file_reads() const noexcept;
  std::uint64_t key_file_writes() const noexcept;
  ClientDiagnostics diagnostics() const noexcept;

  bool on_io_thread() const noexcept { return transport_ && transport_->on_io_thread(); }
  /// On the I/O thread or a callback pool thread: such a thread cannot join itself, so the
  /// client must be destroyed elsewhere (ProxyClient hands it to a short-lived thread).
  bool on_own_thread() const noexcept {
    return on_io_thread() || (callbacks_ && callbacks_->on_own_thread());
  }

 private:
  // A chat call between the pipeline's stages.
  struct PreparedChat {
    const ChatRequest* request;
    std::string model;  // effective: the tenant key's override, the request's, or the default
    bool stream;
    CacheKey key;
    bool read_cache, write_cache, coalesce;
    std::string body;        // written by write_body(), after the cache missed
    Trace* trace = nullptr;  // PROFILING_ENABLED
  };

  void post_callback(ChatCallback on_done, Result<ChatResponse> r);
  /// On a callback pool thread: runs `on_done` (complete_async()'s chain, which ends in
  /// post_callback()) with the user's callback run here rather than posted again.
  static void answer_on_executor(ChatCallback& on_done, Result<ChatResponse> r);
  MetricsSnapshot metrics(const TransportStats& t) const;
  void log(LogLevel level, const std::string& message) const;
  static Error called_from_callback(std::string_view what);
  const std::string& base_url(Protocol p) const { return upstream_.base_url(p); }

  // chat_call.cpp
  void complete_async_impl(const ChatRequest& request, ChatCallback on_done, Trace* trace);
  Result<ChatResponse> complete_impl(const ChatRequest& request, Trace* trace);
  Result<PreparedChat> prepare_chat(const ChatRequest& request, bool stream, Trace* trace);
  static Result<void> write_body(PreparedChat& p);
  std::optional<ChatResponse> cached_chat(const PreparedChat& p);
  void send_chat(PreparedChat p, ChatCallback on_done);
  Result<ChatResponse> send_chat_blocking(PreparedChat p);
  ChatJob chat_job(PreparedChat& p);
  Result<ChatResponse> read_chat_answer(Protocol protocol, Result<HttpResult> r,
                                        const CacheKey& key, bool write, const std::string& tenant);
  HttpExchange chat_exchange(const ChatRequest& request, std::string body, const std::string& model,
                             bool stream, Trace* trace);
  // stream_call.cpp
  Result<ChatResponse> stream_impl(const ChatRequest& request,
                                   const std::function<bool(const StreamEvent&)>& on_event,
                                   Trace* trace);
  // embed_call.cpp
  Result<EmbeddingResponse> embed_impl(const EmbeddingRequest& request, Trace* trace);

  Config config_;
  SecretScope secrets_;  // the upstream key, admin token, URL passwords: scrubbed
  std::unique_ptr<CallPipeline> pipeline_;   // tenants, quotas, cache, metrics, profiles
  std::unique_ptr<CallbackPool> callbacks_;  // runs complete_async() callbacks
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<Dispatcher> dispatcher_;
  UpstreamRequests upstream_{config_};  // URLs, authentication, header lists
  mutable CpuMeter cpu_{config_.metrics.aggregation_interval};
  SingleFlight<Result<ChatResponse>> chat_flights_;
  SingleFlight<Result<EmbeddingResponse>> embed_flights_;
};

}  // namespace glmproxy::detail
