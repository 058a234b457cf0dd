#include "transport/curl_errors.hpp"

#include <fmt/format.h>

#include <string>

#include "core/strings.hpp"

namespace glmproxy::detail {

namespace {

std::string detail_of(const CurlFailure& f) {
  return f.errbuf.empty() ? std::string(curl_easy_strerror(f.code)) : std::string(f.errbuf);
}

bool is_https(std::string_view url) noexcept { return iequals(url.substr(0, 8), "https://"); }

}  // namespace

Error total_timeout_error(const TotalTimeout& t) {
  std::string message = t.own_bound
                            ? fmt::format("total timeout: the request's own bound of {} ms passed",
                                          t.own_bound->count())
                            : fmt::format("total timeout: GLMPROXY_TOTAL_TIMEOUT_MS={} ms passed",
                                          t.configured.count());
  if (!t.last_failure.empty()) {
    message += fmt::format(" (after {} attempt{}; the last failed: {})", t.attempts,
                           t.attempts == 1 ? "" : "s", t.last_failure);
  }
  return make_error(ErrorCode::Timeout, std::move(message));
}

Error curl_error(const CurlFailure& f, const Config& config) {
  const std::string detail = detail_of(f);
  const int code = static_cast<int>(f.code);
  if (f.code == CURLE_OPERATION_TIMEDOUT) {
    if (f.past_deadline || f.connected) return total_timeout_error(f.total);
    return make_error(
        ErrorCode::Timeout,
        fmt::format("connect timeout: no connection within GLMPROXY_CONNECT_TIMEOUT_MS={} ms ({})",
                    config.timeouts.connect.count(), detail));
  }
  switch (f.code) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      // No retry can fix the URL itself.
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("the request URL was refused: {} (curl {})", detail, code));
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
      return make_error(ErrorCode::ConnectionFailed,
                        fmt::format("connection failed: {} (curl {})", detail, code));
    case CURLE_PARTIAL_FILE:
      return make_error(ErrorCode::BadResponse,
                        fmt::format("the upstream closed the connection mid-response: {}", detail),
                        f.status);
    // Certificate problems: the next handshake meets the same certificate (or CA file).
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH: {
      const auto& up = config.upstream;
      Error e = make_error(
          ErrorCode::ConnectionFailed,
          fmt::format("the {} TLS certificate could not be verified: {} (curl {}); "
                      "not retried. To trust its certificate authority set GLMPROXY_CA_FILE "
                      "(a PEM bundle) or GLMPROXY_CA_PATH (a directory hashed by openssl "
                      "rehash); now GLMPROXY_CA_FILE=\"{}\" GLMPROXY_CA_PATH=\"{}\"",
                      is_https(up.proxy) ? "upstream's (or the HTTPS proxy's)" : "upstream's",
                      detail, code, up.ca_file, up.ca_path));
      e.upstream_code = std::string(kTlsCertificateCode);
      return e;
    }
    default:
      return make_error(ErrorCode::ConnectionFailed,
                        fmt::format("transfer failed: {} (curl {})", detail, code));
  }
}

Error stream_cut_error(const CurlFailure& f, std::string_view progress) {
  return make_error(ErrorCode::BadResponse,
                    fmt::format("the stream was cut: {} after {}", detail_of(f), progress),
                    f.status);
}

Error tls_options_error(CURLcode code) {
  return make_error(ErrorCode::InvalidConfig,
                    fmt::format("libcurl refused GLMPROXY_CA_FILE / GLMPROXY_CA_PATH: {} (curl {})",
                                curl_easy_strerror(code), static_cast<int>(code)));
}

}  // namespace glmproxy::detail
