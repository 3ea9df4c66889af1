#!/usr/bin/env bash
# More rounds of run.sh's two runs, alternating before/after, into r2/ and r3/ (the machine is
# shared: one round is one sample).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for r in r2 r3; do
    mkdir -p "$here/$r"
    BINS=${BINS:-/work/bench-bin} OUT_ROOT="$here/$r" bash "$here/run.sh"
done
