#include "glmproxy/admin/admin_server.hpp"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <thread>

namespace glmproxy::admin {

namespace detail {
extern const std::string_view kDashboardHtml;
}  // namespace detail

namespace {

// Compares without stopping at the first difference, so response time says nothing about how
// much of a guessed token was right.
bool same_secret(std::string_view a, std::string_view b) noexcept {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = a.size() < b.size() ? a.size() : b.size();
  for (std::size_t i = 0; i < n; ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

// The host part of a Host header: "[::1]:8080" -> "::1", "127.0.0.1:80" -> "127.0.0.1".
std::string_view host_part(std::string_view host) {
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(1, close - 1);
  }
  const auto colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

void json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body, "application/json");
}

}  // namespace

class GLMPROXY_LOCAL AdminServer::Impl {
 public:
  Impl(const ProxyClient& client, AdminConfig options)
      : client_(client), options_(std::move(options)) {}

  ~Impl() { stop(); }

  Result<void> start() {
    // Four workers, and a kept-alive connection let go after 1 s idle: httplib holds a worker
    // for as long as a connection stays open, and a dashboard tab alone keeps two open.
    server_.new_task_queue = [] { return new httplib::ThreadPool(4); };
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second server
    // bind the same port and take half of its connections. Close-on-exec, so that a child the
    // application spawns does not inherit the listening socket.
    server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      ::fcntl(sock, F_SETFD, FD_CLOEXEC);
    });
    server_.set_keep_alive_max_count(100);
    server_.set_keep_alive_timeout(1);
    server_.set_read_timeout(std::chrono::seconds(5));
    server_.set_payload_max_length(64 * 1024);
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      // A Host that is not loopback is a browser led here by DNS rebinding, not a local client.
      const std::string host_header = req.get_header_value("Host");
      const std::string_view host = host_part(host_header);
      if (!glmproxy::is_loopback_host(host) && host != options_.host) {
        json(res, 403, R"({"error":"forbidden: the admin endpoint answers loopback hosts only"})");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer realm=\"glmproxy admin\"");
      json(res, 401,
           R"({"error":"unauthorized: send Authorization: Bearer <GLMPROXY_ADMIN_TOKEN>"})");
      return httplib::Server::HandlerResponse::Handled;
    });
    server_.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          json(res, 500, R"({"error":"internal error"})");
        });
    server_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.status == 404 && res.body.empty()) {
        json(res, 404,
             R"({"error":"not found: try /dashboard, /api/metrics/prometheus, )"
             R"(/api/metrics/system or /profiling"})");
      }
    });
    server_.Get("/", [](const httplib::Request& req, httplib::Response& res) {
      // Keeps a ?token= query on the way to the page.
      std::string target = "/dashboard";
      if (req.has_param("token")) target += "?token=" + encode(req.get_param_value("token"));
      res.set_redirect(target);
    });
    server_.Get("/dashboard", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(detail::kDashboardHtml.data(), detail::kDashboardHtml.size(),
                      "text/html; charset=utf-8");
    });
    server_.Get("/api/metrics/prometheus", [this](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(client_.prometheus_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server_.Get("/api/metrics/system", [this](const httplib::Request&, httplib::Response& res) {
      json(res, 200, client_.metrics().to_json());
    });
    server_.Get("/profiling", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.has_param("id")) {
        const std::string id = req.get_param_value("id");
        if (auto profile = client_.request_profile(id)) return json(res, 200, profile->to_json());
        return json(res, 404, R"({"error":"no profile with that request id in the ring"})");
      }
      std::size_t slowest = 10;
      if (req.has_param("slowest")) {
        const std::string text = req.get_param_value("slowest");
        // Digits only: from_chars takes no sign or space, and must consume the whole value.
        std::size_t n = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || n > 10'000) {
          return json(res, 400, R"({"error":"slowest must be an integer in [0, 10000]"})");
        }
        slowest = n;
      }
      json(res, 200, client_.profiling(slowest).to_json());
    });

    if (options_.port == 0) {
      port_ = server_.bind_to_any_port(options_.host);
      if (port_ <= 0) return bind_error();
    } else {
      if (!server_.bind_to_port(options_.host, options_.port)) return bind_error();
      port_ = options_.port;
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the loop runs would be lost: wait until it does.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!server_.is_running() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!server_.is_running()) {
      stop();
      return make_error(ErrorCode::Internal, "the admin server did not start within 5 s");
    }
    return {};
  }

  void stop() noexcept {
    std::lock_guard lock(stop_mu_);
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

  int port() const noexcept { return port_; }

  std::string url() const {
    const bool v6 = options_.host.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + options_.host + "]" : options_.host) + ":" +
           std::to_string(port_);
  }

 private:
  bool authorized(const httplib::Request& req) const {
    if (options_.token.empty()) return true;
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() > kBearer.size() && header.compare(0, kBearer.size(), kBearer) == 0) {
      return same_secret(std::string_view(header).substr(kBearer.size()), options_.token);
    }
    return req.has_param("token") && same_secret(req.get_param_value("token"), options_.token);
  }

  Error bind_error() const {
    return make_error(ErrorCode::ConnectionFailed,
                      "the admin endpoint could not listen on " + options_.host + ":" +
                          std::to_string(options_.port) +
                          " (GLMPROXY_ADMIN_HOST / GLMPROXY_ADMIN_PORT): address in use or "
                          "not available");
  }

  static std::string encode(const std::string& s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
    }
    return out;
  }

  const ProxyClient& client_;
  const AdminConfig options_;
  httplib::Server server_;
  std::thread thread_;
  std::mutex stop_mu_;  // stop() from two threads (or with the destructor) joins once
  int port_ = 0;
};

Result<AdminServer> AdminServer::start(const ProxyClient& client) {
  const AdminConfig& options = client.config().admin;
  if (!options.enabled) {
    return make_error(ErrorCode::InvalidArgument,
                      "the admin endpoint is off: set GLMPROXY_ADMIN_ENABLED=true (or pass "
                      "AdminConfig to AdminServer::start)");
  }
  return start(client, options);
}

Result<AdminServer> AdminServer::start(const ProxyClient& client, const AdminConfig& options) {
  try {
    // The same rules as Config::validate() (loopback host, port range, token characters).
    Config check = client.config();
    check.admin = options;
    if (auto valid = check.validate(); !valid) return std::move(valid).error();
    // httplib's Server constructor sets SIGPIPE to SIG_IGN for the whole process; it sends with
    // MSG_NOSIGNAL anyway, so the application's own disposition is put back.
    struct sigaction before {};
    const bool saved = ::sigaction(SIGPIPE, nullptr, &before) == 0;
    auto impl = std::make_unique<Impl>(client, options);
    if (saved) ::sigaction(SIGPIPE, &before, nullptr);
    if (auto started = impl->start(); !started) return std::move(started).error();
    return AdminServer(std::move(impl));
  } catch (...) {
    // Nothing leaves the library as an exception (a thread that could not start, no memory).
    return make_error(ErrorCode::Internal, "the admin endpoint could not start (an exception)");
  }
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::AdminServer(AdminServer&&) noexcept = default;
AdminServer& AdminServer::operator=(AdminServer&&) noexcept = default;
AdminServer::~AdminServer() = default;

int AdminServer::port() const noexcept { return impl_ ? impl_->port() : 0; }

std::string AdminServer::url() const { return impl_ ? impl_->url() : std::string(); }

void AdminServer::stop() noexcept {
  if (impl_) impl_->stop();
}

}  // namespace glmproxy::admin
