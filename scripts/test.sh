#!/usr/bin/env bash
# Installs dependencies, configures, builds and runs the whole CTest suite.
#   ./scripts/test.sh          the dev preset (RelWithDebInfo)
#   ./scripts/test.sh asan     AddressSanitizer + UndefinedBehaviorSanitizer
#   ./scripts/test.sh tsan     ThreadSanitizer
#   ./scripts/test.sh release  Release, with benchmarks built
# Exits non-zero on any failure.
set -euo pipefail

preset="${1:-dev}"
case "$preset" in
  dev|asan|tsan|release) ;;
  *) echo "usage: $0 [dev|asan|tsan|release]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/install-deps.sh"

jobs="$(nproc 2>/dev/null || echo 2)"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$jobs"
ctest --preset "$preset" -j "$jobs"
