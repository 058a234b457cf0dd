// CURLOPT_PROXY / CURLOPT_NOPROXY from the Config, never from the environment.

#include "transport/proxy_options.hpp"

#include <fmt/format.h>

#include "core/url.hpp"

namespace glmproxy::detail {

CURLcode set_proxy_options(CURL* easy, const UpstreamConfig& upstream) noexcept {
  // "" is not "unset" to libcurl: it means no proxy / no exceptions, whatever the environment
  // says. libcurl copies both strings.
  if (CURLcode code = curl_easy_setopt(easy, CURLOPT_PROXY, upstream.proxy.c_str());
      code != CURLE_OK) {
    return code;
  }
  return curl_easy_setopt(easy, CURLOPT_NOPROXY, upstream.no_proxy.c_str());
}

Error proxy_options_error(const UpstreamConfig& upstream, CURLcode code) {
  const std::string shown = upstream.proxy.empty() ? "\"\" (direct)" : redact_url(upstream.proxy);
  // Without proxy support compiled in, libcurl refuses the options themselves: the
  // configuration cannot work with this libcurl, whatever is retried.
  const bool unsupported = code == CURLE_UNKNOWN_OPTION || code == CURLE_NOT_BUILT_IN;
  return make_error(unsupported ? ErrorCode::InvalidConfig : ErrorCode::Internal,
                    fmt::format("libcurl refused the proxy options (GLMPROXY_PROXY={}, "
                                "GLMPROXY_NO_PROXY={}): {}",
                                shown, upstream.no_proxy, curl_easy_strerror(code)));
}

}  // namespace glmproxy::detail
