// libFuzzer target for the SSE parser (src/protocol/sse.cpp): whatever the bytes, the parser
// must not crash or read out of bounds (ASan, UBSan), and cutting the stream into chunks must
// never change what comes out. Self-contained on purpose (no test helpers).
//
// Input layout:
//   byte 0     bits 0-1: the limits (see kLimits); bits 2-3: the sink stops after that many
//              events (0: never)
//   byte 1     the largest random chunk (see kMaxChunks)
//   bytes 2-9  the seed of the chunk sizes
//   the rest   the stream
// Shorter inputs are padded with zeros and parse an empty stream.
//
// Each stream is parsed in one piece, then again in 1-byte pieces and twice in random pieces
// (some empty), reusing one parser through reset() and once with a BufferPool; the events,
// the final status, the error message, retry_ms() and finish() must all agree, or it aborts.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/sse.hpp"

namespace {

using glmproxy::ErrorCode;
using glmproxy::detail::BufferPool;
using glmproxy::detail::kSseDataPadding;
using glmproxy::detail::SseEvent;
using glmproxy::detail::SseLimits;
using glmproxy::detail::SseParser;
using glmproxy::detail::SseSink;

constexpr std::size_t kHeader = 10;
constexpr SseLimits kLimits[] = {{16, 64}, {64, 256}, {1u << 20, 8u << 20}, {1, 2}};
constexpr std::size_t kMaxChunks[] = {1, 2, 3, 5, 8, 17, 64, 4096};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "sse_fuzzer: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) die(what);
}

struct Event {
  std::string type;
  std::string data;
  std::string id;
  bool operator==(const Event&) const = default;
};

struct Outcome {
  std::vector<Event> events;
  SseParser::Status status = SseParser::Status::Ok;
  std::string error;
  bool incomplete = false;
  std::optional<std::uint64_t> retry;
  bool operator==(const Outcome&) const = default;
};

class Recorder final : public SseSink {
 public:
  Recorder(std::vector<Event>& events, std::size_t stop_after, const SseLimits& limits)
      : events_(events), stop_after_(stop_after), limits_(limits) {}

  bool on_sse_event(const SseEvent& e) override {
    // What any event must look like, whatever the input.
    check(!e.type.empty(), "empty event type");
    check(e.type.find_first_of("\r\n") == std::string_view::npos, "line end in the type");
    check(e.id.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos,
          "line end or NUL in the id");
    check(e.data.find('\r') == std::string_view::npos, "CR in the data");
    check(e.data.size() < limits_.max_event_bytes, "data over the event cap");
    // The padding after the data is readable and writable (ASan checks the bound).
    char* pad = const_cast<char*>(e.data.data()) + e.data.size();
    volatile char sum = 0;
    for (std::size_t i = 0; i < kSseDataPadding; ++i) sum = static_cast<char>(sum ^ pad[i]);
    std::memset(pad, 0x5A, kSseDataPadding);
    events_.push_back({std::string(e.type), std::string(e.data), std::string(e.id)});
    return stop_after_ == 0 || events_.size() < stop_after_;
  }

 private:
  std::vector<Event>& events_;
  std::size_t stop_after_;
  SseLimits limits_;
};

// splitmix64: small, and good enough to choose chunk sizes.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }

 private:
  std::uint64_t state_;
};

// Feeds `pieces` (each copied to its own exact-size heap block, so a read past a chunk is an
// ASan report), stopping at the first status that is not Ok, then finishes.
Outcome parse(SseParser& parser, const std::vector<std::string_view>& pieces,
              std::size_t stop_after, const SseLimits& limits) {
  Outcome out;
  Recorder sink(out.events, stop_after, limits);
  std::uint64_t fed = 0;
  for (std::string_view piece : pieces) {
    auto block = std::make_unique<char[]>(piece.size());
    if (!piece.empty()) std::memcpy(block.get(), piece.data(), piece.size());
    out.status = parser.feed(std::string_view(block.get(), piece.size()), sink);
    fed += piece.size();
    check(parser.bytes() == fed, "bytes() is not what was fed");
    if (out.status != SseParser::Status::Ok) break;
  }
  if (out.status == SseParser::Status::Failed) {
    check(parser.error().code == ErrorCode::BadResponse, "a failure that is not BadResponse");
    out.error = parser.error().message;
    // Failed sticks.
    std::vector<Event> none;
    Recorder more(none, 0, limits);
    check(parser.feed("data: x\n\n", more) == SseParser::Status::Failed, "Failed did not stick");
    check(none.empty(), "an event after Failed");
  }
  out.incomplete = parser.finish();
  out.retry = parser.retry_ms();
  return out;
}

