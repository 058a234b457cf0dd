#pragma once

// ProxyClient::diagnostics(): the transport's counters and the key file's, as the public
// ClientDiagnostics.

#include <cstdint>

#include "glmproxy/metrics.hpp"
#include "transport/transport.hpp"

namespace glmproxy::detail {

/// `t` (the transport's counters, read once) and the key file's reads and writes as
/// ClientDiagnostics.
ClientDiagnostics diagnostics_of(const TransportStats& t, std::uint64_t key_file_reads,
                                 std::uint64_t key_file_writes) noexcept;

}  // namespace glmproxy::detail
