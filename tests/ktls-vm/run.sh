#!/usr/bin/env bash
# Runs the kernel-TLS tests where kernel TLS exists: in a QEMU guest booting Debian 12's cloud
# kernel (Linux 6.1, CONFIG_TLS=m), because the kernels this project builds on often lack the
# `tls` module (`/proc/sys/net/ipv4/tcp_available_ulp`). The guest runs FerroMQ's test binaries
# from an initramfs (busybox, the kernel's crypto and TLS modules, the binaries and the shared
# libraries they load, the TLS fixtures at their build paths) with FERROMQ_EXPECT_KTLS=1, so a
# kernel that takes nothing fails the run instead of passing it on the user-space path.
#
#   bash tests/ktls-vm/run.sh                # net's TLS tests (in-process server and client)
#   KTLS_E2E=1 bash tests/ktls-vm/run.sh     # also the broker end-to-end TLS tests
#   KTLS_BENCH=ROUNDS bash tests/ktls-vm/run.sh   # instead: bench/tls_ab.sh (release build)
#
# Emulated (TCG): nested KVM is not available everywhere this runs, and the tests are functional;
# a run takes one to three minutes. Installs qemu-system-x86 and busybox-static with apt-get when
# missing. Exit status: the tests' own in the guest (1 when the guest printed none).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${KTLS_VM_DIR:-$repo/target/ktls-vm}
mkdir -p "$work"
cd "$repo"

# apt-get needs root: sudo where this runs as another user.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v qemu-system-x86_64 >/dev/null || ! [ -x /bin/busybox ] || ! /bin/busybox --list | grep -x cpio >/dev/null; then
    echo "== installing qemu-system-x86 and busybox-static"
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 busybox-static >/dev/null
fi

# Debian 12's cloud kernel: the newest linux-image-*-cloud-amd64 the package index has.
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kernel_pkg" ]; then
    as_root apt-get update -qq >/dev/null
    kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
version=${kernel_pkg#linux-image-}
if ! [ -f "$work/kernel/boot/vmlinuz-$version" ]; then
    echo "== fetching $kernel_pkg"
    rm -rf "$work/kernel" "$work"/linux-image-*.deb
    # (apt warns that root downloads unsandboxed: expected here, not shown)
    (cd "$work" && apt-get download "$kernel_pkg" 2>&1 >/dev/null | grep -v "unsandboxed" >&2 || true)
    ls "$work"/linux-image-*.deb >/dev/null
    dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
fi

echo "== building the test binaries"
bins=()
collect() { # TARGET: the test executable of that target, from the workspace's test build (as
    # `cargo test --workspace` builds it, so after that command nothing is rebuilt)
    cargo test --workspace --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1"
}
net_bins=()
if [ -z "${KTLS_BENCH:-}" ]; then
    mapfile -t net_bins < <(collect ferromq_net)
    [ "${#net_bins[@]}" = 1 ] || { echo "no single test binary of ferromq-net: ${net_bins[*]}"; exit 1; }
    bins+=("${net_bins[@]}")
else
    cargo build --release -p ferromq-core -p ferromq-bench 2>/dev/null
    bins+=("$repo/target/release/mqbroker" "$repo/target/release/ferromq-bench" "$(command -v bash)")
fi
if [ "${KTLS_E2E:-0}" = 1 ]; then
    mapfile -t e2e_bins < <(collect security)
    # As the harness builds them (tests/src/lib.rs, build_workspace_binaries): same features.
    cargo build --workspace --test security --bin mqbroker --bin mqnamesrv 2>/dev/null
    bins+=("${e2e_bins[@]}" "$repo/target/debug/mqbroker" "$repo/target/debug/mqnamesrv")
fi

echo "== packing the guest"
root=$work/root
rm -rf "$root" && mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc,lib/modules}
cp /bin/busybox "$root/bin/"
for applet in sh mount ip modprobe depmod cat echo poweroff env; do ln -s busybox "$root/bin/$applet"; done
# Where the kernel looks for modprobe when it loads a crypto module on demand.
ln -s ../bin/busybox "$root/sbin/modprobe"
mods=$work/kernel/lib/modules/$version
mkdir -p "$root/lib/modules/$version/kernel"
for dir in net/tls crypto arch/x86/crypto lib/crypto lib; do
    [ -d "$mods/kernel/$dir" ] && mkdir -p "$root/lib/modules/$version/kernel/$dir" && cp -r "$mods/kernel/$dir/." "$root/lib/modules/$version/kernel/$dir/"
done
cp "$mods"/modules.order "$mods"/modules.builtin "$root/lib/modules/$version/"
for bin in "${bins[@]}"; do
    mkdir -p "$root$(dirname "$bin")" && cp "$bin" "$root$bin"
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
    done
done
# The fixtures at their build paths (net's tests name them relative to net/).
mkdir -p "$root$repo/net" "$root$repo/tests/fixtures" && cp -r "$repo/tests/fixtures/tls" "$root$repo/tests/fixtures/"
if [ -n "${KTLS_BENCH:-}" ]; then
    mkdir -p "$root$repo/bench" && cp "$repo"/bench/tls_ab.sh "$repo"/bench/ab_common.sh "$root$repo/bench/"
    for applet in grep sed cut head tail sleep kill rm mkdir awk seq dirname; do ln -sf busybox "$root/bin/$applet"; done
fi
{
    echo '#!/bin/sh'
    echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp'
    echo 'ip link set lo up; depmod'
    echo 'for m in tls aesni_intel gcm ghash_clmulni_intel chacha20poly1305; do modprobe $m 2>/dev/null; done'
    echo 'echo "guest: $(cat /proc/version)"; echo "guest ULPs: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"'
    echo 'export FERROMQ_EXPECT_KTLS=1 TMPDIR=/tmp HOME=/tmp RUST_BACKTRACE=1'
    echo 'status=0'
    for bin in "${net_bins[@]}"; do
        echo "$bin --test-threads=1 --nocapture ktls:: tls:: || status=\$?"
    done
    if [ -n "${KTLS_BENCH:-}" ]; then
        echo "echo \"guest CPUs: \$(grep -c ^processor /proc/cpuinfo)\""
        echo "PRODUCE_SECS=${KTLS_BENCH_PRODUCE_SECS:-8} $(command -v bash) $repo/bench/tls_ab.sh $repo/target/release/mqbroker ${KTLS_BENCH} 64 || status=\$?"
    fi
    if [ "${KTLS_E2E:-0}" = 1 ]; then
        for bin in "${e2e_bins[@]}"; do
            for backend in io_uring epoll; do
                echo "echo \"== e2e TLS tests, FERROMQ_IO_BACKEND=$backend\""
                echo "FERROMQ_IO_BACKEND=$backend FERROMQ_BIN_DIR=$repo/target/debug $bin --test-threads=1 tls:: || status=\$?"
            done
        done
    fi
    echo 'echo "KTLS-VM-EXIT $status"'
    echo 'poweroff -f'
} > "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$work/initrd.gz")

echo "== booting $version (emulated)"
log=$work/guest.log
timeout "${KTLS_VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 3072 -nographic -no-reboot -net none \
    -kernel "$work/kernel/boot/vmlinuz-$version" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1" > "$log" 2>&1 || true
grep -aE "^guest|^== e2e|^test |kernel TLS|panicked|test result|^round|KTLS-VM-EXIT" "$log" || true
status=$(grep -ao 'KTLS-VM-EXIT [0-9]*' "$log" | awk '{print $2}' | tail -1)
if [ -z "$status" ]; then
    echo "the guest printed no result: see $log"
    exit 1
fi
exit "$status"
