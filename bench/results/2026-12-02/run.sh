#!/bin/bash
# The 2026-12-02 sitting (bench/RESULTS.md): the broker of main at 9651a7f ("before"), built once
# and kept in /work/baseline-bin/release, measured with this branch's load generator. The "after"
# run goes next to it in the same sitting: same command, --bin-dir of the new broker,
# --out bench/results/2026-12-02/after.
set -euo pipefail
cargo build --release --bins
mkdir -p /work/baseline-bin/release
[ -e /work/baseline-bin/release/mqbroker ] || cp target/release/mqbroker target/release/mqnamesrv /work/baseline-bin/release/
# The shared disk was 85 % full: keep the broker's disk guard from refusing sends (90 %) and from
# deleting unexpired segments (85 %) under the catch-up reads. Neither setting touches the send
# or pull path.
DISK="--set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99"
# 2,000 topics as well: 16,000 queues fit this machine's 20,000 open files, 80,000 do not (the
# broker keeps a descriptor per consume-queue file; the hard limit cannot be raised here).
./target/release/ferromq-bench suite --width --width-topics 64,2000,10000 --bin-dir /work/baseline-bin/release $DISK \
    --out bench/results/2026-12-02/before 2>&1 | tee /tmp/sitting-before.log
