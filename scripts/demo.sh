#!/usr/bin/env bash
# Installs dependencies, builds, and runs examples/chat (one completion: reply and usage),
# examples/stream (the same question streamed: tokens printed as they arrive), examples/tools (a
# tool-call loop: the model calls a local function and gets its result back) and examples/vision
# (one image by URL).
# With ZAI_API_KEY set it calls Z.AI (or ZAI_API_BASE); without it, it starts the bundled mock
# upstream on a free loopback port and talks to that.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/install-deps.sh"
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$(nproc 2>/dev/null || echo 2)" --target chat stream tools vision glmproxy-mock-upstream >/dev/null

if [[ -n "${ZAI_API_KEY:-}" ]]; then
  echo "demo: calling ${ZAI_API_BASE:-https://api.z.ai/api/paas/v4} with your ZAI_API_KEY"
  "$root/build/dev/examples/chat" "$@"
  echo "demo: the same, streamed"
  "$root/build/dev/examples/stream" "$@"
  echo "demo: a tool-call loop (get_weather runs here)"
  "$root/build/dev/examples/tools"
  echo "demo: an image by URL (VISION_MODEL, default glm-4.5v)"
  exec "$root/build/dev/examples/vision"
fi

log="$(mktemp)"
"$root/build/dev/mock/glmproxy-mock-upstream" --port 0 --reasoning "The user wants a greeting." \
  --stream-chunks 12 --stream-delay-ms 60 \
  --reply "Hello! I am the glmproxy mock upstream; set ZAI_API_KEY to talk to GLM." >"$log" 2>&1 &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
url="$(sed -n 's/^listening on //p' "$log")"
if [[ -z "$url" ]]; then
  echo "demo: the mock upstream did not start:" >&2
  cat "$log" >&2
  exit 1
fi
echo "demo: ZAI_API_KEY is not set, so this talks to the bundled mock upstream at $url"
ZAI_API_BASE="$url/api/paas/v4" "$root/build/dev/examples/chat" "$@"
echo "demo: the same, streamed (the mock paces its events 60 ms apart)"
ZAI_API_BASE="$url/api/paas/v4" "$root/build/dev/examples/stream" "$@"
echo "demo: a tool-call loop: the mock calls get_weather, which runs here, and reads its result"
ZAI_API_BASE="$url/api/paas/v4" "$root/build/dev/examples/tools"
echo "demo: an image by URL (the mock echoes the image parts it was sent)"
ZAI_API_BASE="$url/api/paas/v4" "$root/build/dev/examples/vision" https://example.test/cat.png
