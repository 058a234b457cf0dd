#pragma once

// A small real HTTP/1.1 forward proxy on 127.0.0.1 for tests: it accepts absolute-form requests
// ("POST http://127.0.0.1:PORT/path HTTP/1.1") with Content-Length bodies, counts them, forwards
// each over a new connection to the target in origin form (without the Proxy-* headers) and
// relays the response (Content-Length, or until the target closes) back on the client's
// keep-alive connection. Enough to see whether a client went through a proxy; not a general one.
//
// Thread safety: thread-safe (one thread accepts, one serves each client connection).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace test_support {

class HttpProxy {
 public:
  /// Listening on 127.0.0.1 and a free port, or nullptr.
  static std::unique_ptr<HttpProxy> start() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      return nullptr;
    }
    std::unique_ptr<HttpProxy> proxy(new HttpProxy(fd, ntohs(addr.sin_port)));
    proxy->acceptor_ = std::thread([p = proxy.get()] { p->accept_loop(); });
    return proxy;
  }

  ~HttpProxy() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mu_);
      workers.swap(workers_);
    }
    for (std::thread& w : workers) w.join();
    ::close(listener_);
  }
  HttpProxy(const HttpProxy&) = delete;
  HttpProxy& operator=(const HttpProxy&) = delete;

  std::uint16_t port() const { return port_; }
  /// "http://127.0.0.1:<port>"
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  /// Requests received (and forwarded).
  std::uint64_t requests() const { return requests_.load(); }
  /// Each request's target as received, e.g. "http://127.0.0.1:4242/api/paas/v4/models".
  std::vector<std::string> targets() const {
    std::lock_guard lock(mu_);
    return targets_;
  }
  /// Each request's Proxy-Authorization value ("" when it had none).
  std::vector<std::string> proxy_authorizations() const {
    std::lock_guard lock(mu_);
    return authorizations_;
  }

 private:
  HttpProxy(int listener, std::uint16_t port) : listener_(listener), port_(port) {}

  // Waits for `fd` to be readable, checking stop_ every 50 ms.
  bool readable(int fd) const {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      const int n = ::poll(&p, 1, 50);
      if (n > 0) return true;
      if (n < 0) return false;
    }
    return false;
  }

  void accept_loop() {
    while (readable(listener_)) {
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::lock_guard lock(mu_);
      workers_.emplace_back([this, client] {
        serve(client);
        ::close(client);
      });
    }
  }

  // Appends from `fd` to `buffer` until it holds `until`; false on EOF, error or stop.
  bool read_until(int fd, std::string& buffer, const std::string& until) const {
    while (buffer.find(until) == std::string::npos) {
      if (!read_some(fd, buffer)) return false;
    }
    return true;
  }

  bool read_some(int fd, std::string& buffer) const {
    if (!readable(fd)) return false;
    char chunk[16384];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  static bool send_all(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
  }

  // The head's header value of `name` (lower-case), or nullopt.
  static std::optional<std::string> header(const std::string& head, const std::string& name) {
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
      const std::size_t start = pos + 2;
      const std::size_t end = head.find("\r\n", start);
      const std::string line = head.substr(start, end - start);
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos && lower(line.substr(0, colon)) == name) {
        std::size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        return line.substr(v);
      }
      pos = end;
    }
    return std::nullopt;
  }

  // Reads a whole message (head + Content-Length body) from `fd`, `buffer` holding what was
  // already read; leaves what follows in `buffer`. With `to_eof`, a message without
  // Content-Length runs until the peer closes.
  bool read_message(int fd, std::string& buffer, std::string& message, bool to_eof) const {
    if (!read_until(fd, buffer, "\r\n\r\n")) return false;
    const std::size_t head_end = buffer.find("\r\n\r\n") + 4;
    const std::optional<std::string> length = header(buffer.substr(0, head_end), "content-length");
    if (!length && to_eof) {
      while (read_some(fd, buffer)) {
      }
      message = std::move(buffer);
      buffer.clear();
      return true;
    }
    const std::size_t total = head_end + (length ? std::strtoul(length->c_str(), nullptr, 10) : 0);
    while (buffer.size() < total) {
      if (!read_some(fd, buffer)) return false;
    }
    message = buffer.substr(0, total);
    buffer.erase(0, total);
    return true;
  }

  void serve(int client) {
    std::string buffer;
    std::string request;
    while (read_message(client, buffer, request, false)) {
      // "METHOD http://host:port/path HTTP/1.1"
      const std::size_t line_end = request.find("\r\n");
      const std::string line = request.substr(0, line_end);
      const std::size_t sp1 = line.find(' ');
      const std::size_t sp2 = line.rfind(' ');
      if (sp1 == std::string::npos || sp2 <= sp1) return;
      const std::string method = line.substr(0, sp1);
      const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      const std::string head = request.substr(0, request.find("\r\n\r\n") + 4);
      {
        std::lock_guard lock(mu_);
        targets_.push_back(target);
        authorizations_.push_back(header(head, "proxy-authorization").value_or(""));
      }
      requests_.fetch_add(1);
      if (target.rfind("http://", 0) != 0) {
        send_all(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      const std::size_t path_start = target.find('/', 7);
      const std::string authority = target.substr(7, path_start - 7);
      const std::string path = path_start == std::string::npos ? "/" : target.substr(path_start);
      const std::size_t colon = authority.rfind(':');
      const std::string host = authority.substr(0, colon);
      const int port = colon == std::string::npos ? 80 : std::atoi(authority.c_str() + colon + 1);

      std::string forwarded = method + " " + path + " " + line.substr(sp2 + 1) + "\r\n";
      std::size_t pos = line_end + 2;
      while (pos < head.size() - 2) {
        const std::size_t end = head.find("\r\n", pos);
        const std::string h = head.substr(pos, end - pos);
        if (lower(h).rfind("proxy-", 0) != 0) forwarded += h + "\r\n";
        pos = end + 2;
      }
      forwarded += "\r\n";
      forwarded += request.substr(head.size());

      std::string response;
      if (!forward(host, port, forwarded, response)) {
        response = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
      }
      if (!send_all(client, response)) return;
    }
  }

  bool forward(const std::string& host, int port, const std::string& request,
               std::string& response) const {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return false;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
              send_all(fd, request);
    std::string buffer;
    ok = ok && read_message(fd, buffer, response, true);
    ::close(fd);
    return ok;
  }

  const int listener_;
  const std::uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> requests_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<std::string> targets_;
  std::vector<std::string> authorizations_;
};

}  // namespace test_support
