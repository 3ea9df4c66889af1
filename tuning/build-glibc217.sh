#!/usr/bin/env bash
# Builds mqbroker, mqnamesrv and mqadmin for CentOS 7-style hosts: linked against glibc 2.17
# (the newest GLIBC_ symbol version they need is 2.17), with cargo-zigbuild and zig, both from
# PyPI into a private virtualenv under target/. Extra arguments go to cargo, e.g. --release.
#
#   tuning/build-glibc217.sh --release
#   ls target/x86_64-unknown-linux-gnu/release/{mqbroker,mqnamesrv,mqadmin}
#
# Needs python3 (with venv) and network access to PyPI on first use. CI runs it and then the
# round trip under a Linux 3.10 system-call filter (tests/e2e/backend.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
venv=target/zigbuild-venv
if [[ ! -x $venv/bin/cargo-zigbuild ]] || ! "$venv/bin/python3" -m ziglang version >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
fi
# cargo-zigbuild runs zig as `python3 -m ziglang` when no `zig` is on PATH: the venv's python3.
PATH="$PWD/$venv/bin:$PATH" cargo zigbuild --locked --target x86_64-unknown-linux-gnu.2.17 \
    -p ferromq-core -p ferromq-namesrv --bin mqbroker --bin mqnamesrv --bin mqadmin "$@"
