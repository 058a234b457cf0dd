// glmproxy-mock-upstream: the test and benchmark upstream as a standalone server.
//
//   glmproxy-mock-upstream [--port N] [--host 127.0.0.1] [--reply TEXT] [--reasoning TEXT]
//                          [--stream-chunks N] [--stream-delay-ms N] [--max-concurrency N]
//                          [--no-record] [--tls-cert CERT.pem --tls-key KEY.pem]
//
// Prints "listening on http://HOST:PORT" (https:// with --tls-cert) once ready, then serves until
// SIGINT or SIGTERM.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "glmproxy/mock/mock_upstream.hpp"

namespace {

int usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s [--port N] [--host ADDR] [--reply TEXT] [--reasoning TEXT]\n"
      "          [--stream-chunks N] [--stream-delay-ms N] [--max-concurrency N] [--no-record]\n"
      "          [--tls-cert CERT.pem --tls-key KEY.pem]\n",
      argv0);
  return 2;
}

bool parse_uint(const char* s, unsigned long max, unsigned long& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-') return false;
  out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  glmproxy::mock::MockOptions options;
  options.record_limit = 0;  // a long-running server should not grow
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    unsigned long n = 0;
    if (arg == "--port") {
      const char* v = next();
      if (v == nullptr || !parse_uint(v, 65535, n)) return usage(argv[0]);
      options.port = static_cast<std::uint16_t>(n);
    } else if (arg == "--host") {
      const char* v = next();
      if (v == nullptr) return usage(argv[0]);
      options.host = v;
    } else if (arg == "--reply") {
      const char* v = next();
      if (v == nullptr) return usage(argv[0]);
      options.reply_text = v;
    } else if (arg == "--reasoning") {
      const char* v = next();
      if (v == nullptr) return usage(argv[0]);
      options.reasoning_text = v;
    } else if (arg == "--stream-chunks") {
      const char* v = next();
      if (v == nullptr || !parse_uint(v, 100000, n) || n == 0) return usage(argv[0]);
      options.stream_chunks = n;
    } else if (arg == "--max-concurrency") {
      const char* v = next();
      if (v == nullptr || !parse_uint(v, 1000000, n)) return usage(argv[0]);
      options.max_concurrent_requests = n;
    } else if (arg == "--stream-delay-ms") {
      const char* v = next();
      if (v == nullptr || !parse_uint(v, 60000, n)) return usage(argv[0]);
      options.stream_event_delay = glmproxy::mock::Milliseconds(static_cast<long>(n));
    } else if (arg == "--tls-cert") {
      const char* v = next();
      if (v == nullptr) return usage(argv[0]);
      options.tls_cert_file = v;
    } else if (arg == "--tls-key") {
      const char* v = next();
      if (v == nullptr) return usage(argv[0]);
      options.tls_key_file = v;
    } else if (arg == "--record") {
      options.record_limit = 1000;
    } else if (arg == "--no-record") {
      options.record_limit = 0;
    } else if (arg == "--help" || arg == "-h") {
      usage(argv[0]);
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument: %s\n", argv[i]);
      return usage(argv[0]);
    }
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // Block before the server thread starts, so only sigwait below sees them.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::string error;
  auto server = glmproxy::mock::MockUpstream::start(options, &error);
  if (!server) {
    std::fprintf(stderr, "glmproxy-mock-upstream: %s\n", error.c_str());
    return 1;
  }
  std::printf("listening on %s\n", server->base_url().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  auto stats = server->stats();
  std::fprintf(stderr, "glmproxy-mock-upstream: stopping; %llu connections, %llu requests\n",
               static_cast<unsigned long long>(stats.connections_accepted),
               static_cast<unsigned long long>(stats.requests));
  return 0;
}
