// The text/event-stream parser against the WHATWG "Server-sent events" parsing rules: line ends,
// the BOM, fields, dispatch, the caps, and the property that how the bytes are cut into chunks
// never changes what comes out.

#include "protocol/sse.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

using glmproxy::ErrorCode;
using glmproxy::detail::BufferPool;
using glmproxy::detail::kSseDataPadding;
using glmproxy::detail::SseEvent;
using glmproxy::detail::SseLimits;
using glmproxy::detail::SseParser;
using glmproxy::detail::SseSink;
using Status = SseParser::Status;
using namespace std::string_literals;

namespace Catch {
template <>
struct StringMaker<SseParser::Status> {
  static std::string convert(SseParser::Status s) {
    switch (s) {
      case SseParser::Status::Ok:
        return "Ok";
      case SseParser::Status::Stopped:
        return "Stopped";
      case SseParser::Status::Failed:
        return "Failed";
    }
    return "?";
  }
};
}  // namespace Catch

namespace {

constexpr std::size_t kNoStop = std::numeric_limits<std::size_t>::max();
constexpr SseLimits kSmall{64, 256};

// An event copied out of the callback (the views die when it returns).
struct Event {
  std::string type;
  std::string data;
  std::string id;
  bool operator==(const Event&) const = default;
};

// Everything observable about one parse of one stream.
struct Outcome {
  std::vector<Event> events;
  Status status = Status::Ok;  // the first status that was not Ok, else Ok
  std::string error;           // error().message when Failed
  std::optional<ErrorCode> code;
  bool incomplete = false;  // finish()
  std::optional<std::uint64_t> retry;
  bool operator==(const Outcome&) const = default;
};

std::string escaped(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7F) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    } else {
      out += c;
    }
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const Event& e) {
  return os << "{type \"" << escaped(e.type) << "\", data \"" << escaped(e.data) << "\", id \""
            << escaped(e.id) << "\"}";
}

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "status " << Catch::StringMaker<Status>::convert(o.status);
  if (!o.error.empty()) os << " (" << o.error << ")";
  os << ", finish " << (o.incomplete ? "true" : "false") << ", retry ";
  if (o.retry) {
    os << *o.retry;
  } else {
    os << "none";
  }
  os << ", " << o.events.size() << " events";
  for (const Event& e : o.events) os << "\n  " << e;
  return os;
}

class Recorder final : public SseSink {
 public:
  explicit Recorder(std::size_t stop_after = kNoStop) : stop_after_(stop_after) {}
  bool on_sse_event(const SseEvent& e) override {
    events.push_back({std::string(e.type), std::string(e.data), std::string(e.id)});
    return events.size() < stop_after_;
  }
  std::vector<Event> events;

 private:
  std::size_t stop_after_;
};

struct Options {
  SseLimits limits{};
  std::size_t stop_after = kNoStop;
  BufferPool* pool = nullptr;
};

// Feeds `pieces` in order, each from its own exact-size heap block (so ASan sees any read past
// a chunk), stops at the first status that is not Ok, then calls finish().
Outcome run(const std::vector<std::string_view>& pieces, const Options& opt = {}) {
  SseParser parser(opt.limits, opt.pool);
  Recorder sink(opt.stop_after);
  Outcome out;
  for (std::string_view piece : pieces) {
    auto block = std::make_unique<char[]>(piece.size());
    if (!piece.empty()) std::memcpy(block.get(), piece.data(), piece.size());
    out.status = parser.feed({block.get(), piece.size()}, sink);
    if (out.status != Status::Ok) break;
  }
  if (out.status == Status::Failed) {
    out.error = parser.error().message;
    out.code = parser.error().code;
  }
  out.incomplete = parser.finish();
  out.retry = parser.retry_ms();
  out.events = std::move(sink.events);
  return out;
}

Outcome one_shot(std::string_view stream, const Options& opt = {}) { return run({stream}, opt); }

std::vector<std::string_view> chunks_of(std::string_view stream, std::size_t n) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < stream.size(); i += n) pieces.push_back(stream.substr(i, n));
  return pieces;
}

Outcome bytewise(std::string_view stream, const Options& opt = {}) {
  return run(chunks_of(stream, 1), opt);
}

Outcome split_at(std::string_view stream, std::size_t at, const Options& opt = {}) {
  return run({stream.substr(0, at), stream.substr(at)}, opt);
}

std::vector<Event> events_of(std::string_view stream) { return one_shot(stream).events; }

Event message(std::string data, std::string id = "") {
  return {"message", std::move(data), std::move(id)};
}

// Checks that every 2-piece split and the byte-at-a-time feed agree with the one-shot parse.
void check_split_invariant(std::string_view stream, const Options& opt = {}) {
  const Outcome want = one_shot(stream, opt);
  for (std::size_t at = 0; at <= stream.size(); ++at) {
    const Outcome got = split_at(stream, at, opt);
    if (got != want) {
      INFO("stream \"" << escaped(stream) << "\" split at " << at);
      REQUIRE(got == want);
    }
  }
  INFO("stream \"" << escaped(stream) << "\" fed byte by byte");
  REQUIRE(bytewise(stream, opt) == want);
}

}  // namespace

// --- Line ends --------------------------------------------------------------------------------

TEST_CASE("sse: LF ends a line") {
  CHECK(events_of("data: a\n\ndata: b\n\n") == std::vector<Event>{message("a"), message("b")});
}

