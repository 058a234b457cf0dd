#include "glmproxy/mock/mock_upstream.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

#include "responses.hpp"

namespace glmproxy::mock {

std::optional<std::string> RecordedRequest::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

namespace {

using Clock = std::chrono::steady_clock;
using detail::Api;

constexpr std::uint64_t kListenId = 1;
constexpr std::uint64_t kWakeId = 2;
constexpr std::uint64_t kFirstConnId = 16;

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

struct SslFree {
  void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};

// The most recent OpenSSL error as text (and the queue cleared).
std::string ssl_error_text() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// What one read or write on a connection did.
enum class Io { Done, Again, Closed };

// Bytes to write after `delay` from when the previous segment finished; then maybe close.
struct Segment {
  std::string bytes;
  Milliseconds delay{0};
  bool close_after = false;
};

struct Connection {
  std::uint64_t id = 0;
  std::uint64_t number = 0;  // 1-based accept order, reported in RecordedRequest
  int fd = -1;
  std::unique_ptr<SSL, SslFree> ssl;  // TLS mode
  bool handshaken = false;            // TLS: the handshake is complete
  http_parser parser{};
  // The request being parsed.
  std::string method, url, body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool last_was_value = false;
  bool too_large = false;
  // Output, in order.
  std::deque<Segment> out;
  std::size_t out_offset = 0;
  std::optional<Clock::time_point> front_ready;
  std::optional<Clock::time_point> timer_at;  // a timer is queued for this time
  bool want_write = false;
  bool parse_failed = false;  // after a malformed request, input is ignored
  bool closing = false;
  bool responding = false;  // an answer counted against max_concurrent_requests is being sent
};

}  // namespace

class MockUpstream::Impl {
 public:
  explicit Impl(MockOptions options) : options_(std::move(options)) {
    http_parser_settings_init(&settings_);
    settings_.on_message_begin = &Impl::on_message_begin;
    settings_.on_url = &Impl::on_url;
    settings_.on_header_field = &Impl::on_header_field;
    settings_.on_header_value = &Impl::on_header_value;
    settings_.on_headers_complete = &Impl::on_headers_complete;
    settings_.on_body = &Impl::on_body;
    settings_.on_message_complete = &Impl::on_message_complete;
  }

  ~Impl() {
    stop_.store(true);
    wake();
    if (thread_.joinable()) thread_.join();
    for (auto& [id, conn] : conns_) {
      conn->ssl.reset();
      ::close(conn->fd);
    }
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  std::string bind_and_start() {
    if (std::string err = make_tls_context(); !err.empty()) return err;
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return std::string("socket: ") + std::strerror(errno);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(options_.port);
    if (::inet_pton(AF_INET, options_.host.c_str(), &addr.sin_addr) != 1) {
      return "not an IPv4 address: " + options_.host;
    }
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return "bind " + options_.host + ":" + std::to_string(options_.port) + ": " +
             std::strerror(errno);
    }
    if (::listen(listen_fd_, 1024) != 0) return std::string("listen: ") + std::strerror(errno);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) return std::string("epoll: ") + std::strerror(errno);
    add_fd(listen_fd_, kListenId, EPOLLIN);
    add_fd(wake_fd_, kWakeId, EPOLLIN);
    thread_ = std::thread([this] { run(); });
    return {};
  }

  std::uint16_t port() const noexcept { return port_; }
  const std::string& host() const noexcept { return options_.host; }
  bool tls() const noexcept { return ctx_ != nullptr; }

  void add_fault(Fault f) {
    std::lock_guard lock(mu_);
    faults_.push_back(std::move(f));
  }
  void clear_faults() {
    std::lock_guard lock(mu_);
    faults_.clear();
  }
  MockStats stats() const {
    MockStats s;
    s.connections_accepted = accepted_.load();
    s.connections_open = open_.load();
    s.requests = requests_.load();
    s.chat_requests = chat_.load();
    s.messages_requests = messages_.load();
    s.embeddings_requests = embeddings_.load();
    s.models_requests = models_.load();
    s.stream_requests = streams_.load();
    s.faults_applied = faults_applied_.load();
    s.concurrency_rejections = concurrency_rejections_.load();
    s.peak_concurrency = peak_concurrency_.load();
    s.tls_handshakes = tls_handshakes_.load();
    s.tls_resumed = tls_resumed_.load();
    return s;
  }
  void reset() {
    for (auto* c : {&accepted_, &requests_, &chat_, &messages_, &embeddings_, &models_, &streams_,
                    &faults_applied_, &concurrency_rejections_, &peak_concurrency_,
                    &tls_handshakes_, &tls_resumed_}) {
      c->store(0);
    }
    std::lock_guard lock(mu_);
    faults_.clear();
    recorded_.clear();
  }
  std::vector<RecordedRequest> recorded() const {
    std::lock_guard lock(mu_);
    return {recorded_.begin(), recorded_.end()};
  }
  void drop_connections() {
    drop_.store(true);
    wake();
  }

