#!/usr/bin/env bash
# Install the system programs a make target starts, when they are missing (Debian's apt).
#   scripts/system-packages.sh chromium redis-server
# - chromium: the browser tests (tests/ui) drive Debian's chromium through Playwright
#   (Playwright's own browser download cannot work on these machines);
# - redis-server: the Celery broker of `signals run --executor celery` and the scale-out test.
# Run as root, or with sudo available; elsewhere it says what to install and fails.
set -euo pipefail
missing=()
for program in "$@"; do
    command -v "$program" >/dev/null 2>&1 || missing+=("$program")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${missing[*]} (no apt-get here: install them with your system's packages)" >&2
    exit 1
fi
run=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        run=(sudo)
    else
        echo "missing: ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi
echo "installing ${missing[*]} (apt-get) …" >&2
"${run[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