TEST_CASE("sse: lone CR ends a line") {
  CHECK(events_of("data: a\r\rdata: b\rdata: c\r\r") ==
        std::vector<Event>{message("a"), message("b\nc")});
}

TEST_CASE("sse: CRLF ends a line") {
  CHECK(events_of("data: a\r\n\r\ndata: b\r\ndata: c\r\n\r\n") ==
        std::vector<Event>{message("a"), message("b\nc")});
}

TEST_CASE("sse: mixed line ends in one stream") {
  // LF, CR and CRLF in any order; "\n\r" is two line ends (an LF, then a CR).
  CHECK(events_of("data: a\rdata: b\r\ndata: c\n\r") == std::vector<Event>{message("a\nb\nc")});
  CHECK(events_of("data: a\n\rdata: b\r\n\ndata: c\r\r\ndata: d\n\r\n") ==
        std::vector<Event>{message("a"), message("b"), message("c"), message("d")});
}

TEST_CASE("sse: CR at the end of a chunk and LF at the start of the next are one line end") {
  // Were the LF an empty line, "a" would be dispatched alone and "b" would follow on its own.
  const std::vector<Event> one{message("a\nb")};
  CHECK(run({"data: a\r", "\ndata: b\n\n"}).events == one);
  CHECK(run({"data: a\r", "\n", "data: b\n\n"}).events == one);
  // Empty chunks between the CR and the LF change nothing.
  CHECK(run({"data: a\r", "", "", "\ndata: b\n\n"}).events == one);
  // A CR at a chunk end followed by something else than LF ends the line all the same.
  CHECK(run({"data: a\r", "data: b\n\n"}).events == one);
  // CR | CR is two line ends: the second one dispatches.
  CHECK(run({"data: a\r", "\r"}).events == std::vector<Event>{message("a")});
  // CR LF | LF: the LF in the second chunk is an empty line (the CRLF was complete).
  CHECK(run({"data: a\r\n", "\n"}).events == std::vector<Event>{message("a")});
  // CR | LF LF: the first LF finishes the CRLF, the second dispatches exactly once.
  const Outcome o = run({"data: a\r", "\n\n"});
  CHECK(o.events == std::vector<Event>{message("a")});
  CHECK_FALSE(o.incomplete);
  // The same with a dispatching CR at the chunk end: no event is lost or doubled.
  CHECK(run({"data: a\n\r", "\ndata: b\n\n"}).events ==
        std::vector<Event>{message("a"), message("b")});
}

// --- The byte order mark ----------------------------------------------------------------------

TEST_CASE("sse: a leading BOM is stripped") {
  const Outcome o = one_shot(
      "\xEF\xBB\xBF"
      "data: a\n\n");
  CHECK(o.events == std::vector<Event>{message("a")});
  CHECK_FALSE(o.incomplete);
  // A stream that is only a BOM is a complete, empty stream.
  CHECK(one_shot("\xEF\xBB\xBF") == Outcome{});
}

TEST_CASE("sse: a BOM split across chunks is stripped") {
  const std::vector<Event> want{message("a")};
  CHECK(run({"\xEF", "\xBB", "\xBF", "data: a\n\n"}).events == want);
  CHECK(run({"\xEF\xBB",
             "\xBF"
             "data: a\n\n"})
            .events == want);
  CHECK(run({"\xEF",
             "\xBB\xBF"
             "data: a\n\n"})
            .events == want);
  CHECK(run({"", "\xEF", "", "\xBB", "", "\xBF", "", "d", "ata: a\n\n"}).events == want);
  CHECK(bytewise("\xEF\xBB\xBF"
                 "data: a\n\n")
            .events == want);
}

TEST_CASE("sse: a second BOM is not stripped") {
  // The second BOM starts the field name, which is then no longer "data".
  CHECK(events_of("\xEF\xBB\xBF\xEF\xBB\xBF"
                  "data: a\n\n")
            .empty());
  CHECK(bytewise("\xEF\xBB\xBF\xEF\xBB\xBF"
                 "data: a\n\n")
            .events.empty());
  // Only the stream's start is checked: a BOM later on is content.
  CHECK(events_of("\xEF\xBB\xBF"
                  "data: \xEF\xBB\xBF"
                  "a\n\n") == std::vector<Event>{message("\xEF\xBB\xBF"
                                                         "a")});
  CHECK(events_of("data: a\n\n\xEF\xBB\xBF"
                  "data: b\n\n") == std::vector<Event>{message("a")});
}

TEST_CASE("sse: a partial BOM followed by other bytes keeps those bytes") {
  // "\xEF\xBB" + "data" is an unknown field name; had the bytes been dropped, "a" would come out.
  for (const char* stream : {"\xEF\xBB"
                             "data: a\n\ndata: b\n\n",
                             "\xEF"
                             "data: a\n\ndata: b\n\n",
                             "\xEF\xBB\xBE"
                             "data: a\n\ndata: b\n\n"}) {
    INFO(escaped(stream));
    CHECK(events_of(stream) == std::vector<Event>{message("b")});
    check_split_invariant(stream);
  }
  CHECK(run({"\xEF", "\xBB", "data: a\n\n"}).events.empty());
  CHECK(run({"\xEF\xBB", "\xEF\xBB\xBF", "\n", "data: a\n\n"}).events ==
        std::vector<Event>{message("a")});
  // The kept bytes are a line of their own: unterminated they are an incomplete line...
  CHECK(one_shot("\xEF\xBB"
                 "x")
            .incomplete);
  CHECK(run({"\xEF\xBB", "x"}).incomplete);
  // ...and so is a partial BOM at the end of the stream; a terminated one is a complete line.
  CHECK(one_shot("\xEF\xBB").incomplete);
  CHECK(run({"\xEF", "\xBB"}).incomplete);
  CHECK_FALSE(one_shot("\xEF\xBB\n").incomplete);
}

