#include "transport/easy_setup.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "core/strings.hpp"
#include "transport/curl_callbacks.hpp"
#include "transport/curl_errors.hpp"
#include "transport/proxy_options.hpp"

namespace glmproxy::detail {

namespace {

long to_long_ms(std::chrono::milliseconds ms) {
  return static_cast<long>(std::max<std::int64_t>(1, ms.count()));
}

bool is_https(std::string_view url) noexcept { return iequals(url.substr(0, 8), "https://"); }

// Sets options one after another; after the first refusal the rest are skipped and error()
// names the refused one.
class Options {
 public:
  explicit Options(CURL* easy) noexcept : easy_(easy) {}

  template <class T>
  void set(CURLoption option, T value) {
    if (error_) return;
    if (const CURLcode rc = curl_easy_setopt(easy_, option, value); rc != CURLE_OK) {
      error_ = setopt_error(option, rc);
    }
  }

  std::optional<Error>& error() noexcept { return error_; }

 private:
  CURL* easy_;
  std::optional<Error> error_;
};

}  // namespace

Error setopt_error(CURLoption option, CURLcode code) {
  const curl_easyoption* info = curl_easy_option_by_id(option);
  const std::string name = info != nullptr ? fmt::format("CURLOPT_{}", info->name)
                                           : fmt::format("option {}", static_cast<int>(option));
  return make_error(ErrorCode::Internal,
                    fmt::format("libcurl refused {}: {} (curl {})", name, curl_easy_strerror(code),
                                static_cast<int>(code)));
}

CURLcode set_tls_options(CURL* e, const UpstreamConfig& up) noexcept {
  // A corporate proxy's certificate is typically issued by the same private CA: trusted for an
  // https:// proxy's own certificate too (CURLOPT_PROXY_CAINFO/CAPATH).
  if (!up.ca_file.empty()) {
    for (CURLoption option : {CURLOPT_CAINFO, CURLOPT_PROXY_CAINFO}) {
      if (CURLcode rc = curl_easy_setopt(e, option, up.ca_file.c_str()); rc != CURLE_OK) return rc;
    }
  }
  if (!up.ca_path.empty()) {
    for (CURLoption option : {CURLOPT_CAPATH, CURLOPT_PROXY_CAPATH}) {
      if (CURLcode rc = curl_easy_setopt(e, option, up.ca_path.c_str()); rc != CURLE_OK) return rc;
    }
  }
  return CURLE_OK;
}

std::optional<Error> setup_easy(CURL* e, Transfer& t, const EasyContext& ctx,
                                std::chrono::steady_clock::time_point now) {
  const Config& config = ctx.config;
  if (const CURLcode rc = set_tls_options(e, config.upstream); rc != CURLE_OK) {
    return tls_options_error(rc);
  }
  if (const CURLcode rc = set_proxy_options(e, config.upstream); rc != CURLE_OK) {
    return proxy_options_error(config.upstream, rc);
  }
  if (t.slist == nullptr && !t.ex.shared_headers) {
    // No "Expect: 100-continue" round trip for large bodies.
    auto append = [&](const char* line) {
      curl_slist* grown = curl_slist_append(t.slist, line);
      if (grown != nullptr) t.slist = grown;
      return grown != nullptr;
    };
    bool built = true;
    for (const std::string& h : t.ex.headers) built = built && append(h.c_str());
    if (!built || !append("Expect:")) {
      return make_error(ErrorCode::Internal, "out of memory building the request headers");
    }
  }
  t.env = ctx.env;
  // Rounded up: curl's clock starts a little after `now`, so a timeout rounded down could fire
  // just before the deadline and be reported as a connect timeout instead of the total one.
  const auto remaining = std::chrono::ceil<std::chrono::milliseconds>(t.deadline - now);
  Options o(e);
  o.set(CURLOPT_URL, t.ex.url.c_str());
  o.set(CURLOPT_PRIVATE, static_cast<void*>(&t));
  o.set(CURLOPT_NOSIGNAL, 1L);
  o.set(CURLOPT_SHARE, ctx.share);
  o.set(CURLOPT_HTTPHEADER, t.ex.shared_headers ? t.ex.shared_headers->list() : t.slist);
  o.set(CURLOPT_ERRORBUFFER, static_cast<char*>(t.errbuf));
  o.set(CURLOPT_CONNECTTIMEOUT_MS, to_long_ms(config.timeouts.connect));
  o.set(CURLOPT_TIMEOUT_MS, to_long_ms(remaining));
  o.set(CURLOPT_MAXAGE_CONN,
        static_cast<long>(std::max<std::int64_t>(
            1, std::chrono::duration_cast<std::chrono::seconds>(config.pool.max_idle).count())));
  o.set(CURLOPT_ACCEPT_ENCODING, "");
  o.set(CURLOPT_WRITEFUNCTION, &on_body);
  o.set(CURLOPT_WRITEDATA, static_cast<void*>(&t));
  o.set(CURLOPT_HEADERFUNCTION, &on_header);
  o.set(CURLOPT_HEADERDATA, static_cast<void*>(&t));
  o.set(CURLOPT_BUFFERSIZE, static_cast<long>(config.stream.response_chunk_size));
  // Sockets are counted as curl opens and closes them (open = in use + idle in the pool).
  o.set(CURLOPT_OPENSOCKETFUNCTION, &on_open_socket);
  o.set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(ctx.wire));
  o.set(CURLOPT_CLOSESOCKETFUNCTION, &on_close_socket);
  o.set(CURLOPT_CLOSESOCKETDATA, static_cast<void*>(ctx.wire));
  // HTTP/2: wait for a connection being set up to say whether it multiplexes, instead of
  // opening one connection per concurrent transfer. Only https (h2 comes by ALPN; over plain
  // http curl would serialise a burst behind the first connection), and not for HEAD:
  // POOL_WARM's requests each want a connection of their own.
  if (t.ex.method != "HEAD" && is_https(t.ex.url)) o.set(CURLOPT_PIPEWAIT, 1L);
  if (config.pool.disabled) {
    o.set(CURLOPT_FRESH_CONNECT, 1L);
    o.set(CURLOPT_FORBID_REUSE, 1L);
  }
  if (t.ex.method == "HEAD") {
    o.set(CURLOPT_NOBODY, 1L);
  } else if (t.ex.method == "POST" || !t.ex.body.empty()) {
    const std::size_t chunk = config.stream.request_chunk_size;
    if (t.ex.body.size() > chunk) {
      // STREAM_REQUEST_CHUNK_SIZE: a large body goes out through the read callback, at most
      // that many bytes per call (still with a Content-Length).
      o.set(CURLOPT_POST, 1L);
      o.set(CURLOPT_READFUNCTION, &on_read);
      o.set(CURLOPT_READDATA, static_cast<void*>(&t));
      o.set(CURLOPT_SEEKFUNCTION, &on_seek);
      o.set(CURLOPT_SEEKDATA, static_cast<void*>(&t));
      o.set(CURLOPT_UPLOAD_BUFFERSIZE,
            static_cast<long>(std::clamp<std::size_t>(chunk, 16u << 10, 2u << 20)));
    } else {
      o.set(CURLOPT_POSTFIELDS, t.ex.body.data());
    }
    o.set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.ex.body.size()));
    if (t.ex.method != "POST") o.set(CURLOPT_CUSTOMREQUEST, t.ex.method.c_str());
  } else if (t.ex.method != "GET") {
    o.set(CURLOPT_CUSTOMREQUEST, t.ex.method.c_str());
  }
  return std::move(o.error());
}

}  // namespace glmproxy::detail
