#pragma once

// libcurl's result codes as typed Errors, with the messages the transport documents
// (docs/transport.md, Timeouts and Errors). Pure: no curl handle is touched, so every mapping is
// tested without a socket (tests/transport/transport_policy_test.cpp).

#include <curl/curl.h>

#include <chrono>
#include <optional>
#include <string_view>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// What a total-timeout message names: the bound that applied and, after failed attempts, why the
/// last one failed.
struct TotalTimeout {
  std::optional<std::chrono::milliseconds> own_bound;  ///< a warm-up's or probe's own bound
  std::chrono::milliseconds configured{0};             ///< GLMPROXY_TOTAL_TIMEOUT_MS
  int attempts = 0;
  std::string_view last_failure;  ///< "" when no earlier attempt failed
};

/// Timeout: "total timeout: GLMPROXY_TOTAL_TIMEOUT_MS=N ms passed" (or "the request's own bound
/// of N ms passed"), plus " (after K attempts; the last failed: ...)" when one did.
Error total_timeout_error(const TotalTimeout& t);

/// Where an attempt that curl ended with an error stood.
struct CurlFailure {
  CURLcode code = CURLE_OK;
  std::string_view errbuf;  ///< CURLOPT_ERRORBUFFER; "" = curl_easy_strerror(code)
  bool connected = false;   ///< a connection was made (CURLINFO_CONNECT_TIME_T > 0)
  bool past_deadline = false;
  int status = 0;  ///< the response status, when one arrived
  TotalTimeout total;
};

/// The Error for an attempt curl ended with `f.code`: "connect timeout" / "total timeout"
/// (Timeout), "the request URL was refused" (InvalidArgument), "connection failed"
/// (ConnectionFailed), "the upstream closed the connection mid-response" (BadResponse), "the ...
/// TLS certificate could not be verified" (ConnectionFailed, upstream_code tls_certificate),
/// otherwise "transfer failed" (ConnectionFailed).
Error curl_error(const CurlFailure& f, const Config& config);

/// BadResponse for a 2xx stream that curl ended before its end marker: "the stream was cut: ...
/// after <progress>".
Error stream_cut_error(const CurlFailure& f, std::string_view progress);

/// InvalidConfig: libcurl refused GLMPROXY_CA_FILE / GLMPROXY_CA_PATH with `code`.
Error tls_options_error(CURLcode code);

}  // namespace glmproxy::detail