// --- Fields -----------------------------------------------------------------------------------

TEST_CASE("sse: comment lines are ignored") {
  CHECK(events_of(": hello\ndata: a\n: between\ndata: b\n:\n\n") ==
        std::vector<Event>{message("a\nb")});
  CHECK(events_of(":\n\n: x\n\n").empty());
  // A comment may look like a field.
  CHECK(events_of(":data: x\n\n").empty());
  CHECK(events_of(":event: x\ndata: a\n\n") == std::vector<Event>{message("a")});
}

TEST_CASE("sse: a field without a colon has an empty value") {
  CHECK(events_of("data\n\n") == std::vector<Event>{message("")});
  CHECK(events_of("data\ndata\n\n") == std::vector<Event>{message("\n")});
  CHECK(events_of("data\ndata: a\ndata\n\n") == std::vector<Event>{message("\na\n")});
  // An empty `event` is the default type.
  CHECK(events_of("event\ndata: a\n\n") == std::vector<Event>{message("a")});
  // An empty `id` clears the last event ID.
  CHECK(events_of("id: 1\ndata: a\n\nid\ndata: b\n\n") ==
        std::vector<Event>{message("a", "1"), message("b")});
  // The whole line is the name: "data " is not "data".
  CHECK(events_of("data \n\n").empty());
}

TEST_CASE("sse: exactly one space after the colon is removed") {
  CHECK(events_of("data:a\n\n") == std::vector<Event>{message("a")});
  CHECK(events_of("data: a\n\n") == std::vector<Event>{message("a")});
  CHECK(events_of("data:  a\n\n") == std::vector<Event>{message(" a")});
  CHECK(events_of("data:   a\n\n") == std::vector<Event>{message("  a")});
  CHECK(events_of("data:\ta\n\n") == std::vector<Event>{message("\ta")});
  CHECK(events_of("data: a \n\n") == std::vector<Event>{message("a ")});
  CHECK(events_of("data: \n\n") == std::vector<Event>{message("")});
  CHECK(events_of("data:  \n\n") == std::vector<Event>{message(" ")});
  // Only the first colon separates name and value.
  CHECK(events_of("data: a: b\n\n") == std::vector<Event>{message("a: b")});
  CHECK(events_of("data::a\n\n") == std::vector<Event>{message(":a")});
  CHECK(events_of("event:  x\ndata\n\n") == std::vector<Event>{{" x", "", ""}});
  CHECK(events_of("id:  7\ndata\n\n") == std::vector<Event>{message("", " 7")});
}

TEST_CASE("sse: multi-line data is joined with LF") {
  CHECK(events_of("data: a\ndata: b\ndata: c\n\n") == std::vector<Event>{message("a\nb\nc")});
  CHECK(events_of("data: a\ndata:\ndata: b\n\n") == std::vector<Event>{message("a\n\nb")});
  CHECK(events_of("data:\ndata:\n\n") == std::vector<Event>{message("\n")});
  // Other fields between data lines do not break the event.
  CHECK(events_of("data: a\nevent: t\n: c\nid: 1\ndata: b\n\n") ==
        std::vector<Event>{{"t", "a\nb", "1"}});
}

TEST_CASE("sse: event sets the type, which is reset after dispatch") {
  CHECK(events_of("event: add\ndata: 1\n\ndata: 2\n\n") ==
        std::vector<Event>{{"add", "1", ""}, message("2")});
  CHECK(events_of("event: a\nevent: b\ndata: x\n\n") == std::vector<Event>{{"b", "x", ""}});
  CHECK(events_of("event: a\ndata: x\nevent: b\n\n") == std::vector<Event>{{"b", "x", ""}});
  CHECK(events_of("event:\ndata: x\n\n") == std::vector<Event>{message("x")});
  CHECK(events_of("event: message\ndata: x\n\n") == std::vector<Event>{message("x")});
}

TEST_CASE("sse: id persists across events") {
  CHECK(events_of("id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\ndata: d\n\n") ==
        std::vector<Event>{message("a", "1"), message("b", "1"), message("c", "2"),
                           message("d", "2")});
  // An id in an event that is not dispatched still sets the last event ID.
  CHECK(events_of("id: 9\n\ndata: a\n\n") == std::vector<Event>{message("a", "9")});
  // An id after the data lines counts for that event.
  CHECK(events_of("data: a\nid: 3\n\n") == std::vector<Event>{message("a", "3")});
}

TEST_CASE("sse: an id containing NUL is ignored") {
  CHECK(events_of("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"s) ==
        std::vector<Event>{message("a", "1"), message("b", "1")});
  CHECK(events_of("id: 1\nid: \0\ndata: a\n\n"s) == std::vector<Event>{message("a", "1")});
  CHECK(events_of("id: 1\nid:\0\ndata: a\n\n"s) == std::vector<Event>{message("a", "1")});
  // NUL elsewhere is plain content.
  CHECK(events_of("event: t\0u\ndata: a\0b\n\n"s) == std::vector<Event>{{"t\0u"s, "a\0b"s, ""}});
}