 private:
  // TLS mode: one context for every connection, with the server session cache and tickets on
  // (the OpenSSL defaults, set explicitly) so that clients can resume sessions.
  std::string make_tls_context() {
    if (options_.tls_cert_file.empty() && options_.tls_key_file.empty()) return {};
    if (options_.tls_cert_file.empty() || options_.tls_key_file.empty()) {
      return "TLS needs both tls_cert_file and tls_key_file";
    }
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    if (!ctx_) return "SSL_CTX_new: " + ssl_error_text();
    SSL_CTX* ctx = ctx_.get();
    if (SSL_CTX_use_certificate_chain_file(ctx, options_.tls_cert_file.c_str()) != 1) {
      return "TLS certificate " + options_.tls_cert_file + ": " + ssl_error_text();
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options_.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return "TLS key " + options_.tls_key_file + ": " + ssl_error_text();
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    static constexpr unsigned char kSessionContext[] = "glmproxy-mock";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    return {};
  }

  // TLS: drives the handshake; true once it is complete. Counts it when it completes.
  bool handshake(Connection& c) {
    if (c.handshaken) return true;
    const int r = SSL_do_handshake(c.ssl.get());
    if (r == 1) {
      c.handshaken = true;
      tls_handshakes_.fetch_add(1);
      if (SSL_session_reused(c.ssl.get()) == 1) tls_resumed_.fetch_add(1);
      return true;
    }
    switch (SSL_get_error(c.ssl.get(), r)) {
      case SSL_ERROR_WANT_READ:
        set_want_write(c, false);
        break;
      case SSL_ERROR_WANT_WRITE:
        set_want_write(c, true);
        break;
      default:  // e.g. the client rejected the certificate
        ERR_clear_error();
        c.closing = true;
    }
    return false;
  }

  // The one read function: plain read(2), or SSL_read once the handshake is done.
  Io read_some(Connection& c, char* buf, std::size_t len, std::size_t& got) {
    got = 0;
    if (!c.ssl) {
      while (true) {
        const ssize_t n = ::read(c.fd, buf, len);
        if (n > 0) {
          got = static_cast<std::size_t>(n);
          return Io::Done;
        }
        if (n == 0) return Io::Closed;
        if (errno == EINTR) continue;
        return errno == EAGAIN ? Io::Again : Io::Closed;
      }
    }
    if (!handshake(c)) return c.closing ? Io::Closed : Io::Again;
    const int n = SSL_read(c.ssl.get(), buf, static_cast<int>(std::min<std::size_t>(len, INT_MAX)));
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::Done;
    }
    switch (SSL_get_error(c.ssl.get(), n)) {
      case SSL_ERROR_WANT_READ:
        return Io::Again;
      case SSL_ERROR_WANT_WRITE:  // a renegotiation or key update wants to write first
        set_want_write(c, true);
        return Io::Again;
      default:  // close_notify (SSL_ERROR_ZERO_RETURN), a reset, a protocol error
        ERR_clear_error();
        return Io::Closed;
    }
  }

