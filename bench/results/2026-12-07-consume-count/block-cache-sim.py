#!/usr/bin/env python3
"""How many bytes a catch-up's copied pull bodies make the kernel copy, per byte wanted, today
(one pread of each run's covering span) and with a per-thread cache of log blocks.

Reads the consume-queue files of one shard of a store written by `ferromq-bench produce`
(4 x 16 in flight, 8 queues, 1 KiB) and replays 32-record pulls of its queues round-robin
(optionally shuffled each round), as the catch-up reader pulls them.
Usage: block-cache-sim.py STORE/shard-1/consumequeue/BenchTopic
"""
import os, random, struct, sys
from collections import OrderedDict

base = sys.argv[1]
queues = {}
for q in os.listdir(base):
    data = open(f"{base}/{q}/00000000000000000000", "rb").read()
    entries = []
    for i in range(0, len(data), 20):
        offset, size, _ = struct.unpack(">qiq", data[i:i + 20])
        if size == 0:
            break
        entries.append((offset, size))
    queues[int(q)] = entries


def runs(segments, factor=4, max_span=1 << 20):
    """net::conn::file_body's runs: covering span <= factor x wanted and <= 1 MiB."""
    out, i = [], 0
    while i < len(segments):
        start, length = segments[i]
        end, wanted, j = start + length, length, i + 1
        while j < len(segments):
            offset, size = segments[j]
            if offset < end or offset + size - start > max_span or offset + size - start > (wanted + size) * factor:
                break
            end, wanted, j = offset + size, wanted + size, j + 1
        out.append((start, end, wanted))
        i = j
    return out


def pulls(shuffle):
    random.seed(1)
    position = {q: 0 for q in queues}
    active = list(queues)
    while active:
        order = active[:]
        if shuffle:
            random.shuffle(order)
        for q in order:
            segments = queues[q][position[q]:position[q] + 32]
            if not segments:
                active.remove(q)
                continue
            position[q] += 32
            yield segments


for shuffle in (False, True):
    read = wanted = preads = n = 0
    for segments in pulls(shuffle):
        n += 1
        for start, end, w in runs(segments):
            read, wanted, preads = read + end - start, wanted + w, preads + 1
    print(f"today (span pread), shuffled={shuffle}: read/wanted {read / wanted:.2f}, preads per pull {preads / n:.2f}")
    for block in (32 << 10, 64 << 10, 128 << 10):
        for capacity in (8, 16):
            cache = OrderedDict()
            read = wanted = preads = n = 0
            for segments in pulls(shuffle):
                n += 1
                need = []
                for offset, size in segments:
                    wanted += size
                    for b in range(offset // block, (offset + size - 1) // block + 1):
                        if b not in need:
                            need.append(b)
                previous = None
                for b in sorted(b for b in need if b not in cache):
                    preads += previous is None or b != previous + 1
                    previous, read = b, read + block
                for b in need:
                    cache[b] = True
                    cache.move_to_end(b)
                    while len(cache) > capacity:
                        cache.popitem(last=False)
            print(f"block cache {block >> 10} KiB x {capacity}, shuffled={shuffle}: read/wanted {read / wanted:.2f}, preads per pull {preads / n:.2f}")