TEST_CASE("sse: retry with digits only sets retry_ms") {
  CHECK_FALSE(one_shot("data: a\n\n").retry.has_value());
  const Outcome o = one_shot("retry: 3000\n");
  CHECK(o.events.empty());
  CHECK(o.retry == std::optional<std::uint64_t>(3000));
  CHECK(one_shot("retry: 1000\nretry: 2000\n").retry == std::optional<std::uint64_t>(2000));
  CHECK(one_shot("retry: 0\n").retry == std::optional<std::uint64_t>(0));
  CHECK(one_shot("retry:15\n").retry == std::optional<std::uint64_t>(15));
  CHECK(one_shot("retry: 007\n").retry == std::optional<std::uint64_t>(7));
  // retry does not make an event, nor stop one.
  CHECK(one_shot("data: a\nretry: 5\n\n").events == std::vector<Event>{message("a")});
  // Far too large: saturates rather than wrapping around.
  CHECK(one_shot("retry: 99999999999999999999999999\n").retry ==
        std::optional<std::uint64_t>(std::numeric_limits<std::uint64_t>::max()));
  CHECK(one_shot("retry: 18446744073709551615\n").retry ==
        std::optional<std::uint64_t>(std::numeric_limits<std::uint64_t>::max()));
}

TEST_CASE("sse: retry with anything but digits is ignored") {
  for (const char* junk :
       {"retry: 12a\n", "retry: -1\n", "retry: +5\n", "retry: 1.5\n", "retry: \n", "retry:\n",
        "retry\n", "retry:  5\n", "retry: 5 \n", "retry: 1e3\n", "retry: \xEF\xBC\x95\n"}) {
    INFO(escaped(junk));
    CHECK(one_shot(std::string("retry: 1000\n") + junk).retry ==
          std::optional<std::uint64_t>(1000));
    CHECK_FALSE(one_shot(junk).retry.has_value());
  }
}

TEST_CASE("sse: unknown fields are ignored") {
  const Outcome o = one_shot(
      "foo: bar\nDATA: x\nData: y\ndata : z\n data: w\nEvent: e\nID: i\nRETRY: 5\n"
      "datas: v\nevents: t\nretry2: 5\n\xEF\xBB\xBF"
      "data: u\ndata: ok\n\n");
  CHECK(o.events == std::vector<Event>{message("ok")});
  CHECK_FALSE(o.retry.has_value());
  // An event with only unknown fields is not dispatched.
  CHECK(events_of("foo: bar\n\n").empty());
}

// --- Dispatch ---------------------------------------------------------------------------------

TEST_CASE("sse: an event with no data lines is not dispatched") {
  CHECK(events_of("event: ping\n\n").empty());
  // ...and its type is forgotten.
  CHECK(events_of("event: ping\n\ndata: a\n\n") == std::vector<Event>{message("a")});
  CHECK(events_of("id: 7\nevent: x\nretry: 5\n\n\n\n").empty());
  CHECK(events_of("\n\n\r\n\r\r").empty());
}

TEST_CASE("sse: empty data dispatches an event with empty data") {
  CHECK(events_of("data:\n\n") == std::vector<Event>{message("")});
  CHECK(events_of("data\n\n") == std::vector<Event>{message("")});
  CHECK(events_of("data:\n\ndata:\n\n") == std::vector<Event>{message(""), message("")});
  CHECK(events_of("event: e\ndata:\r\r") == std::vector<Event>{{"e", "", ""}});
}

TEST_CASE("sse: an incomplete event at the end of the stream is discarded") {
  struct Tail {
    const char* stream;
    std::size_t events;
    bool incomplete;
  };
  for (const Tail& t : {
           Tail{"", 0, false},
           Tail{"data: a\n\n", 1, false},
           Tail{"data: a\r\r", 1, false},
           Tail{"data: a\r\n\r\n", 1, false},
           Tail{"data: a\n\ndata: b\n", 1, true},  // data, no blank line
           Tail{"data: a\n\ndata: b", 1, true},    // a partial line
           Tail{"data: a\n\ndata: b\r", 1, true},  // the line ended, the event did not
           Tail{"data: a\n\n: comm", 1, true},     // a partial comment line
           Tail{"data: a\n\nd", 1, true},
           Tail{"data: a\n\n\n\n", 1, false},
           Tail{"data: a\n\n: comment\n", 1, false},
       }) {
    INFO(escaped(t.stream));
    const Outcome o = one_shot(t.stream);
    CHECK(o.events.size() == t.events);
    CHECK(o.incomplete == t.incomplete);
    CHECK(bytewise(t.stream) == o);
  }
  // finish() discards: a second call has nothing left.
  SseParser parser;
  Recorder sink;
  REQUIRE(parser.feed("data: a\n", sink) == Status::Ok);
  CHECK(parser.finish());
  CHECK_FALSE(parser.finish());
  CHECK(sink.events.empty());
}

