#pragma once

// Small helpers shared by the tests that drive a client against loopback servers (first written
// for the tests of what docs/*.md promise, tests/*/..._docs_test.cpp).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "glmproxy/request.hpp"

namespace test_support {

/// "Say hello." over `protocol`.
inline glmproxy::ChatRequest hello(glmproxy::Protocol protocol = glmproxy::Protocol::OpenAI) {
  glmproxy::ChatRequest r;
  r.protocol = protocol;
  r.messages = {{"user", "Say hello."}};
  return r;
}

/// A loopback port nothing listens on (bound, then closed): connections to it are refused.
inline std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// Waits (generously: the machine may be loaded) until `done` holds; false if it never did.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace test_support
