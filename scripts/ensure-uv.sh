#!/usr/bin/env bash
# Print the path of a usable `uv` on stdout (nothing else goes to stdout), installing it when the machine has none.
#
# Looks on PATH, in ~/.local/bin and ~/.cargo/bin (where uv's own installers put it), then in .infra/uv of this
# checkout. When none is there it installs uv from PyPI into .infra/uv, a virtualenv of this checkout's own, so
# the system Python is never touched (no --user, no --break-system-packages). Only when Python's venv module is
# missing (Debian splits it into python3-venv) does it apt-get that one package, without recommends.
# On failure it says why on stderr, prints nothing on stdout and exits non-zero; the Makefile stops on that.
set -euo pipefail

UV_VERSION="${SMARTPOS_UV_VERSION:-0.13.9}"  # the version uv.lock is written with
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.infra/uv"
wrapper="$root/scripts/uv"

say() { echo "[bootstrap] $*" >&2; }
fail() {
  say "$*"
  say "could not install uv; install it yourself (e.g. 'pipx install uv') and put it on PATH"
  exit 1
}

usable() {  # an executable uv that runs, and is not our own scripts/uv wrapper (which would call us again)
  [ -n "$1" ] && [ -x "$1" ] && [ "$(readlink -f "$1")" != "$(readlink -f "$wrapper")" ] && "$1" --version >/dev/null 2>&1
}

for candidate in "$(command -v uv 2>/dev/null || true)" "$HOME/.local/bin/uv" "$HOME/.cargo/bin/uv" "$venv/bin/uv"; do
  if usable "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

say "no uv found: installing uv $UV_VERSION from PyPI into .infra/uv (a virtualenv of this checkout)"
command -v python3 >/dev/null 2>&1 || fail "python3 is missing: install it first (apt-get install python3 python3-venv)"

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "Python's venv module is missing and there is no apt-get to install it"
  sudo_=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "Python's venv module is missing; run as root: apt-get install python3-venv"
    sudo_=(sudo -n)
  fi
  say "Python's venv module is missing: apt-get install --no-install-recommends python3-venv"
  "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || fail "apt-get update failed"
  "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2 \
    || fail "apt-get install python3-venv failed"
fi

rm -rf "$venv"
mkdir -p "$root/.infra"
python3 -m venv "$venv" >&2 || { rm -rf "$venv"; fail "python3 -m venv $venv failed"; }
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2 \
  || { rm -rf "$venv"; fail "pip install uv==$UV_VERSION failed (is PyPI reachable?)"; }
usable "$venv/bin/uv" || { rm -rf "$venv"; fail "the installed $venv/bin/uv does not run"; }
say "installed $("$venv/bin/uv" --version) in .infra/uv"
echo "$venv/bin/uv"