TEST_CASE("sse: events split at any byte come out the same") {
  const std::string stream =
      "\xEF\xBB\xBF"
      ": hi\r\nid: 1\revent: a\ndata: x\r\ndata:  y\r\n\r\ndata\n\rretry: 10\n"
      "data: z\r\r\ndata: tail";
  const Outcome want = one_shot(stream);
  REQUIRE(want.events ==
          std::vector<Event>{{"a", "x\n y", "1"}, message("", "1"), message("z", "1")});
  REQUIRE(want.incomplete);
  REQUIRE(want.retry == std::optional<std::uint64_t>(10));
  // Every split into three pieces (two cuts), empty pieces included.
  const std::string_view s = stream;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    for (std::size_t j = i; j <= s.size(); ++j) {
      const Outcome got = run({s.substr(0, i), s.substr(i, j - i), s.substr(j)});
      if (got != want) {
        INFO("cut at " << i << " and " << j);
        REQUIRE(got == want);
      }
    }
  }
  for (std::size_t n = 1; n <= s.size(); ++n) {
    INFO("chunks of " << n);
    REQUIRE(run(chunks_of(s, n)) == want);
  }
}

// --- Caps -------------------------------------------------------------------------------------

TEST_CASE("sse: a line longer than max_line_bytes fails with BadResponse") {
  const Options opt{SseLimits{16, 1024}};
  // 16 bytes is allowed; the line end does not count.
  CHECK(one_shot("data: 0123456789\n\n", opt).events == std::vector<Event>{message("0123456789")});
  CHECK(one_shot("data: 0123456789\r\n\r\n", opt).status == Status::Ok);
  for (const char* stream : {"data: a\n\ndata: 0123456789a\n\n", "data: a\n\n:0123456789abcdef\n",
                             "data: a\n\n0123456789abcdefg\r", "data: a\n\ndata: 0123456789a"}) {
    INFO(escaped(stream));
    const Outcome o = one_shot(stream, opt);
    CHECK(o.status == Status::Failed);
    CHECK(o.code == ErrorCode::BadResponse);
    CHECK_THAT(o.error, Catch::Contains("GLMPROXY_SSE_MAX_LINE_BYTES") && Catch::Contains("16"));
    // What came before the long line was delivered.
    CHECK(o.events == std::vector<Event>{message("a")});
  }
}

TEST_CASE("sse: a long line split over many chunks fails too") {
  const SseLimits limits{64, 1024};
  const std::string line = "data: " + std::string(200, 'x');
  for (std::size_t n : {1u, 2u, 7u, 63u, 64u, 65u}) {
    INFO("chunks of " << n);
    SseParser parser(limits);
    Recorder sink;
    std::size_t fed = 0;
    std::size_t last = 0;
    Status status = Status::Ok;
    for (std::string_view piece : chunks_of(line, n)) {
      status = parser.feed(piece, sink);
      fed += piece.size();
      last = piece.size();
      if (status != Status::Ok) break;
    }
    CHECK(status == Status::Failed);
    CHECK(parser.error().code == ErrorCode::BadResponse);
    CHECK_THAT(parser.error().message, Catch::Contains("GLMPROXY_SSE_MAX_LINE_BYTES"));
    // It fails with the chunk that passes the cap, without waiting for the line's end.
    CHECK(fed > 64);
    CHECK(fed - last <= 64);
  }
  // Exactly at the cap, byte by byte: fine.
  const std::string fits = "data: " + std::string(58, 'x') + "\r\n\r\n";
  const Outcome o = bytewise(fits, {limits});
  CHECK(o.status == Status::Ok);
  CHECK(o.events == std::vector<Event>{message(std::string(58, 'x'))});
}

TEST_CASE("sse: an event larger than max_event_bytes fails with BadResponse") {
  const Options opt{SseLimits{64, 16}};
  // The data and its LFs count: 15 bytes + LF fit in 16.
  CHECK(one_shot("data: 0123456789abcde\n\n", opt).status == Status::Ok);
  CHECK(one_shot("data: 1234567\ndata: 1234567\n\n", opt).status == Status::Ok);
  // The cap is per event.
  std::string many;
  for (int i = 0; i < 20; ++i) many += "data: 0123456789abcde\n\n";
  CHECK(one_shot(many, opt).events.size() == 20);
  for (const char* stream : {"data: a\n\ndata: 0123456789abcdef\n\n",
                             "data: a\n\ndata: 1234567\ndata: 1234567\ndata:\n\n",
                             "data: a\n\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n"
                             "data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n"}) {
    INFO(escaped(stream));
    const Outcome o = one_shot(stream, opt);
    CHECK(o.status == Status::Failed);
    CHECK(o.code == ErrorCode::BadResponse);
    CHECK_THAT(o.error, Catch::Contains("GLMPROXY_SSE_MAX_EVENT_BYTES") && Catch::Contains("16"));
    CHECK(o.events == std::vector<Event>{message("a")});
    CHECK(bytewise(stream, opt) == o);
    check_split_invariant(stream, opt);
  }
}

TEST_CASE("sse: after Failed every feed returns Failed") {
  SseParser parser(SseLimits{8, 64});
  Recorder sink;
  REQUIRE(parser.feed("data: a\n\ndata: too long\n", sink) == Status::Failed);
  const std::string first = parser.error().message;
  CHECK(parser.feed("", sink) == Status::Failed);
  CHECK(parser.feed("\n\n", sink) == Status::Failed);
  CHECK(parser.feed("data: b\n\n", sink) == Status::Failed);
  CHECK(parser.feed("\xEF\xBB\xBF"
                    "data: c\n\n",
                    sink) == Status::Failed);
  CHECK(parser.error().message == first);
  CHECK(sink.events == std::vector<Event>{message("a")});
}

