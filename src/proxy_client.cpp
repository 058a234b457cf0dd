// ProxyClient: composition only. Requests are written by the protocol layer, carried by the
// transport, and answers parsed back by the protocol layer.

#include "glmproxy/proxy_client.hpp"

#include <fmt/format.h>

#include <atomic>
#include <memory>
#include <new>
#include <thread>

#include "client/client.hpp"
#include "core/no_throw.hpp"
#include "config/variables.hpp"
#include "core/secrets.hpp"

namespace glmproxy {

// The client itself is detail::Client (src/client/); Impl adds only how a client is retired.
class GLMPROXY_LOCAL ProxyClient::Impl final : public detail::Client {
 public:
  using Client::Client;

  // A client destroyed (or assigned over) from one of its own callbacks is on one of its own
  // threads, which cannot join itself: the shutdown is handed to a short-lived thread and the
  // destructor returns at once; pending requests are answered as usual. Only when no thread can
  // be started is the client left running, rather than the process ended.
  static void retire(std::unique_ptr<Impl> impl) noexcept {
    if (!impl || !impl->on_own_thread()) return impl.reset();
    Impl* const raw = impl.release();  // a failed thread start must not destroy it here
    try {
      std::thread([raw]() noexcept { delete raw; }).detach();
    } catch (...) {
      // No thread: left running (its memory is not given back) rather than the process ended.
    }
  }
};

namespace {

Error moved_from() {
  return make_error(ErrorCode::InvalidArgument, "this ProxyClient was moved from");
}

// What leaves the library is public: every registered secret (the upstream key, tenant keys,
// the admin token, URL passwords) is scrubbed from an Error, and so is the caller's own tenant
// key, even when it is unknown to the registry (an upstream may echo any of them).
void scrub(Error& e, std::string_view tenant_key) noexcept {
  detail::SecretRegistry::instance().scrub(e.message);
  detail::SecretRegistry::instance().scrub(e.upstream_code);
  if (tenant_key.size() > 4) {
    try {
      e.message = detail::scrub_secret(std::move(e.message), tenant_key);
      e.upstream_code = detail::scrub_secret(std::move(e.upstream_code), tenant_key);
    } catch (...) {
      e.message = "(message withheld: it could not be checked for secrets)";
      e.upstream_code.clear();
    }
  }
}

template <class T>
Result<T> scrubbed(Result<T> r, std::string_view tenant_key) noexcept {
  if (r) return r;
  Error e = std::move(r).error();
  scrub(e, tenant_key);
  return e;
}

// The error for an exception that reached the public boundary (nothing may pass it); call it
// in a catch block only. Never throws ("out of memory" when not even the message fits).
Error exception_error(std::string_view call) noexcept {
  return detail::exception_error({"glmproxy: ", call});
}

}  // namespace

Result<ProxyClient> ProxyClient::create(Config config) {
  try {
    if (auto valid = config.validate(); !valid) return std::move(valid).error();
    auto impl = std::make_unique<Impl>(std::move(config));
    if (auto started = impl->start(); !started) {
      Error e = std::move(started).error();
      scrub(e, {});  // while the client's secrets are still registered
      return e;
    }
    return ProxyClient(std::move(impl));
  } catch (...) {
    return exception_error("ProxyClient::create()");
  }
}

ProxyClient::ProxyClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProxyClient::ProxyClient(ProxyClient&&) noexcept = default;
ProxyClient& ProxyClient::operator=(ProxyClient&& other) noexcept {
  if (this != &other) {
    std::unique_ptr<Impl> old = std::move(impl_);
    impl_ = std::move(other.impl_);
    Impl::retire(std::move(old));
  }
  return *this;
}
ProxyClient::~ProxyClient() {
  // Otherwise impl_ is destroyed in place, still set meanwhile: a callback that sends again
  // while the client shuts down reaches it (and is answered ShuttingDown), not a moved-from one.
  if (impl_ && impl_->on_own_thread()) Impl::retire(std::move(impl_));
}

Result<ChatResponse> ProxyClient::complete(const ChatRequest& request) {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->complete(request), request.api_key);
  } catch (...) {
    return exception_error("complete()");
  }
}

