#pragma once

// An HTTP/2 TLS front for tests: nginx (Debian package nginx, installed by
// scripts/install-deps.sh) on a free loopback port, proxying to a plain HTTP upstream on
// 127.0.0.1 (the mock), started by the test and killed by the destructor, also when the test
// fails. Its access log names the client connection ($connection) and protocol of every
// request, so a test can count the TLS connections that carried them.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/tls_files.hpp"

namespace test_support {

/// One access log line: "<connection serial> <protocol> <status> <request uri>".
struct AccessLogLine {
  std::string connection, protocol, status, uri;
};

/// nginx as `listen 127.0.0.1:<port> ssl http2`, `proxy_pass` to 127.0.0.1:<upstream_port>
/// over kept-alive HTTP/1.1 connections, unbuffered (SSE passes through as it comes).
///
/// Thread safety: not thread-safe (one test thread).
class NginxFront {
 public:
  NginxFront(std::uint16_t upstream_port, const TestCertificate& cert) {
    REQUIRE(dir_.ok());
    const std::string nginx = find_nginx();
    INFO(
        "nginx not found in /usr/sbin, /usr/bin, /usr/local/sbin or PATH: install it with "
        "scripts/install-deps.sh (Debian package nginx)");
    REQUIRE_FALSE(nginx.empty());
    port_ = free_port();
    REQUIRE(port_ != 0);
    write_config(upstream_port, cert);
    // Built before fork: the child of a threaded process may only exec.
    const std::string conf = dir_.file("nginx.conf"), error_log = dir_.file("error.log");
    child_.pid = ::fork();
    REQUIRE(child_.pid >= 0);
    if (child_.pid == 0) {
      ::execl(nginx.c_str(), nginx.c_str(), "-p", dir_.path().c_str(), "-c", conf.c_str(), "-e",
              error_log.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    wait_until_listening();
  }
  NginxFront(const NginxFront&) = delete;
  NginxFront& operator=(const NginxFront&) = delete;

  std::uint16_t port() const { return port_; }
  std::string base_url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::string error_log() const { return read_text_file(dir_.file("error.log")); }

  /// The access log so far. nginx writes a line when a request ends (a reset stream too).
  std::vector<AccessLogLine> access_log() const {
    std::vector<AccessLogLine> lines;
    std::istringstream in(read_text_file(dir_.file("access.log")));
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      AccessLogLine l;
      if (fields >> l.connection >> l.protocol >> l.status >> l.uri) lines.push_back(l);
    }
    return lines;
  }

  /// The access log once it has at least `n` lines (waiting up to 5 s).
  std::vector<AccessLogLine> access_log(std::size_t n) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto lines = access_log();
    while (lines.size() < n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      lines = access_log();
    }
    return lines;
  }

  static std::set<std::string> connections(const std::vector<AccessLogLine>& lines) {
    std::set<std::string> out;
    for (const auto& l : lines) out.insert(l.connection);
    return out;
  }

 private:
  static std::string find_nginx() {
    std::vector<std::string> candidates = {"/usr/sbin/nginx", "/usr/bin/nginx",
                                           "/usr/local/sbin/nginx"};
    if (const char* path = std::getenv("PATH")) {
      std::istringstream dirs(path);
      std::string d;
      while (std::getline(dirs, d, ':')) {
        if (!d.empty()) candidates.push_back(d + "/nginx");
      }
    }
    for (const auto& c : candidates) {
      if (::access(c.c_str(), X_OK) == 0) return c;
    }
    return {};
  }

  // A port the kernel just handed out and released (nginx binds it a moment later).
  static std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    return port;
  }

  void write_config(std::uint16_t upstream_port, const TestCertificate& cert) {
    const std::string d = dir_.path();
    std::ofstream conf(dir_.file("nginx.conf"));
    // One process in the foreground, every path in the temp dir. As root, nginx would switch
    // its worker to "nobody" (who cannot read the temp dir); with master_process off there is
    // no worker, and `user` is said only when root, where it is allowed.
    if (::geteuid() == 0) conf << "user root;\n";
    conf << "daemon off;\nmaster_process off;\nworker_processes 1;\n"
         << "pid " << d << "/nginx.pid;\n"
         << "error_log " << d << "/error.log info;\n"
         << "events { worker_connections 256; }\n"
         << "http {\n"
         << "  log_format conns '$connection $server_protocol $status $request_uri';\n"
         << "  access_log " << d << "/access.log conns;\n"
         << "  client_body_temp_path " << d << "/body;\n"
         << "  proxy_temp_path " << d << "/proxy;\n"
         << "  fastcgi_temp_path " << d << "/fastcgi;\n"
         << "  uwsgi_temp_path " << d << "/uwsgi;\n"
         << "  scgi_temp_path " << d << "/scgi;\n"
         << "  upstream mock {\n"
         << "    server 127.0.0.1:" << upstream_port << ";\n"
         << "    keepalive 16;\n"
         << "  }\n"
         << "  server {\n"
         << "    listen 127.0.0.1:" << port_ << " ssl http2;\n"
         << "    ssl_certificate " << cert.cert_file << ";\n"
         << "    ssl_certificate_key " << cert.key_file << ";\n"
         << "    location / {\n"
         << "      proxy_pass http://mock;\n"
         << "      proxy_http_version 1.1;\n"
         << "      proxy_set_header Connection \"\";\n"
         << "      proxy_buffering off;\n"
         << "      proxy_request_buffering off;\n"
         << "    }\n"
         << "  }\n"
         << "}\n";
  }

  void wait_until_listening() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(child_.pid, &status, WNOHANG) == child_.pid) {
        child_.pid = -1;
        FAIL("nginx exited at start (status " << status << "):\n" << error_log());
      }
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port_);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      ::close(fd);
      if (up) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL("nginx did not listen on 127.0.0.1:" << port_ << " within 10 s:\n" << error_log());
  }

  // Kills nginx when the front goes, also when its constructor fails after the fork (a member
  // is destroyed then, the front's own destructor would not run). Declared after dir_: nginx
  // stops before its files are removed.
  struct Child {
    pid_t pid = -1;
    Child() = default;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() {
      if (pid <= 0) return;
      ::kill(pid, SIGKILL);  // the test is over; nothing to shut down gracefully
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  };

  TempDir dir_;
  std::uint16_t port_ = 0;
  Child child_;
};

}  // namespace test_support