TEST_CASE("sse: finish() after Failed does not depend on how the stream was cut") {
  // A line may pass the cap within one chunk, or after its start was kept from an earlier
  // chunk; an event may pass its cap with data pending. Either way the failed event is gone.
  const Options opt{SseLimits{8, 16}};
  for (const char* stream :
       {"data: a\n\ndata: 0123456789\n", "data: a\n\n0123456789",
        "\xEF\xBB"
        "0123456789\n",
        "data: a\n\ndata: xx\ndata: xx\ndata: xx\ndata: xx\ndata: xx\ndata: xx\n"}) {
    INFO(escaped(stream));
    const Outcome o = one_shot(stream, opt);
    CHECK(o.status == Status::Failed);
    CHECK_FALSE(o.incomplete);
    check_split_invariant(stream, opt);
  }
  CHECK_FALSE(run({"data: a\n\ndata: 01", "23456789\n"}, opt).incomplete);
}

TEST_CASE("sse: a sink returning false stops parsing") {
  {
    const Outcome o = one_shot("data: a\n\ndata: b\n\ndata: c\n\n", {SseLimits{}, 1});
    CHECK(o.status == Status::Stopped);
    CHECK(o.events == std::vector<Event>{message("a")});
    CHECK_FALSE(o.incomplete);
  }
  {
    // The rest of the chunk is not parsed: a retry after the stop is not seen.
    const Outcome o = one_shot("data: a\n\nretry: 5\n", {SseLimits{}, 1});
    CHECK(o.status == Status::Stopped);
    CHECK_FALSE(o.retry.has_value());
  }
  {
    // Stopping at a later event in a later chunk.
    const Outcome o = run({"data: a\n\nda", "ta: b\n", "\ndata: c\n\n"}, {SseLimits{}, 2});
    CHECK(o.status == Status::Stopped);
    CHECK(o.events == std::vector<Event>{message("a"), message("b")});
  }
  {
    // The dispatching line end at a chunk's last byte, CR included.
    const Outcome o = run({"data: a\r\r", "\ndata: b\n\n"}, {SseLimits{}, 1});
    CHECK(o.status == Status::Stopped);
    CHECK(o.events == std::vector<Event>{message("a")});
  }
}

// --- State --------------------------------------------------------------------------------------

TEST_CASE("sse: reset starts a new stream") {
  SseParser parser(SseLimits{32, 64});
  Recorder sink;
  REQUIRE(parser.feed("\xEF\xBB\xBF"
                      "id: 1\nretry: 5\nevent: t\ndata: partial\ndata: more",
                      sink) == Status::Ok);
  parser.reset();
  CHECK_FALSE(parser.retry_ms().has_value());
  CHECK(parser.bytes() == 0);
  // The BOM check runs again; the id, type and data of the old stream are gone.
  REQUIRE(parser.feed("\xEF\xBB\xBF"
                      "data: b\n\n",
                      sink) == Status::Ok);
  CHECK(sink.events == std::vector<Event>{message("b")});
  CHECK_FALSE(parser.finish());
  // reset() also clears a failure.
  REQUIRE(parser.feed("data: " + std::string(40, 'x') + "\n", sink) == Status::Failed);
  parser.reset();
  CHECK(parser.feed("data: c\n\n", sink) == Status::Ok);
  CHECK(sink.events == std::vector<Event>{message("b"), message("c")});
  // A CR at the end of the old stream does not eat an LF at the start of the new one.
  REQUIRE(parser.feed("data: d\r", sink) == Status::Ok);
  parser.reset();
  CHECK(parser.feed("\ndata: e\n\n", sink) == Status::Ok);
  CHECK(sink.events == std::vector<Event>{message("b"), message("c"), message("e")});
}

TEST_CASE("sse: bytes counts what was fed") {
  SseParser parser;
  Recorder sink;
  CHECK(parser.bytes() == 0);
  REQUIRE(parser.feed("\xEF\xBB", sink) == Status::Ok);
  REQUIRE(parser.feed("\xBF"
                      "data: a\n",
                      sink) == Status::Ok);
  REQUIRE(parser.feed("", sink) == Status::Ok);
  REQUIRE(parser.feed("\n", sink) == Status::Ok);
  CHECK(parser.bytes() == 12);
}

TEST_CASE("sse: event data is followed by writable padding") {
  // The sink may read and overwrite kSseDataPadding bytes past the data (ASan checks the bound).
  class Scribbler final : public SseSink {
   public:
    bool on_sse_event(const SseEvent& e) override {
      char* p = const_cast<char*>(e.data.data()) + e.data.size();
      std::memset(p, 'P', kSseDataPadding);
      seen.emplace_back(e.data);
      return true;
    }
    std::vector<std::string> seen;
  };
  BufferPool pool;
  for (BufferPool* p : {static_cast<BufferPool*>(nullptr), &pool}) {
    SseParser parser({}, p);
    Scribbler sink;
    const std::string big(5000, 'b');
    REQUIRE(parser.feed("data:\n\ndata: a\n\ndata: " + big + "\n\ndata: c\n\n", sink) ==
            Status::Ok);
    CHECK(sink.seen == std::vector<std::string>{"", "a", big, "c"});
  }
}

