#!/usr/bin/env bash
# examples/tools and examples/vision against the bundled mock upstream on a free loopback port:
# a tool loop (OpenAI protocol with GLM reasoning, Anthropic with signed thinking blocks) and an
# image by URL (both protocols). The mock answers a request with tools by calling the first
# tool, a tool result with "Tool result: <content>", and echoes image parts (docs/mock-upstream.md).
#
#   examples_test.sh <glmproxy-mock-upstream> <tools> <vision>
set -euo pipefail
mock="$1" tools="$2" vision="$3"

log="$(mktemp)" out="$(mktemp)"
"$mock" --port 0 --reasoning "The user wants the weather; call the tool." \
  --reply "Here is what I see." >"$log" 2>&1 &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null || true; rm -f "$log" "$out"' EXIT
for _ in $(seq 200); do grep -q listening "$log" && break; sleep 0.05; done
url="$(sed -n 's/^listening on //p' "$log")"
[[ -n "$url" ]] || { echo "the mock did not start:"; cat "$log"; exit 1; }
export ZAI_API_KEY=sk-examples-test ZAI_API_BASE="$url/api/paas/v4" \
  ANTHROPIC_API_BASE="$url/api/anthropic"

failures=0
# expect <what> <fixed string> ...: every string is a line of the last run's output.
expect() {
  local what="$1"; shift
  for line in "$@"; do
    if ! grep -qxF -- "$line" "$out"; then
      echo "FAIL $what: no line '$line' in:"; sed 's/^/  | /' "$out"; failures=$((failures + 1))
    fi
  done
}
run() { if ! "$@" >"$out" 2>&1; then echo "FAIL: $* exited non-zero:"; cat "$out"; failures=$((failures + 1)); fi; }

weather='{"city":"mock","forecast":"sunny","celsius":21}'
run "$tools"
expect "tools (OpenAI)" \
  "turn 1 reasoning: The user wants the weather; call the tool." \
  "turn 1 tool call: get_weather({\"city\":\"mock\"}) -> $weather" \
  "reply: Tool result: $weather" \
  "finish: stop after 2 turns"

run "$tools" --anthropic
expect "tools --anthropic" \
  "turn 1 thinking block: signed" \
  "turn 1 tool call: get_weather({\"city\":\"mock\"}) -> $weather" \
  "reply: Tool result: $weather" \
  "finish: end_turn after 2 turns"

run "$vision" https://example.test/cat.png
expect "vision (OpenAI)" "image: https://example.test/cat.png" \
  "reply: Here is what I see. [image: https://example.test/cat.png]"

run "$vision" --anthropic https://example.test/cat.png
expect "vision --anthropic" "reply: Here is what I see. [image: https://example.test/cat.png]"

if (( failures > 0 )); then echo "$failures example check(s) failed"; exit 1; fi
echo "examples: tools and vision answered as expected on both protocols"
