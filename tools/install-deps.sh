#!/usr/bin/env bash
# Installs the Debian packages DSPex needs to build, test and run its demo — the one
# list of them, used by `make demo`, `make test`, `make bench` and `.ci/run`.
#
#   tools/install-deps.sh            # build + test + demo
#   tools/install-deps.sh --bench    # also what `make bench` needs (wrk)
#
# A no-op when everything is installed (one dpkg-query call). Uses sudo only when not
# root. Without apt it checks for the tools and says what is missing.
# DSPEX_SKIP_DEPS=1 skips it altogether.
set -euo pipefail

# Build: Erlang/OTP 25 with headers and ei, Elixir, a C toolchain (gcc; clang and its
# sanitizer runtime for the fuzz targets), and the C libraries of the NIF and the port
# program. Tests: curl (HTTP client tests of DSPex.Server).
PKGS=(erlang-dev erlang-nox erlang-eunit erlang-jiffy elixir rebar3 make gcc clang
      libclang-rt-14-dev pkg-config libcurl4-openssl-dev libcjson-dev libuv1-dev curl)
BENCH_PKGS=(wrk)

[ "${DSPEX_SKIP_DEPS:-0}" = "1" ] && exit 0
if [ "${1:-}" = "--bench" ]; then PKGS+=("${BENCH_PKGS[@]}"); fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  missing=()
  for cmd in erl elixir mix make cc pkg-config; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  for lib in libcurl libuv libcjson; do
    pkg-config --exists "$lib" 2>/dev/null || missing+=("$lib (pkg-config)")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
  fi
  echo "tools/install-deps.sh: apt-get is not available here, so the packages cannot be installed for you." >&2
  echo "  missing: ${missing[*]}" >&2
  echo "  install the equivalents of these Debian packages: ${PKGS[*]}" >&2
  echo "  (or set DSPEX_SKIP_DEPS=1 to skip this check)" >&2
  exit 1
fi

# One dpkg-query for the whole list (it names only the packages it knows).
installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${PKGS[@]}" 2>/dev/null || true) "
missing=()
for p in "${PKGS[@]}"; do
  [[ "$installed" == *" $p=installed "* ]] || missing+=("$p")
done

[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "tools/install-deps.sh: need to install ${missing[*]}, but this is not root and sudo is not installed." >&2
  echo "  run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "tools/install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
