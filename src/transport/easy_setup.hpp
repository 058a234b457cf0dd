#pragma once

// Prepares a curl easy handle for one attempt of a Transfer: URL, headers, body (inline or
// through the read callback), timeouts, keep-alive, TLS trust, proxy, callbacks. Every
// curl_easy_setopt is checked: an option libcurl refuses fails the attempt with an Error naming
// it, never a request sent with the wrong options. I/O thread only (the handle is its own).

#include <curl/curl.h>

#include <chrono>
#include <optional>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "transport/transfer.hpp"
#include "transport/wire_stats.hpp"

namespace glmproxy::detail {

/// What every attempt's handle is set up with, besides its Transfer.
struct EasyContext {
  const Config& config;
  CURLSH* share;       ///< DNS and TLS sessions, shared by every handle of the I/O thread
  WireCounters* wire;  ///< counts the sockets the handle opens and closes
  CallbackEnv* env;    ///< what the callbacks read and count (set as t.env)
};

/// GLMPROXY_CA_FILE / GLMPROXY_CA_PATH (for the upstream and an https:// proxy's own
/// certificate); the first failing CURLcode, or CURLE_OK. Peer and host verification are curl's
/// defaults and are never turned off.
CURLcode set_tls_options(CURL* easy, const UpstreamConfig& upstream) noexcept;

/// Sets up `easy` for the next attempt of `t`, whose request must leave by `t.deadline` (from
/// `now`). An Error when libcurl refused an option: InvalidConfig for the CA or proxy settings
/// (as create() reports them), Internal naming the option ("libcurl refused CURLOPT_...")
/// otherwise, or when the header list could not be built.
std::optional<Error> setup_easy(CURL* easy, Transfer& t, const EasyContext& ctx,
                                std::chrono::steady_clock::time_point now);

/// The Error for an option libcurl refused with `code`.
Error setopt_error(CURLoption option, CURLcode code);

}  // namespace glmproxy::detail