TEST_CASE("sse: a buffer pool gives the same events and gets its blocks back") {
  // Lines and events that grow through every tier and past the top one.
  std::string stream = "\xEF\xBB\xBF";
  for (std::size_t n : {10u, 3000u, 5000u, 20000u, 70000u, 100u}) {
    stream += "id: " + std::to_string(n) + "\ndata: " + std::string(n, 'd') +
              "\ndata: " + std::string(n / 2, 'e') + "\n\n";
  }
  const Outcome want = one_shot(stream);
  REQUIRE(want.events.size() == 6);
  BufferPool pool;
  CHECK(one_shot(stream, {SseLimits{}, kNoStop, &pool}) == want);
  CHECK(run(chunks_of(stream, 1000), {SseLimits{}, kNoStop, &pool}) == want);
  CHECK(run(chunks_of(stream, 4096), {SseLimits{}, kNoStop, &pool}) == want);
  CHECK(pool.stats().in_use() == 0);
}

// --- The property: chunking never matters -------------------------------------------------------

namespace {

struct Case {
  const char* name;
  std::string stream;
  SseLimits limits;
  std::size_t stop_after;
  // The one-shot parse, checked first so the corpus cannot silently go stale.
  std::size_t events;
  Status status;
  bool incomplete;
};

std::vector<Case> corpus() {
  const std::string x60(60, 'x');
  std::vector<Case> c;
  c.push_back({"openai",
               "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
               "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
               "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
               "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
               "data: [DONE]\n\n",
               {},
               kNoStop,
               5,
               Status::Ok,
               false});
  c.push_back({"openai crlf keep-alive",
               ": keep-alive\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n"
               ": keep-alive\r\n\r\ndata: {\"choices\":[]}\r\n\r\ndata: [DONE]\r\n\r\n",
               {},
               kNoStop,
               3,
               Status::Ok,
               false});
  c.push_back({"anthropic",
               "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
               "\"msg_1\"}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start"
               "\",\"index\":0}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n"
               "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":"
               "{\"text\":\"Hi\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
               {},
               kNoStop,
               5,
               Status::Ok,
               false});
  c.push_back({"anthropic crlf stopped",
               "event: message_start\r\ndata: {}\r\n\r\nevent: content_block_delta\r\n"
               "data: {\"delta\":\"x\"}\r\n\r\nevent: message_stop\r\ndata: {}\r\n\r\n",
               {},
               2,
               2,
               Status::Stopped,
               false});
  c.push_back({"cr only",
               "data: a\rdata: b\r\revent: x\rdata: c\r\r\r\rid: 4\rdata: d\r\r",
               {},
               kNoStop,
               3,
               Status::Ok,
               false});
  c.push_back({"mixed line ends",
               "data: a\r\ndata: b\n\r\ndata: c\r\r\n\ndata: d\n\r\revent: e\r\ndata\n\n",
               {},
               kNoStop,
               4,
               Status::Ok,
               false});
  c.push_back({"bom",
               "\xEF\xBB\xBF"
               "data: a\n\n\xEF\xBB\xBF"
               "data: no\n\ndata: b\n\n",
               {},
               kNoStop,
               2,
               Status::Ok,
               false});
  c.push_back({"partial bom",
               "\xEF\xBB"
               "data: no\n\ndata: b\r\n\r\n",
               {},
               kNoStop,
               1,
               Status::Ok,
               false});
  c.push_back({"only a partial bom", "\xEF\xBB", {}, kNoStop, 0, Status::Ok, true});
  c.push_back({"empty", "", {}, kNoStop, 0, Status::Ok, false});
  c.push_back(
      {"comments", ":\n: a\ndata: x\n:data: y\n: z\r\n\r\n:", {}, kNoStop, 1, Status::Ok, true});
  c.push_back({"multi-line data",
               "data\ndata:\ndata: a\ndata:  b\ndata:c\n\ndata:\n\n",
               {},
               kNoStop,
               2,
               Status::Ok,
               false});
  c.push_back({"ids",
               "id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid\ndata: d\n\n"s,
               {},
               kNoStop,
               4,
               Status::Ok,
               false});
  c.push_back({"retry",
               "retry: 100\ndata: a\n\nretry: 2x\nretry: 300\nretry: -4\n\n",
               {},
               kNoStop,
               1,
               Status::Ok,
               false});
  c.push_back({"no-data events",
               "event: ping\n\nid: 5\nevent: t\n\n\n\ndata: a\n\n",
               {},
               kNoStop,
               1,
               Status::Ok,
               false});
  c.push_back(
      {"unterminated event", "data: a\n\ndata: b\ndata: c", {}, kNoStop, 1, Status::Ok, true});
  c.push_back({"unterminated after cr", "data: a\r\rdata: b\r", {}, kNoStop, 1, Status::Ok, true});
  c.push_back({"line at the cap", "data: " + std::string(58, 'x') + "\r\n\r\n", kSmall, kNoStop, 1,
               Status::Ok, false});
  c.push_back({"line over the cap",
               "data: a\n\ndata: " + x60 + "\ndata: " + std::string(59, 'y') + "\n\n", kSmall,
               kNoStop, 1, Status::Failed, false});
  c.push_back({"comment over the cap", "data: a\n\n:" + std::string(70, 'c') + "\r\r", kSmall,
               kNoStop, 1, Status::Failed, false});
  c.push_back({"unterminated line over the cap", "data: a\r\r" + std::string(100, 'z'), kSmall,
               kNoStop, 1, Status::Failed, false});
  c.push_back({"partial bom over the cap", "\xEF\xBB" + std::string(63, 'q') + "\n", kSmall,
               kNoStop, 0, Status::Failed, false});
  c.push_back({"event at the cap",
               "data: " + std::string(58, 'a') + "\ndata: " + std::string(58, 'b') +
                   "\ndata: " + std::string(58, 'c') + "\ndata: " + std::string(58, 'd') +
                   "\ndata: " + std::string(19, 'e') + "\n\n",
               kSmall, kNoStop, 1, Status::Ok, false});
  std::string over_event = "data: a\n\n";
  for (int i = 0; i < 6; ++i) over_event += "data: " + std::string(50, 'o') + "\n";
  over_event += "\n";
  c.push_back({"event over the cap", over_event, kSmall, kNoStop, 1, Status::Failed, false});
  c.push_back({"stopped at the first", "data: a\n\ndata: b\n\n", {}, 1, 1, Status::Stopped, false});
  return c;
}

}  // namespace