  // The one write function: send(2) without SIGPIPE, or SSL_write. On Again it has asked for
  // EPOLLOUT when the socket is full.
  Io write_some(Connection& c, const char* data, std::size_t len, std::size_t& sent) {
    sent = 0;
    if (!c.ssl) {
      while (true) {
        const ssize_t n = ::send(c.fd, data, len, MSG_NOSIGNAL);
        if (n >= 0) {
          sent = static_cast<std::size_t>(n);
          return Io::Done;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return Io::Closed;
        set_want_write(c, true);
        return Io::Again;
      }
    }
    if (!handshake(c)) return c.closing ? Io::Closed : Io::Again;
    const int n =
        SSL_write(c.ssl.get(), data, static_cast<int>(std::min<std::size_t>(len, INT_MAX)));
    if (n > 0) {
      sent = static_cast<std::size_t>(n);
      return Io::Done;
    }
    switch (SSL_get_error(c.ssl.get(), n)) {
      case SSL_ERROR_WANT_WRITE:
        set_want_write(c, true);
        return Io::Again;
      case SSL_ERROR_WANT_READ:  // resumes when the socket is readable (read_from flushes)
        return Io::Again;
      default:
        ERR_clear_error();
        return Io::Closed;
    }
  }

  void wake() {
    if (wake_fd_ < 0) return;
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }

  void add_fd(int fd, std::uint64_t id, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }

  void run() {
    // OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a client gone mid-answer must give
    // this thread EPIPE, not kill the process. SIGPIPE from a write is sent to the writing thread.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    std::vector<epoll_event> events(256);
    while (!stop_.load()) {
      int timeout = -1;
      if (!timers_.empty()) {
        auto wait = std::chrono::ceil<Milliseconds>(timers_.top().first - Clock::now()).count();
        timeout = static_cast<int>(std::clamp<long long>(wait, 0, 60'000));
      }
      int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; ++i) {
        const std::uint64_t id = events[static_cast<std::size_t>(i)].data.u64;
        const std::uint32_t ev = events[static_cast<std::size_t>(i)].events;
        if (id == kListenId) {
          accept_all();
        } else if (id == kWakeId) {
          std::uint64_t v;
          [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
          if (drop_.exchange(false)) close_all();
        } else {
          auto it = conns_.find(id);
          if (it == conns_.end()) continue;
          Connection& c = *it->second;
          if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) read_from(c);
          if (!c.closing && (ev & EPOLLOUT)) flush(c);
          if (c.closing) close_conn(id);
        }
      }
      run_timers();
    }
  }

  void run_timers() {
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.top().first <= now) {
      const std::uint64_t id = timers_.top().second;
      timers_.pop();
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      flush(*it->second);
      if (it->second->closing) close_conn(id);
    }
  }

  void accept_all() {
    while (true) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or out of descriptors: try again on the next event
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto conn = std::make_unique<Connection>();
      conn->id = next_id_++;
      conn->number = accepted_.fetch_add(1) + 1;
      conn->fd = fd;
      if (ctx_) {
        conn->ssl.reset(SSL_new(ctx_.get()));
        if (!conn->ssl || SSL_set_fd(conn->ssl.get(), fd) != 1) {
          ERR_clear_error();
          ::close(fd);
          continue;
        }
        SSL_set_accept_state(conn->ssl.get());
      }
      http_parser_init(&conn->parser, HTTP_REQUEST);
      conn->parser.data = this;
      open_.fetch_add(1);
      add_fd(fd, conn->id, EPOLLIN | EPOLLRDHUP);
      conns_.emplace(conn->id, std::move(conn));
    }
  }

