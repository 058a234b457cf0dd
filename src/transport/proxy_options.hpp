#pragma once

// The proxy options of every transfer (not public). libcurl reads http_proxy, https_proxy,
// all_proxy and no_proxy from the process environment unless CURLOPT_PROXY / CURLOPT_NOPROXY are
// set; the transport always sets both, from UpstreamConfig, so the only proxy a request takes is
// the one its Config names (Config::from_env() is where the standard variables are honoured).

#include <curl/curl.h>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// Sets CURLOPT_PROXY to upstream.proxy ("" = direct, never the environment's) and
/// CURLOPT_NOPROXY to upstream.no_proxy on `easy`; the first failing CURLcode, or CURLE_OK.
/// Call on the thread that owns `easy`.
CURLcode set_proxy_options(CURL* easy, const UpstreamConfig& upstream) noexcept;

/// The error for a transfer whose proxy options libcurl refused with `code` (the proxy URL
/// redacted).
Error proxy_options_error(const UpstreamConfig& upstream, CURLcode code);

}  // namespace glmproxy::detail
