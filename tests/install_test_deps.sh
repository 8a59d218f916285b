#!/usr/bin/env bash
# Everything the test suite drives for real: the Python test extras; Chromium (the MCP Apps views are
# rendered in it), an sshd (remote staging for training across machines) and Node (the Apps host page
# and the .mcpb packer) from the system's packages when missing; then the pinned npm packages.
# Without root or apt, a missing system package is reported and its tests skip, naming it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -e ".[test]"

missing=()
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server openssh-client)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "${missing[@]}" || { apt-get update -q && apt-get install -y -q "${missing[@]}"; }
    else
        echo "note: ${missing[*]} not installed (needs apt-get as root); the tests that need them will skip" >&2
    fi
fi

if command -v npm >/dev/null; then
    for folder in tests/apphost bundle; do
        if [ -f "$folder/package-lock.json" ]; then
            npm ci --prefix "$folder" --no-audit --no-fund --loglevel=error
        fi
    done
fi