  void close_conn(std::uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    done_responding(*it->second);
    if (it->second->ssl && it->second->handshaken) {
      SSL_shutdown(it->second->ssl.get());  // close_notify, best effort (non-blocking)
      ERR_clear_error();
    }
    it->second->ssl.reset();
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second->fd, nullptr);
    ::close(it->second->fd);
    conns_.erase(it);
    open_.fetch_sub(1);
  }

  void close_all() {
    std::vector<std::uint64_t> ids;
    ids.reserve(conns_.size());
    for (auto& [id, c] : conns_) ids.push_back(id);
    for (auto id : ids) close_conn(id);
  }

  void read_from(Connection& c) {
    char buf[65536];
    while (!c.closing) {
      std::size_t n = 0;
      const Io io = read_some(c, buf, sizeof buf, n);
      if (io == Io::Closed) {
        c.closing = true;
        return;
      }
      if (io == Io::Again) {
        if (c.ssl && c.handshaken) flush(c);  // a write that waited for the socket to be readable
        return;
      }
      if (c.parse_failed) continue;
      current_ = &c;
      const auto len = static_cast<std::size_t>(n);
      std::size_t used = http_parser_execute(&c.parser, &settings_, buf, len);
      current_ = nullptr;
      if (c.parser.http_errno != HPE_OK || used != len) {
        c.parse_failed = true;
        const bool too_large = c.too_large;
        c.out.clear();
        c.out_offset = 0;
        c.front_ready.reset();
        queue_simple(
            c, too_large ? 413 : 400,
            detail::error_body(Api::Unknown, too_large ? 413 : 400,
                               too_large ? "request body too large"
                                         : http_errno_description(HTTP_PARSER_ERRNO(&c.parser))),
            true);
        flush(c);  // closes the connection once the error is out
        return;
      }
      flush(c);
      // A short plain read emptied the socket. SSL_read returns one record at a time: read on
      // until it wants more (OpenSSL may hold decrypted bytes epoll cannot see).
      if (!c.ssl && n < sizeof buf) return;
    }
  }

  void flush(Connection& c) {
    // TLS: an EPOLLOUT during the handshake continues it.
    if (c.ssl && !handshake(c)) return;
    const auto now = Clock::now();
    while (!c.out.empty()) {
      Segment& s = c.out.front();
      if (c.out_offset == 0) {
        if (!c.front_ready) c.front_ready = now + s.delay;
        if (*c.front_ready > now) {
          if (c.timer_at != c.front_ready) {
            c.timer_at = c.front_ready;
            timers_.emplace(*c.front_ready, c.id);
          }
          return;
        }
      }
      while (c.out_offset < s.bytes.size()) {
        std::size_t n = 0;
        const Io io =
            write_some(c, s.bytes.data() + c.out_offset, s.bytes.size() - c.out_offset, n);
        if (io == Io::Again) return;
        if (io == Io::Closed) {
          c.closing = true;
          return;
        }
        c.out_offset += n;
      }
      const bool close_after = s.close_after;
      c.out.pop_front();
      c.out_offset = 0;
      c.front_ready.reset();
      if (c.out.empty()) done_responding(c);
      if (close_after) {
        c.closing = true;
        return;
      }
    }
    set_want_write(c, false);
  }

  void set_want_write(Connection& c, bool want) {
    if (c.want_write == want) return;
    c.want_write = want;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u);
    ev.data.u64 = c.id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  // ---- http_parser callbacks (run on the loop thread, current_ is the connection) ----

  static Impl& self(http_parser* p) { return *static_cast<Impl*>(p->data); }

  static int on_message_begin(http_parser* p) {
    Connection& c = *self(p).current_;
    c.method.clear();
    c.url.clear();
    c.body.clear();
    c.headers.clear();
    c.last_was_value = false;
    return 0;
  }
  static int on_url(http_parser* p, const char* at, std::size_t len) {
    self(p).current_->url.append(at, len);
    return 0;
  }
  static int on_header_field(http_parser* p, const char* at, std::size_t len) {
    Connection& c = *self(p).current_;
    if (c.headers.empty() || c.last_was_value) c.headers.emplace_back();
    c.headers.back().first.append(at, len);
    c.last_was_value = false;
    return 0;
  }
  static int on_header_value(http_parser* p, const char* at, std::size_t len) {
    Connection& c = *self(p).current_;
    if (c.headers.empty()) return 0;
    c.headers.back().second.append(at, len);
    c.last_was_value = true;
    return 0;
  }
  static int on_headers_complete(http_parser* p) {
    Impl& impl = self(p);
    Connection& c = *impl.current_;
    c.method = http_method_str(static_cast<http_method>(p->method));
    for (auto& h : c.headers) h.first = lower(std::move(h.first));
    if (p->content_length != ULLONG_MAX && p->content_length > impl.options_.max_body_bytes) {
      c.too_large = true;
      return -1;
    }
    for (const auto& [k, v] : c.headers) {
      if (k == "expect" && lower(v) == "100-continue") {
        c.out.push_back(Segment{"HTTP/1.1 100 Continue\r\n\r\n"});
      }
    }
    return 0;
  }
  static int on_body(http_parser* p, const char* at, std::size_t len) {
    Impl& impl = self(p);
    Connection& c = *impl.current_;
    if (c.body.size() + len > impl.options_.max_body_bytes) {
      c.too_large = true;
      return -1;
    }
    c.body.append(at, len);
    return 0;
  }
  static int on_message_complete(http_parser* p) {
    Impl& impl = self(p);
    impl.handle(*impl.current_, http_should_keep_alive(p) != 0);
    return 0;
  }

  // ---- request handling ----

  void handle(Connection& c, bool keep_alive) {
    std::string_view path = c.url;
    if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    if (path.starts_with("/__mock/")) {
      handle_control(c, path, keep_alive);
      return;
    }
    requests_.fetch_add(1);
    record(c);

    detail::RequestInfo info;
    const bool post = c.method == "POST";
    if (post && ends_with(path, "/chat/completions")) {
      info.api = Api::Chat;
      chat_.fetch_add(1);
    } else if (post && ends_with(path, "/messages")) {
      info.api = Api::Messages;
      messages_.fetch_add(1);
    } else if (post && ends_with(path, "/embeddings")) {
      info.api = Api::Embeddings;
      embeddings_.fetch_add(1);
    } else if (c.method == "GET" && ends_with(path, "/models")) {
      info.api = Api::Models;
      models_.fetch_add(1);
    }

    if (options_.max_concurrent_requests > 0 && info.api != Api::Unknown) {
      if (responding_ >= options_.max_concurrent_requests) {
        // Z.AI's answer to an account over its concurrency allowance.
        concurrency_rejections_.fetch_add(1);
        queue_simple(
            c, 429,
            R"({"error":{"code":"1302","message":"High concurrency usage of this API, )"
            R"(please reduce concurrency or contact customer service to increase limits"}})",
            !keep_alive);
        return;
      }
      c.responding = true;
      ++responding_;
      std::uint64_t peak = peak_concurrency_.load();
      while (responding_ > peak && !peak_concurrency_.compare_exchange_weak(peak, responding_)) {
      }
    }
    std::optional<Fault> fault = take_fault(path);
    if (fault && fault->echo_key) echo_key(c, *fault);
    if (std::string err = detail::parse_request(c.body, info); !err.empty()) {
      if (!fault) {
        queue_simple(c, 400, detail::error_body(info.api, 400, err), !keep_alive);
        return;
      }
      if (info.model.empty()) info.model = "unknown";
    }
    if (info.stream) streams_.fetch_add(1);
    const std::uint64_t counter = ++response_counter_;
    detail::Planned plan =
        detail::plan_response(info, options_, fault ? &*fault : nullptr, counter);
    if (fault) apply_fault(info, *fault, plan);
    queue_planned(c, plan, fault ? &*fault : nullptr, !keep_alive);
  }

  std::optional<Fault> take_fault(std::string_view path) {
    std::lock_guard lock(mu_);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if (path.find(it->path_contains) == std::string_view::npos) continue;
      Fault f = *it;
      if (it->times > 0 && --it->times == 0) faults_.erase(it);
      faults_applied_.fetch_add(1);
      return f;
    }
    return std::nullopt;
  }

  // Fault::echo_key: the request's own key into the scripted texts.
  static void echo_key(const Connection& c, Fault& f) {
    std::string key;
    for (const auto& [k, v] : c.headers) {
      if (k == "authorization" && lower(v).starts_with("bearer ")) key = v.substr(7);
      if (k == "x-api-key") key = v;
    }
    for (std::string* text :
         {f.body ? &*f.body : nullptr, f.sse_body ? &*f.sse_body : nullptr, &f.stream_error_json}) {
      if (text == nullptr) continue;
      for (std::size_t at = text->find("{{key}}"); at != std::string::npos;
           at = text->find("{{key}}", at + key.size())) {
        text->replace(at, 7, key);
      }
    }
  }

  void apply_fault(const detail::RequestInfo& info, const Fault& f, detail::Planned& plan) {
    if (f.status != 0) plan.status = f.status;
    if (f.sse_body) {
      plan.sse = true;
      plan.events = {*f.sse_body};
      plan.body.clear();
      plan.headers = {{"Content-Type", "text/event-stream"}};
    } else if (f.body) {
      plan.sse = false;
      plan.events.clear();
      plan.body = *f.body;
    } else if (plan.status >= 400) {
      plan.sse = false;
      plan.events.clear();
      plan.headers = {{"Content-Type", "application/json"}};
      plan.body = detail::error_body(info.api, plan.status,
                                     "mock upstream scripted error " + std::to_string(plan.status));
    }
    if (f.malformed_json) {
      if (plan.sse) {
        for (auto& e : plan.events) {
          if (e.starts_with("data: {") || e.find("\ndata: {") != std::string::npos) {
            e = e.substr(0, e.size() / 2) + "\n\n";
            break;
          }
        }
      } else {
        plan.body.resize(plan.body.size() / 2);
      }
    }
    if (plan.sse && f.stream_error_after_events) {
      auto keep = static_cast<std::size_t>(std::max(0, *f.stream_error_after_events));
      if (keep < plan.events.size()) plan.events.resize(keep);
      plan.events.push_back(detail::stream_error_event(info.api, f.stream_error_json));
    }
    for (const auto& h : f.headers) {
      bool replaced = false;
      for (auto& existing : plan.headers) {
        if (lower(existing.first) == lower(h.first)) {
          existing.second = h.second;
          replaced = true;
        }
      }
      if (!replaced) plan.headers.push_back(h);
    }
  }

  void queue_simple(Connection& c, int status, std::string body, bool close) {
    detail::Planned plan;
    plan.status = status;
    plan.headers.emplace_back("Content-Type", "application/json");
    plan.body = std::move(body);
    queue_planned(c, plan, nullptr, close);
  }

  void queue_planned(Connection& c, detail::Planned& plan, const Fault* f, bool close) {
    const bool close_after = close || (f != nullptr && f->close_after_response);
    std::string head;
    head.reserve(256);
    head += "HTTP/1.1 ";
    head += std::to_string(plan.status);
    head += ' ';
    head += detail::reason_phrase(plan.status);
    head += "\r\n";
    for (const auto& [k, v] : plan.headers) {
      head += k;
      head += ": ";
      head += v;
      head += "\r\n";
    }
    if (close) head += "Connection: close\r\n";

    // The body as a list of pieces: SSE events, or the whole body.
    std::vector<std::string> pieces;
    if (c.method == "HEAD") {
      // A HEAD answer has the GET headers and no body.
      head += "Content-Length: " + std::to_string(plan.body.size()) + "\r\n\r\n";
      c.out.push_back(Segment{std::move(head), Milliseconds(0), close_after});
      return;
    }
    if (plan.sse) {
      head += "Transfer-Encoding: chunked\r\n\r\n";
      pieces = std::move(plan.events);
    } else {
      head += "Content-Length: ";
      head += std::to_string(plan.body.size());
      head += "\r\n\r\n";
      pieces.push_back(std::move(plan.body));
    }
    // MockOptions::stream_event_delay paces every stream a fault does not pace itself.
    Fault pace;
    if (f == nullptr && plan.sse && options_.stream_event_delay.count() > 0) {
      pace.delay_between_chunks = options_.stream_event_delay;
      f = &pace;
    }
    const bool timed = f != nullptr &&
                       (f->delay_before_headers.count() > 0 || f->delay_between_chunks.count() > 0);
    const bool shaped = f != nullptr && (!f->split_pieces.empty() || f->close_after_body_bytes);
    if (!timed && !shaped) {
      // The common case: one write.
      std::string all = std::move(head);
      for (auto& p : pieces) {
        if (plan.sse)
          append_chunk(all, p);
        else
          all += p;
      }
      if (plan.sse && !(f != nullptr && f->hold_open)) all += "0\r\n\r\n";
      c.out.push_back(Segment{std::move(all), Milliseconds(0), close_after});
      return;
    }
    if (!f->split_pieces.empty()) {
      std::string joined;
      for (auto& p : pieces) joined += p;
      pieces.clear();
      std::size_t pos = 0;
      for (std::size_t i = 0; pos < joined.size(); ++i) {
        std::size_t size = f->split_pieces[i % f->split_pieces.size()];
        pieces.push_back(joined.substr(pos, size));
        pos += size;
      }
    }
    bool cut = false;
    if (f->close_after_body_bytes) {
      std::size_t budget = *f->close_after_body_bytes;
      std::vector<std::string> kept;
      for (auto& p : pieces) {
        if (budget == 0) {
          cut = true;
          break;
        }
        if (p.size() > budget) {
          kept.push_back(p.substr(0, budget));
          budget = 0;
          cut = true;
          break;
        }
        budget -= p.size();
        kept.push_back(std::move(p));
      }
      pieces = std::move(kept);
      // A Content-Length body cut exactly at its end is not cut.
    }
    c.out.push_back(Segment{std::move(head), f->delay_before_headers, false});
    for (auto& p : pieces) {
      std::string bytes;
      if (plan.sse)
        append_chunk(bytes, p);
      else
        bytes = std::move(p);
      c.out.push_back(Segment{std::move(bytes), f->delay_between_chunks, false});
    }
    if (cut) {
      if (c.out.size() > 0) c.out.back().close_after = true;
      return;
    }
    if (plan.sse && !f->hold_open) c.out.push_back(Segment{"0\r\n\r\n", Milliseconds(0), false});
    c.out.back().close_after = close_after;
  }

  static void append_chunk(std::string& out, const std::string& piece) {
    if (piece.empty()) return;  // an empty chunk would end the body
    char size[20];
    int n = std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    out.append(size, static_cast<std::size_t>(n));
    out += piece;
    out += "\r\n";
  }

  void record(const Connection& c) {
    if (options_.record_limit == 0) return;
    RecordedRequest r{c.method, c.url, c.headers, c.body, c.number};
    std::lock_guard lock(mu_);
    recorded_.push_back(std::move(r));
    while (recorded_.size() > options_.record_limit) recorded_.pop_front();
  }

  void handle_control(Connection& c, std::string_view path, bool keep_alive) {
    if (path == "/__mock/stats" && c.method == "GET") {
      queue_simple(c, 200, detail::stats_json(stats()), !keep_alive);
    } else if (path == "/__mock/reset" && c.method == "POST") {
      reset();
      queue_simple(c, 200, R"({"ok":true})", !keep_alive);
    } else if (path == "/__mock/faults" && c.method == "POST") {
      std::vector<Fault> parsed;
      if (std::string err = detail::parse_faults(c.body, parsed); !err.empty()) {
        queue_simple(c, 400, detail::error_body(Api::Unknown, 400, err), !keep_alive);
        return;
      }
      for (auto& f : parsed) add_fault(std::move(f));
      queue_simple(c, 200, R"({"ok":true,"added":)" + std::to_string(parsed.size()) + "}",
                   !keep_alive);
    } else if (path == "/__mock/faults" && c.method == "DELETE") {
      clear_faults();
      queue_simple(c, 200, R"({"ok":true})", !keep_alive);
    } else {
      queue_simple(c, 404, detail::error_body(Api::Unknown, 404, "unknown control endpoint"),
                   !keep_alive);
    }
  }

  MockOptions options_;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;  // TLS mode
  http_parser_settings settings_{};
  int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false}, drop_{false};

  // Loop-thread state.
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> conns_;
  std::uint64_t next_id_ = kFirstConnId;
  std::uint64_t response_counter_ = 0;
  Connection* current_ = nullptr;
  using Timer = std::pair<Clock::time_point, std::uint64_t>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;

  // Shared with other threads.
  std::atomic<std::uint64_t> accepted_{0}, open_{0}, requests_{0}, chat_{0}, messages_{0},
      embeddings_{0}, models_{0}, streams_{0}, faults_applied_{0}, concurrency_rejections_{0},
      peak_concurrency_{0}, tls_handshakes_{0}, tls_resumed_{0};
  std::uint64_t responding_ = 0;  // epoll thread only

  void done_responding(Connection& c) {
    if (!c.responding) return;
    c.responding = false;
    --responding_;
  }
  mutable std::mutex mu_;
  std::deque<Fault> faults_;
  std::deque<RecordedRequest> recorded_;
};

std::unique_ptr<MockUpstream> MockUpstream::start(const MockOptions& options, std::string* error) {
  auto impl = std::make_unique<Impl>(options);
  if (std::string err = impl->bind_and_start(); !err.empty()) {
    if (error != nullptr) *error = err;
    return nullptr;
  }
  return std::unique_ptr<MockUpstream>(new MockUpstream(std::move(impl)));
}

MockUpstream::MockUpstream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MockUpstream::~MockUpstream() = default;

std::uint16_t MockUpstream::port() const noexcept { return impl_->port(); }
std::string MockUpstream::base_url() const {
  return (impl_->tls() ? "https://" : "http://") + impl_->host() + ":" +
         std::to_string(impl_->port());
}
void MockUpstream::add_fault(Fault fault) { impl_->add_fault(std::move(fault)); }
void MockUpstream::clear_faults() { impl_->clear_faults(); }
MockStats MockUpstream::stats() const { return impl_->stats(); }
void MockUpstream::reset() { impl_->reset(); }
std::vector<RecordedRequest> MockUpstream::recorded() const { return impl_->recorded(); }
void MockUpstream::drop_connections() { impl_->drop_connections(); }

}  // namespace glmproxy::mock
