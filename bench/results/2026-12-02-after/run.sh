#!/bin/bash
# The 2026-12-02 afternoon sitting (bench/RESULTS.md): issue 14's "before" and "after" in one
# sitting on an otherwise idle machine. Before: main at 9651a7f (the broker before the
# control-plane / shard split), built in release into /work/baseline-bin/release. After: this
# checkout. Same load generator (this checkout's ferromq-bench) for both.
set -euo pipefail
cargo build --release --bins
if [ ! -x /work/baseline-bin/release/mqbroker ]; then
    git worktree add /work/baseline-src 9651a7f
    (cd /work/baseline-src && CARGO_TARGET_DIR=/work/baseline-target cargo build --release -p ferromq-core -p ferromq-namesrv --bins)
    mkdir -p /work/baseline-bin/release
    cp /work/baseline-target/release/mqbroker /work/baseline-target/release/mqnamesrv /work/baseline-bin/release/
fi
OUT=bench/results/2026-12-02-after
# Same disk-guard settings as the morning sitting (they touch neither the send nor the pull path).
DISK="--set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99"
WIDTH="--width --width-topics 64,2000,10000"
./target/release/ferromq-bench suite $WIDTH --bin-dir /work/baseline-bin/release $DISK --out $OUT/before 2>&1 | tee /tmp/sitting2-before.log
./target/release/ferromq-bench suite $WIDTH --bin-dir target/release $DISK --out $OUT/after 2>&1 | tee /tmp/sitting2-after.log
