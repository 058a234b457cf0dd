#!/usr/bin/env bash
# Installs every Debian 12 package glmproxy needs to build, test and benchmark.
#   scripts/install-deps.sh          what the build and the test suite need
#   scripts/install-deps.sh --bench  also what the measurement scripts use (python3;
#                                    nginx, scripts/measure-mock.sh's reference, is in the list)
# Idempotent: when everything is present it only asks dpkg and returns.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config binutils
  libcurl4-openssl-dev   # transport
  libsimdjson-dev        # JSON parsing
  libfmt-dev             # formatting
  libxxhash-dev          # XXH3-128 cache keys (used header-only: XXH_INLINE_ALL)
  libhttp-parser-dev     # the mock upstream's HTTP/1.1 request parser
  zlib1g-dev             # gzip bodies in the hostile-upstream tests
  libssl-dev openssl     # the mock upstream's TLS mode; tests make certificates with the CLI
  nginx                  # HTTP/2 TLS front in tests/transport/tls_test.cpp; measure-mock.sh
  catch2                 # tests (2.13, single header)
  libbenchmark-dev       # Google Benchmark
  prometheus             # promtool: a test checks the Prometheus exposition with it
  libcpp-httplib-dev     # glmproxy::admin, the optional admin endpoint
  chromium               # a test loads the admin dashboard in headless Chromium
  curl wrk               # tests and measurements of the mock upstream
  clang libclang-rt-14-dev  # the SSE parser fuzzer (libFuzzer)
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3)      # turns benchmark JSON into docs (scripts/bench-complete.sh)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
