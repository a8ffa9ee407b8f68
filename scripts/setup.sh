#!/usr/bin/env bash
# Installs everything flashgate needs to build, run and test, on Debian 12.
#
# Idempotent and quick when nothing is missing: one dpkg-query over the
# package list, no `apt-get update`.  As root it installs what is missing with
# apt-get; as another user it prints the exact command to run and exits 1.
# It never starts a system service and nothing here depends on one: while it
# installs, a temporary policy-rc.d stops Debian's maintainer scripts from
# starting redis-server, PostgreSQL or nginx (our scripts and tests start
# their own on free loopback ports).  Then it installs the browser tests'
# npm packages (playwright-core, driving Debian's chromium) when
# tests/browser/package.json exists and node_modules is missing or stale.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

packages=(
    # build
    build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
    libmicrohttpd-dev libhiredis-dev libcurl4-openssl-dev libjson-c-dev
    libpq-dev libssl-dev check
    # servers the system and its tests run (privately, on free ports)
    redis-server redis-tools postgresql postgresql-client
    # tools used by scripts, tests and benchmarks
    curl ca-certificates procps iproute2 wrk nginx-light libnginx-mod-nchan
    # browser tests
    nodejs npm chromium
)

say() { printf 'setup: %s\n' "$*" >&2; }

missing_packages() {
    local -A have=()
    local name status
    # One call for the whole list; unknown packages go to stderr.
    while IFS=' ' read -r name status; do
        [[ $status == installed ]] && have[$name]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
    local p
    for p in "${packages[@]}"; do
        [[ -n ${have[$p]:-} ]] && continue
        # Node.js from another source (e.g. NodeSource) bundles npm and
        # conflicts with Debian's npm package: the commands are what count.
        case $p in
            nodejs) command -v node >/dev/null && continue ;;
            npm) command -v npm >/dev/null && continue ;;
        esac
        printf '%s\n' "$p"
    done
}

install_packages() {
    local -a missing=("$@")
    if [[ $(id -u) -ne 0 ]]; then
        say "missing Debian packages: ${missing[*]}"
        say "install them as root, then run this again:"
        printf '  sudo apt-get update && sudo apt-get install -y --no-install-recommends %s\n' "${missing[*]}" >&2
        exit 1
    fi
    say "installing: ${missing[*]}"
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# flashgate setup.sh: no service starts during install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local rc=0
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } || rc=$?
    [[ -n $made_policy ]] && rm -f "$policy"
    if [[ $rc -ne 0 ]]; then
        say "apt-get failed (exit $rc)"
        exit "$rc"
    fi
}

install_browser_deps() {
    local dir=$root/tests/browser
    [[ -f $dir/package.json ]] || return 0
    local stamp=$dir/node_modules/.flashgate-setup-stamp want
    want=$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    say "installing npm packages in tests/browser"
    if [[ -f $dir/package-lock.json ]]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    else
        (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
    fi
    printf '%s\n' "$want" >"$stamp"
}

if ! command -v dpkg-query >/dev/null; then
    say "this script supports Debian 12 (apt/dpkg); install the equivalents of: ${packages[*]}"
    exit 1
fi

mapfile -t missing < <(missing_packages)
if [[ ${#missing[@]} -gt 0 ]]; then
    install_packages "${missing[@]}"
fi
install_browser_deps
