#pragma once

// Internal views into a ProxyClient for the library's own tests, benchmarks and tools.

#include "glmproxy/proxy_client.hpp"
#include "transport/transport.hpp"

namespace glmproxy::detail {

struct ClientAccess {
  /// The client's transport counters; an empty set for a moved-from client.
  static TransportStats transport_stats(const ProxyClient& client) noexcept;
  /// Reads and writes of the tenant key file (0 without APIKEYS_FILE).
  static std::uint64_t key_file_reads(const ProxyClient& client) noexcept;
  static std::uint64_t key_file_writes(const ProxyClient& client) noexcept;
};

inline TransportStats transport_stats(const ProxyClient& client) noexcept {
  return ClientAccess::transport_stats(client);
}

}  // namespace glmproxy::detail