TEST_CASE("sse: every split of the corpus gives the one-shot result") {
  const std::vector<Case> cases = corpus();
  REQUIRE(cases.size() >= 15);
  BufferPool pool;
  for (const Case& c : cases) {
    INFO("case \"" << c.name << "\"");
    const Options opt{c.limits, c.stop_after};
    const Outcome want = one_shot(c.stream, opt);
    INFO("one-shot: " << want);
    REQUIRE(want.events.size() == c.events);
    REQUIRE(want.status == c.status);
    REQUIRE(want.incomplete == c.incomplete);
    if (want.status == Status::Failed) REQUIRE(want.code == ErrorCode::BadResponse);
    check_split_invariant(c.stream, opt);
    REQUIRE(bytewise(c.stream, {c.limits, c.stop_after, &pool}) == want);
  }
}

// --- Large inputs -------------------------------------------------------------------------------

namespace {

class Counter final : public SseSink {
 public:
  explicit Counter(char fill) : fill_(fill) {}
  bool on_sse_event(const SseEvent& e) override {
    ++count;
    size += e.data.size();
    if (e.type != "message" || e.data.find_first_not_of(fill_) != std::string_view::npos) ++bad;
    return true;
  }
  std::size_t count = 0;
  std::size_t size = 0;
  std::size_t bad = 0;

 private:
  char fill_;
};

Status feed_all(SseParser& parser, SseSink& sink, std::string_view stream, std::size_t chunk) {
  Status status = Status::Ok;
  for (std::size_t i = 0; i < stream.size() && status == Status::Ok; i += chunk) {
    status = parser.feed(stream.substr(i, chunk), sink);
  }
  return status;
}

}  // namespace

TEST_CASE("sse: large inputs parse completely") {
  // These would time out (not fail an assertion) if a parser rescanned bytes per line or per
  // chunk: 4 MiB of CR-only lines, with no LF to find, and one 4 MiB line fed a byte at a time.
  constexpr std::size_t kMiB = 1u << 20;
  SECTION("CR-only short lines") {
    const std::string_view line = "data: x\r\r";
    const std::size_t n = 4 * kMiB / line.size();
    std::string stream;
    stream.reserve(n * line.size());
    for (std::size_t i = 0; i < n; ++i) stream += line;
    for (std::size_t chunk : {stream.size(), std::size_t{64 * 1024}, std::size_t{4099}}) {
      INFO("chunks of " << chunk);
      SseParser parser;
      Counter sink('x');
      CHECK(feed_all(parser, sink, stream, chunk) == Status::Ok);
      CHECK(sink.count == n);
      CHECK(sink.bad == 0);
      CHECK_FALSE(parser.finish());
    }
  }
  SECTION("one 4 MiB data line") {
    const std::string stream = "data: " + std::string(4 * kMiB, 'a') + "\n\n";
    for (std::size_t chunk : {std::size_t{64 * 1024}, std::size_t{1}}) {
      INFO("chunks of " << chunk);
      BufferPool pool;
      SseParser parser(SseLimits{8 * kMiB, 8 * kMiB}, &pool);
      Counter sink('a');
      CHECK(feed_all(parser, sink, stream, chunk) == Status::Ok);
      CHECK(sink.count == 1);
      CHECK(sink.size == 4 * kMiB);
      CHECK(sink.bad == 0);
      CHECK_FALSE(parser.finish());
    }
    // The default 1 MiB line cap turns it down.
    SseParser parser;
    Counter sink('a');
    CHECK(feed_all(parser, sink, stream, 64 * 1024) == Status::Failed);
    CHECK(sink.count == 0);
  }
  SECTION("many events in one chunk") {
    std::string stream;
    const std::size_t n = 200000;
    for (std::size_t i = 0; i < n; ++i) stream += "id: 1\r\nevent: message\r\ndata: z\r\n\r\n";
    SseParser parser;
    Counter sink('z');
    CHECK(parser.feed(stream, sink) == Status::Ok);
    CHECK(sink.count == n);
    CHECK(sink.bad == 0);
  }
}
