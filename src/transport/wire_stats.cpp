#include "transport/wire_stats.hpp"

#include <algorithm>

namespace glmproxy::detail {

WireBytes wire_bytes(CURL* easy, std::size_t body_size, std::size_t request_chunk_size) {
  long request_size = 0, header_size = 0;
  curl_off_t uploaded = 0, downloaded = 0;
  curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
  curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
  curl_easy_getinfo(easy, CURLINFO_HEADER_SIZE, &header_size);
  curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &downloaded);
  // curl 7.88 counts a POSTFIELDS body in the request size when it goes out with the headers
  // (under 64 KiB); a larger one, or one sent by the read callback, only as upload.
  constexpr std::size_t kSentWithHeaders = 64u << 10;
  const bool read_callback = body_size > request_chunk_size;
  const bool in_request_size = !read_callback && body_size < kSentWithHeaders;
  WireBytes b;
  b.sent = static_cast<std::uint64_t>(std::max<long>(0, request_size)) +
           (in_request_size ? 0 : static_cast<std::uint64_t>(std::max<curl_off_t>(0, uploaded)));
  b.received = static_cast<std::uint64_t>(std::max<curl_off_t>(0, downloaded)) +
               static_cast<std::uint64_t>(std::max<long>(0, header_size));
  return b;
}

void fill_marks(TransferMarks& m, CURL* easy, std::chrono::steady_clock::time_point admitted,
                int attempts, bool got_response, WireBytes bytes) {
  m.admitted = admitted;
  m.attempts = attempts;
  m.bytes_sent += bytes.sent;
  m.bytes_received += bytes.received;
  auto time_of = [&](CURLINFO info) -> std::int64_t {
    curl_off_t us = 0;
    curl_easy_getinfo(easy, info, &us);
    return us > 0 ? static_cast<std::int64_t>(us) : -1;
  };
  long new_connections = 0;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_connections);
  m.reused_connection = new_connections == 0 && time_of(CURLINFO_PRETRANSFER_TIME_T) >= 0;
  m.dns_us = m.reused_connection ? -1 : time_of(CURLINFO_NAMELOOKUP_TIME_T);
  m.connect_us = m.reused_connection ? -1 : time_of(CURLINFO_CONNECT_TIME_T);
  m.tls_us = m.reused_connection ? -1 : time_of(CURLINFO_APPCONNECT_TIME_T);
  m.sent_us = time_of(CURLINFO_PRETRANSFER_TIME_T);
  m.first_byte_us = got_response ? time_of(CURLINFO_STARTTRANSFER_TIME_T) : -1;
  m.total_us = time_of(CURLINFO_TOTAL_TIME_T);
}

bool made_tls_handshake(CURL* easy) {
  long new_connections = 0;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_connections);
  if (new_connections == 0) return false;  // a reused connection had its handshake already
  curl_off_t tls_us = 0;
  curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &tls_us);
  return tls_us > 0;
}

}  // namespace glmproxy::detail
