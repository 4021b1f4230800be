#!/usr/bin/env bash
# Print the path of a usable `uv`, installing it from PyPI when the machine has none.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
if [ -x "$HOME/.local/bin/uv" ]; then echo "$HOME/.local/bin/uv"; exit 0; fi
echo "[bootstrap] installing uv from PyPI" >&2
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo -n"
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq python3 python3-pip python3-venv >&2
  fi
fi
python3 -m pip install -q --user uv >&2 2>/dev/null \
  || python3 -m pip install -q --user --break-system-packages uv >&2 2>/dev/null \
  || python3 -m pip install -q uv >&2
command -v uv 2>/dev/null || echo "$HOME/.local/bin/uv"