void ProxyClient::complete_async(ChatRequest request,
                                 std::function<void(Result<ChatResponse>)> on_done) {
  // Exactly once, whatever happens: the first of the answer and a boundary error wins.
  struct Once {
    std::function<void(Result<ChatResponse>)> callback;
    std::string tenant_key;
    std::atomic<bool> fired{false};
  };
  std::shared_ptr<Once> once;
  try {
    once = std::make_shared<Once>();
    once->callback = std::move(on_done);
    once->tenant_key = request.api_key;
  } catch (...) {
    if (on_done) {
      try {
        on_done(exception_error("complete_async()"));
      } catch (...) {
      }
    }
    return;
  }
  auto deliver = [once](Result<ChatResponse> r) {
    if (once->fired.exchange(true)) return;
    if (!once->callback) return;
    once->callback(scrubbed(std::move(r), once->tenant_key));  // throws are caught by the caller
  };
  if (!impl_) {
    // No I/O thread to answer on: a thread of its own, so that the callback still does not run
    // on the caller's stack (only if none can be started, here).
    try {
      std::thread([deliver] {
        try {
          deliver(moved_from());
        } catch (...) {
        }
      }).detach();
    } catch (...) {
      try {
        deliver(moved_from());
      } catch (...) {
      }
    }
    return;
  }
  try {
    impl_->complete_async(request, deliver);
  } catch (...) {
    Error e = exception_error("complete_async()");
    try {
      impl_->fail_async(e, deliver);  // on the I/O thread, as every other answer
    } catch (...) {
      try {
        deliver(std::move(e));
      } catch (...) {
      }
    }
  }
}

Result<ChatResponse> ProxyClient::stream(const ChatRequest& request,
                                         const std::function<bool(const StreamEvent&)>& on_event) {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->stream(request, on_event), request.api_key);
  } catch (...) {
    return exception_error("stream()");
  }
}

Result<EmbeddingResponse> ProxyClient::embed(const EmbeddingRequest& request) {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->embed(request), request.api_key);
  } catch (...) {
    return exception_error("embed()");
  }
}

MetricsSnapshot ProxyClient::metrics() const {
  try {
    return impl_ ? impl_->metrics() : MetricsSnapshot{};
  } catch (...) {
    return MetricsSnapshot{};
  }
}

ProfilingReport ProxyClient::profiling(std::size_t slowest) const {
  try {
    return impl_ ? impl_->profiling(slowest) : ProfilingReport{};
  } catch (...) {
    return ProfilingReport{};
  }
}

std::optional<RequestProfile> ProxyClient::request_profile(std::string_view request_id) const {
  try {
    return impl_ ? impl_->request_profile(request_id) : std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
}

std::string ProxyClient::prometheus_text() const {
  try {
    return impl_ ? impl_->prometheus_text() : std::string();
  } catch (...) {
    return std::string();
  }
}

Result<KeyStats> ProxyClient::key_stats(std::string_view tenant_key) const {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->key_stats(tenant_key), tenant_key);
  } catch (...) {
    return exception_error("key_stats()");
  }
}

void ProxyClient::invalidate_key(std::string_view tenant_key) {
  try {
    if (impl_) impl_->invalidate_key(tenant_key);
  } catch (...) {
  }
}

Result<HttpResponse> ProxyClient::send(const HttpRequest& request) {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->send(request), {});
  } catch (...) {
    return exception_error("send()");
  }
}

ClientDiagnostics ProxyClient::diagnostics() const noexcept {
  return impl_ ? impl_->diagnostics() : ClientDiagnostics{};
}

const Config& ProxyClient::config() const noexcept {
  static const Config kEmpty;
  return impl_ ? impl_->config() : kEmpty;
}

}  // namespace glmproxy
