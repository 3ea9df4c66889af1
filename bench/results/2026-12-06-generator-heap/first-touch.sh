#!/usr/bin/env bash
# What a page the guest touches for the first time costs on this VM (2026-12-06, 02:35–02:45 UTC):
# the balloon's free page reporting, a buffered file written new and then rewritten, and
# anonymous memory touched twice. Runs in a scratch directory; needs python3.
set -euo pipefail
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
grep -H . /sys/module/page_reporting/parameters/* || true
for d in /sys/bus/virtio/devices/*; do echo "$d device $(cat "$d/device") driver $(basename "$(readlink "$d/driver")")"; done
/usr/bin/time -f "new file, 1500 MiB: %e s wall, %S s system" dd if=/dev/zero of="$scratch/x" bs=1M count=1500 status=none
/usr/bin/time -f "same file rewritten while cached: %e s wall, %S s system" dd if=/dev/zero of="$scratch/x" bs=1M count=1500 conv=notrunc status=none
rm -f "$scratch/x"
python3 - <<'PY'
import mmap, time, resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
n = 1 << 30
for rnd in range(2):
    c = cpu(); m = mmap.mmap(-1, n)
    for off in range(0, n, 4096): m[off] = 1
    first = cpu() - c; c = cpu()
    for off in range(0, n, 4096): m[off] = 2
    print(f"anonymous 1 GiB, round {rnd}: first touch {first / (n / 4096) * 1e6:.1f} us/page, second {(cpu() - c) / (n / 4096) * 1e6:.2f} us/page")
    m.close()
PY
