#pragma once

// A small real tunnelling proxy on 127.0.0.1 for tests: it speaks HTTP CONNECT, SOCKS4, SOCKS4a
// and SOCKS5 (no authentication, or RFC 1929 user/password), telling them apart by the first
// byte, opens the requested TCP connection and relays bytes both ways until either side closes.
// It records what each client asked for (kind, target, credentials), enough to see which way a
// client went; not a general proxy. With a certificate it is an HTTPS proxy: TLS to the proxy
// itself, then CONNECT inside it. (The forward-only HTTP proxy is tests/support/http_proxy.hpp.)
//
// Thread safety: thread-safe (one thread accepts, one serves each client connection).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace test_support {

class TunnelProxy {
 public:
  /// What one client connection asked for.
  struct Tunnel {
    std::string kind;      ///< "CONNECT", "socks4", "socks4a", "socks5"
    std::string target;    ///< "host:port" as the client named it (a name for socks4a/5 domains)
    bool by_name = false;  ///< the client sent a host name, not an address
    std::string authorization;   ///< CONNECT: the Proxy-Authorization header
    std::string user, password;  ///< SOCKS: the user id (socks4) or user/password (socks5)
  };

  /// Listening on 127.0.0.1 and a free port, or nullptr. With `socks5_login`, a SOCKS5 client
  /// must log in (method 2) and is refused otherwise. `reply_delay` holds each tunnel's answer
  /// back (a slow proxy: the connect phase of the request takes that much longer).
  /// With `tls_cert_file` / `tls_key_file` (PEM), clients speak TLS to the proxy first.
  static std::unique_ptr<TunnelProxy> start(
      bool socks5_login = false,
      std::chrono::milliseconds reply_delay = std::chrono::milliseconds(0),
      const std::string& tls_cert_file = {}, const std::string& tls_key_file = {}) {
    SSL_CTX* ctx = nullptr;
    if (!tls_cert_file.empty()) {
      ctx = SSL_CTX_new(TLS_server_method());
      if (ctx == nullptr || SSL_CTX_use_certificate_chain_file(ctx, tls_cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx, tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        return nullptr;
      }
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      SSL_CTX_free(ctx);
      return nullptr;
    }
    std::unique_ptr<TunnelProxy> proxy(
        new TunnelProxy(fd, ntohs(addr.sin_port), socks5_login, reply_delay, ctx));
    proxy->acceptor_ = std::thread([p = proxy.get()] { p->accept_loop(); });
    return proxy;
  }

  ~TunnelProxy() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mu_);
      workers.swap(workers_);
    }
    for (std::thread& w : workers) w.join();
    ::close(listener_);
    SSL_CTX_free(ctx_);
  }
  TunnelProxy(const TunnelProxy&) = delete;
  TunnelProxy& operator=(const TunnelProxy&) = delete;

  std::uint16_t port() const { return port_; }
  /// "<scheme>://127.0.0.1:<port>", e.g. url("socks5h").
  std::string url(const std::string& scheme) const {
    return scheme + "://127.0.0.1:" + std::to_string(port_);
  }
  std::vector<Tunnel> tunnels() const {
    std::lock_guard lock(mu_);
    return tunnels_;
  }

 private:
  // One side of a tunnel: a socket, with TLS on top when `ssl` is set (the client of an HTTPS
  // proxy).
  struct Peer {
    int fd = -1;
    SSL* ssl = nullptr;
  };

  TunnelProxy(int fd, std::uint16_t port, bool socks5_login, std::chrono::milliseconds delay,
              SSL_CTX* ctx)
      : listener_(fd), port_(port), socks5_login_(socks5_login), reply_delay_(delay), ctx_(ctx) {}

  void accept_loop() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::lock_guard lock(mu_);
      workers_.emplace_back([this, client] {
        Peer peer{client, nullptr};
        if (ctx_ != nullptr) {
          peer.ssl = SSL_new(ctx_);
          SSL_set_fd(peer.ssl, client);
          if (SSL_accept(peer.ssl) == 1) serve(peer);
          SSL_shutdown(peer.ssl);
          SSL_free(peer.ssl);
        } else {
          serve(peer);
        }
        ::close(client);
      });
    }
  }

  // Some bytes from `peer` (at most n): > 0, or <= 0 when it went away.
  static long read_some(Peer& peer, void* out, std::size_t n) {
    if (peer.ssl != nullptr) return SSL_read(peer.ssl, out, static_cast<int>(n));
    return ::recv(peer.fd, out, n, 0);
  }

  // Whether a read from `peer` has bytes now, waiting up to 50 ms.
  static bool readable(Peer& peer) {
    if (peer.ssl != nullptr && SSL_pending(peer.ssl) > 0) return true;
    pollfd pfd{peer.fd, POLLIN, 0};
    return ::poll(&pfd, 1, 50) > 0;
  }

  // Reads exactly n bytes (false when the client went away or the proxy stops).
  bool read_exact(Peer& peer, void* out, std::size_t n) {
    auto* p = static_cast<unsigned char*>(out);
    while (n > 0) {
      if (stop_) return false;
      if (!readable(peer)) continue;
      const long got = read_some(peer, p, n);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }

  bool read_until_nul(Peer& fd, std::string& out) {
    for (char c = 1; read_exact(fd, &c, 1);) {
      if (c == '\0') return true;
      out += c;
    }
    return false;
  }

  static bool send_all(Peer& peer, const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (n > 0) {
      const long sent = peer.ssl != nullptr ? SSL_write(peer.ssl, p, static_cast<int>(n))
                                            : ::send(peer.fd, p, n, MSG_NOSIGNAL);
      if (sent <= 0) return false;
      p += sent;
      n -= static_cast<std::size_t>(sent);
    }
    return true;
  }

  // A TCP connection to host:port (host an IPv4 address or "localhost"), or -1.
  static int dial(const std::string& host, std::uint16_t port) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    if (::inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &to.sin_addr) != 1)
      return -1;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // Records the tunnel asked for, then waits out the reply delay.
  void record(Tunnel t) {
    {
      std::lock_guard lock(mu_);
      tunnels_.push_back(std::move(t));
    }
    std::this_thread::sleep_for(reply_delay_);
  }

  void serve(Peer& client) {
    unsigned char first = 0;
    if (!read_exact(client, &first, 1)) return;
    int upstream = -1;
    if (first == 4) {
      upstream = socks4(client);
    } else if (first == 5) {
      upstream = socks5(client);
    } else if (first == 'C') {
      upstream = http_connect(client);
    }
    if (upstream < 0) return;
    Peer target{upstream, nullptr};
    relay(client, target);
    ::close(upstream);
  }

  int socks4(Peer& client) {
    unsigned char head[7];  // CMD, PORT(2), IP(4); VER was read
    if (!read_exact(client, head, sizeof head) || head[0] != 1) return -1;
    Tunnel t;
    t.kind = "socks4";
    const auto port = static_cast<std::uint16_t>(head[1] << 8 | head[2]);
    if (!read_until_nul(client, t.user)) return -1;
    std::string host;
    if (head[3] == 0 && head[4] == 0 && head[5] == 0 && head[6] != 0) {  // SOCKS4a: a name
      t.kind = "socks4a";
      t.by_name = true;
      if (!read_until_nul(client, host)) return -1;
    } else {
      char text[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, head + 3, text, sizeof text);
      host = text;
    }
    t.target = host + ":" + std::to_string(port);
    record(t);
    const int upstream = dial(host, port);
    const unsigned char reply[8] = {
        0, static_cast<unsigned char>(upstream < 0 ? 0x5B : 0x5A), 0, 0, 0, 0, 0, 0};
    send_all(client, reply, sizeof reply);
    return upstream;
  }

  int socks5(Peer& client) {
    unsigned char count = 0;
    if (!read_exact(client, &count, 1)) return -1;
    std::string methods(count, '\0');
    if (!read_exact(client, methods.data(), count)) return -1;
    const unsigned char want = socks5_login_ ? 2 : 0;
    if (methods.find(static_cast<char>(want)) == std::string::npos) {
      const unsigned char none[2] = {5, 0xFF};
      send_all(client, none, 2);
      return -1;
    }
    const unsigned char chosen[2] = {5, want};
    if (!send_all(client, chosen, 2)) return -1;
    Tunnel t;
    t.kind = "socks5";
    if (want == 2) {  // RFC 1929
      unsigned char ver = 0, len = 0;
      if (!read_exact(client, &ver, 1) || !read_exact(client, &len, 1)) return -1;
      t.user.resize(len);
      if (!read_exact(client, t.user.data(), len) || !read_exact(client, &len, 1)) return -1;
      t.password.resize(len);
      if (!read_exact(client, t.password.data(), len)) return -1;
      const unsigned char ok[2] = {1, 0};
      if (!send_all(client, ok, 2)) return -1;
    }
    unsigned char req[4];  // VER CMD RSV ATYP
    if (!read_exact(client, req, 4) || req[1] != 1) return -1;
    std::string host;
    if (req[3] == 1) {
      unsigned char ip[4];
      if (!read_exact(client, ip, 4)) return -1;
      char text[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, ip, text, sizeof text);
      host = text;
    } else if (req[3] == 3) {
      unsigned char len = 0;
      if (!read_exact(client, &len, 1)) return -1;
      host.resize(len);
      if (!read_exact(client, host.data(), len)) return -1;
      t.by_name = true;
    } else {
      return -1;
    }
    unsigned char port_bytes[2];
    if (!read_exact(client, port_bytes, 2)) return -1;
    const auto port = static_cast<std::uint16_t>(port_bytes[0] << 8 | port_bytes[1]);
    t.target = host + ":" + std::to_string(port);
    record(t);
    const int upstream = dial(host, port);
    const unsigned char reply[10] = {
        5, static_cast<unsigned char>(upstream < 0 ? 5 : 0), 0, 1, 0, 0, 0, 0, 0, 0};
    send_all(client, reply, sizeof reply);
    return upstream;
  }

  int http_connect(Peer& client) {
    std::string head = "C";
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16384) {
      char c = 0;
      if (!read_exact(client, &c, 1)) return -1;
      head += c;
    }
    // "CONNECT host:port HTTP/1.1"
    const auto sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    if (head.rfind("CONNECT ", 0) != 0 || sp2 == std::string::npos) return -1;
    Tunnel t;
    t.kind = "CONNECT";
    t.target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    for (std::size_t at = head.find("\r\n"); at != std::string::npos && at + 2 < head.size();) {
      const auto end = head.find("\r\n", at + 2);
      const std::string line = head.substr(at + 2, end - at - 2);
      std::string name = line.substr(0, line.find(':'));
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (name == "proxy-authorization") {
        const auto colon = line.find(':');
        t.authorization = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      at = end;
    }
    record(t);
    const auto colon = t.target.rfind(':');
    const int upstream =
        dial(t.target.substr(0, colon),
             static_cast<std::uint16_t>(std::atoi(t.target.substr(colon + 1).c_str())));
    const std::string reply = upstream < 0 ? "HTTP/1.1 502 Bad Gateway\r\n\r\n"
                                           : "HTTP/1.1 200 Connection established\r\n\r\n";
    send_all(client, reply.data(), reply.size());
    return upstream;
  }

  // Bytes both ways until either side closes (TLS records already decrypted count as readable).
  void relay(Peer& a, Peer& b) {
    char buf[16384];
    Peer* peers[2] = {&a, &b};
    while (!stop_) {
      bool ready[2] = {a.ssl != nullptr && SSL_pending(a.ssl) > 0, false};
      if (!ready[0]) {
        pollfd fds[2] = {{a.fd, POLLIN, 0}, {b.fd, POLLIN, 0}};
        if (::poll(fds, 2, 50) <= 0) continue;
        for (int i = 0; i < 2; ++i) ready[i] = (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
      }
      for (int i = 0; i < 2; ++i) {
        if (!ready[i]) continue;
        const long got = read_some(*peers[i], buf, sizeof buf);
        if (got <= 0) return;
        if (!send_all(*peers[1 - i], buf, static_cast<std::size_t>(got))) return;
      }
    }
  }

  int listener_;
  std::uint16_t port_;
  bool socks5_login_;
  std::chrono::milliseconds reply_delay_;
  SSL_CTX* ctx_;  // set: an HTTPS proxy
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;  // guarded by mu_
  std::vector<Tunnel> tunnels_;       // guarded by mu_
};

}  // namespace test_support
