#!/usr/bin/env bash
# Loads /dashboard of a running application in headless Chromium and checks what it rendered:
# non-zero request counts, the cache hit rate, the pool, the slowest-requests table. Saves a
# screenshot next to the DOM dump.
#   dashboard_browser_test.sh DASHBOARD_APP CHROMIUM OUTPUT_DIR
set -euo pipefail
app="$1"
chromium="$2"
out="$3"
mkdir -p "$out"
rm -f "$out/dashboard.png" "$out/dashboard-dom.html"

coproc APP { exec "$app" 120 2>"$out/app-stderr.txt"; }
app_pid=$APP_PID
cleanup() { kill "$app_pid" 2>/dev/null || true; wait "$app_pid" 2>/dev/null || true; }
trap cleanup EXIT

line=""
if ! read -r -t 60 line <&"${APP[0]}"; then
  echo "the app did not print its URL within 60 s" >&2
  cat "$out/app-stderr.txt" >&2 || true
  exit 1
fi
url=$(echo "$line" | awk '{print $2}')
token=$(echo "$line" | awk '{print $4}')
page="$url/dashboard?token=$token"
echo "dashboard at $url/dashboard"

# Without the token the API refuses (the page itself is refused too).
status=$(curl -s -o /dev/null -w '%{http_code}' "$url/api/metrics/system")
if [[ "$status" != "401" ]]; then
  echo "expected 401 without the token, got $status" >&2
  exit 1
fi

# Each run gets a profile directory of its own: a second Chromium started on the profile of a
# first one still winding down hands itself over to that one (the process singleton) and hangs.
browser() {
  local profile="$out/chromium-profile-$1"
  shift
  rm -rf "$profile"
  timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --no-default-browser-check --disable-extensions --hide-scrollbars \
    --user-data-dir="$profile" --virtual-time-budget=4000 "$@"
}
rm -rf "$out"/chromium-profile*
browser dom --dump-dom "$page" >"$out/dashboard-dom.html" 2>"$out/chromium-stderr.txt" || {
  echo "chromium --dump-dom failed" >&2
  grep -v dbus "$out/chromium-stderr.txt" | tail -20 >&2
  exit 1
}

value_of() {  # the data-value a dashboard element was given by the page's script
  grep -o "id=\"$1\" data-value=\"[^\"]*\"" "$out/dashboard-dom.html" | head -1 | sed 's/.*data-value="\([^"]*\)"/\1/'
}
fail=0
check_positive() {
  local v
  v=$(value_of "$1")
  if [[ -z "$v" ]] || ! awk -v v="$v" 'BEGIN { exit !(v + 0 > 0) }'; then
    echo "dashboard: #$1 should be > 0, rendered '${v}'" >&2
    fail=1
  else
    echo "dashboard: #$1 = $v"
  fi
}
check_positive requests-total
check_positive requests-ok
check_positive requests-cache
check_positive requests-errors
check_positive cache-hit-rate
check_positive request-rate
check_positive latency-p99
check_positive pool-max
check_positive pool-opened
check_positive upstream-attempts
check_positive process-rss
grep -q 'data-loaded="true"' "$out/dashboard-dom.html" || { echo "dashboard: never loaded its data" >&2; fail=1; }
grep -q '>slow-102<' "$out/dashboard-dom.html" || { echo "dashboard: the slowest table lacks slow-102" >&2; fail=1; }
grep -q 'UpstreamError' "$out/dashboard-dom.html" || { echo "dashboard: errors by code lack UpstreamError" >&2; fail=1; }
if grep -q 'sk-dashboard-demo-key' "$out/dashboard-dom.html"; then
  echo "dashboard: the API key appears in the page" >&2
  fail=1
fi
if ((fail)); then
  echo "--- rendered DOM: $out/dashboard-dom.html" >&2
  exit 1
fi

shot() {
  browser "shot$1" --window-size=1280,1000 --screenshot="$out/dashboard.png" "$page" \
    >/dev/null 2>>"$out/chromium-stderr.txt"
}
# One retry: on a loaded machine (sanitizer builds, two cores) Chromium has been seen to stall.
shot 1 || shot 2 || {
  echo "chromium --screenshot failed twice" >&2
  grep -v dbus "$out/chromium-stderr.txt" | tail -20 >&2
  exit 1
}
[[ -s "$out/dashboard.png" ]] || { echo "no screenshot written" >&2; exit 1; }
echo "screenshot: $out/dashboard.png"
