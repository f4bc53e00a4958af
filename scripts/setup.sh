#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for tidegate, then builds it. Idempotent: run it as often as you like.
# Works as root (CI) and as a normal user (it uses sudo for the system packages when it needs them).
#
#   scripts/setup.sh            install what is missing, build the release binary, put `tidegate` on PATH
#
# Environment:
#   TIDEGATE_SKIP_BUILD=1       install the system packages only
#   TIDEGATE_BIN_DIR=DIR        where to link the `tidegate` command (default: /usr/local/bin as root,
#                               ~/.local/bin otherwise)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
    as_root() { "$@"; }
else
    command -v sudo >/dev/null || die "installing system packages needs root: run this script as root or install sudo"
    as_root() { sudo "$@"; }
fi

# --- system packages -------------------------------------------------------------------------------------------
# libclang-dev: pg_query's build generates bindings with libclang.
# PostgreSQL server binaries and pgbench: the scratch servers that `demo`, the benchmarks and the tests start.
# postgresql-client: psql, used by the acceptance checks and handy beside a scratch server.
missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in libclang-dev pkg-config; do
    have_pkg "$pkg" || missing+=("$pkg")
done
pg_server_found() {
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
        && ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1
}
if ! pg_server_found; then
    missing+=(postgresql)
    # Binaries only: no cluster of the package's own, no service we did not ask for.
    as_root mkdir -p /etc/postgresql-common
    if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
        echo 'create_main_cluster = false' | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
fi
command -v psql >/dev/null || missing+=(postgresql-client)
# python3-prometheus-client: the metrics tests (crates/tidegate/tests/metrics.rs) parse the endpoint with the
# Prometheus project's Python parsers, run by the system interpreter (/usr/bin/python3).
if ! /usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1; then
    missing+=(python3-prometheus-client)
fi

# mariadb-server (binaries only) and mariadb-client: `tidegate scratch start --engine mariadb` and the MariaDB tests
# start their own throwaway servers from mariadb-install-db and mariadbd; the tests check them with the client.
no_service_start=0
if [ ! -x /usr/sbin/mariadbd ] && ! command -v mariadbd >/dev/null; then
    missing+=(mariadb-server)
    no_service_start=1
fi
command -v mariadb >/dev/null || missing+=(mariadb-client)

# chromium: the report test (crates/tidegate/tests/report.rs) renders `tidegate report --format html` headless.
command -v chromium >/dev/null || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    policy_written=0
    if [ "$no_service_start" = 1 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
        # The distribution's MariaDB service is not ours to start: refuse service starts while installing.
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        policy_written=1
    fi
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$policy_written" = 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d
    fi
else
    say "system packages already installed"
fi
pg_server_found || die "PostgreSQL server binaries are still missing after installing them; check apt's output"

# PostgreSQL refuses to run as root; tidegate runs its scratch servers as this unprivileged user when it is root.
if ! id postgres >/dev/null 2>&1; then
    say "creating the system user 'postgres' that runs scratch servers when tidegate runs as root"
    as_root useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

# --- Rust tools ------------------------------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo is not installed: install Rust from https://rustup.rs, then run this again"
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest (the test runner scripts/test.sh uses)"
    cargo install --locked cargo-nextest
fi

# --- pre-commit ------------------------------------------------------------------------------------------------
# The hook test (crates/tidegate/tests/pre_commit.rs) runs the real pre-commit on .pre-commit-hooks.yaml.
if ! command -v pre-commit >/dev/null; then
    if python3 -m pip --version >/dev/null 2>&1; then
        say "installing pre-commit (pip; the pre-commit hook test uses it)"
        python3 -m pip install --quiet --disable-pip-version-check pre-commit \
            || die "pip could not install pre-commit; install it yourself (pip install pre-commit) and run this again"
        command -v pyenv >/dev/null && pyenv rehash
    else
        say "installing pre-commit (Debian's package: this machine's python3 has no pip)"
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends pre-commit >/dev/null
    fi
    command -v pre-commit >/dev/null \
        || die "pre-commit was installed but is not on PATH; add pip's script directory to PATH and run this again"
else
    say "pre-commit already installed"
fi

# --- SARIF validator -------------------------------------------------------------------------------------------
# crates/tidegate/tests/lint_formats.rs runs Microsoft's SARIF validator (what GitHub code scanning's checks are
# built on) on `tidegate lint --format sarif`. It is an npm package holding a self-contained .NET program; it is
# installed into a cache directory, not globally. TIDEGATE_SARIF_MULTITOOL overrides where the tests look.
sarif_dir=${XDG_CACHE_HOME:-$HOME/.cache}/tidegate/sarif-multitool
sarif_tool="$sarif_dir/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
if [ ! -x "$sarif_tool" ]; then
    if ! command -v npm >/dev/null; then
        say "installing npm (the SARIF validator the format tests run is an npm package)"
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    say "installing Microsoft's SARIF validator into $sarif_dir"
    mkdir -p "$sarif_dir"
    npm install --silent --no-audit --no-fund --prefix "$sarif_dir" @microsoft/sarif-multitool-linux@5 >/dev/null \
        || die "npm could not install @microsoft/sarif-multitool-linux; check the network and run this again"
    # The package's postinstall (chmod) may be skipped by npm's script policy.
    chmod u+x "$sarif_tool"
fi
DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 "$sarif_tool" --version >/dev/null 2>&1 \
    || die "the SARIF validator at $sarif_tool does not run"
say "SARIF validator: $sarif_tool"

[ "${TIDEGATE_SKIP_BUILD:-}" = 1 ] && { say "TIDEGATE_SKIP_BUILD=1: not building"; exit 0; }

# --- build -----------------------------------------------------------------------------------------------------
say "building the release binary (the first build compiles the PostgreSQL parser: a few minutes)"
cargo build --release --locked -p tidegate

if [ "$(id -u)" = 0 ]; then default_bin=/usr/local/bin; else default_bin="$HOME/.local/bin"; fi
bin_dir=${TIDEGATE_BIN_DIR:-$default_bin}
mkdir -p "$bin_dir"
ln -sf "$repo/target/release/tidegate" "$bin_dir/tidegate"
say "linked $bin_dir/tidegate -> $repo/target/release/tidegate"
case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) say "note: $bin_dir is not on your PATH; add it (export PATH=\"$bin_dir:\$PATH\") or run $repo/target/release/tidegate" ;;
esac
"$repo/target/release/tidegate" --version