std::vector<std::string_view> random_pieces(std::string_view s, Rng& rng, std::size_t max_chunk) {
  std::vector<std::string_view> pieces;
  std::size_t i = 0;
  while (i < s.size()) {
    // Now and then an empty piece; otherwise 1..max_chunk bytes, with 1 byte often.
    std::size_t n = 0;
    const std::size_t roll = rng.below(16);
    if (roll == 0) {
      n = 0;
    } else if (roll < 4) {
      n = 1;
    } else {
      n = 1 + rng.below(max_chunk);
    }
    if (n > s.size() - i) n = s.size() - i;
    pieces.push_back(s.substr(i, n));
    i += n;
  }
  return pieces;
}

void require_same(const Outcome& want, const Outcome& got, const char* how) {
  if (got == want) return;
  std::fprintf(stderr, "sse_fuzzer: %s differs from one piece\n", how);
  std::fprintf(stderr, "  one piece: status %d, %zu events, finish %d, error \"%s\"\n",
               static_cast<int>(want.status), want.events.size(), want.incomplete ? 1 : 0,
               want.error.c_str());
  std::fprintf(stderr, "  %s: status %d, %zu events, finish %d, error \"%s\"\n", how,
               static_cast<int>(got.status), got.events.size(), got.incomplete ? 1 : 0,
               got.error.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::uint8_t header[kHeader] = {};
  std::memcpy(header, data, size < kHeader ? size : kHeader);
  const std::string_view stream =
      size > kHeader
          ? std::string_view(reinterpret_cast<const char*>(data) + kHeader, size - kHeader)
          : std::string_view();
  const SseLimits limits = kLimits[header[0] & 3u];
  const std::size_t stop_after = (header[0] >> 2) & 3u;
  const std::size_t max_chunk = kMaxChunks[header[1] % std::size(kMaxChunks)];
  std::uint64_t seed = 0;
  for (std::size_t i = 2; i < kHeader; ++i) seed = (seed << 8) | header[i];
  Rng rng(seed);

  SseParser parser(limits);
  const Outcome want = parse(parser, {stream}, stop_after, limits);
  if (stop_after != 0) {
    check(want.events.size() <= stop_after, "events after the sink stopped");
    check((want.status == SseParser::Status::Stopped) == (want.events.size() == stop_after),
          "Stopped does not match the sink");
  } else {
    check(want.status != SseParser::Status::Stopped, "Stopped without the sink asking");
  }
  if (want.status == SseParser::Status::Failed) {
    check(want.error.find("GLMPROXY_SSE_MAX_") != std::string::npos, "an unnamed cap");
  }

  // Byte by byte, on the same parser after reset().
  std::vector<std::string_view> bytes;
  bytes.reserve(stream.size());
  for (std::size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
  parser.reset();
  require_same(want, parse(parser, bytes, stop_after, limits), "1-byte pieces");

  // Random pieces, on the same parser, then on a fresh one whose buffers come from a pool.
  parser.reset();
  require_same(want, parse(parser, random_pieces(stream, rng, max_chunk), stop_after, limits),
               "random pieces");
  BufferPool pool;
  SseParser pooled(limits, &pool);
  require_same(want,
               parse(pooled, random_pieces(stream, rng, 1 + rng.below(64)), stop_after, limits),
               "random pieces (pool)");
  return 0;
}
