import sys, collections, re
# perf script output: header line, then frames "\t addr sym (dso)", blank line between samples
buckets = collections.Counter(); leafk = collections.Counter(); total = 0
def flush(frames):
    global total
    if not frames: return
    total += 1
    leaf = frames[0]
    kern = '[kernel' in leaf
    name = None
    for f in frames:
        m = re.search(r'\s[0-9a-f]+\s+(.*?)\s+\((.*)\)$', f)
        if not m: continue
        sym = m.group(1)
        if sym.startswith(('ferromq_',)) and 'invoke_on' not in sym and 'run_future' not in sym:
            name = re.sub(r'::\{\{closure\}\}', '', sym)
            name = re.sub(r'\+0x[0-9a-f]+$', '', name)
            break
    buckets[(name or '(no ferromq frame)', 'k' if kern else 'u')] += 1
frames = []
for line in sys.stdin:
    line = line.rstrip('\n')
    if not line.strip():
        flush(frames); frames = []; continue
    if line.startswith('\t') or line.startswith(' '):
        frames.append(line)
    else:
        flush(frames); frames = []
flush(frames)
agg = collections.Counter()
for (n, k), c in buckets.items(): agg[n] += c
for n, c in agg.most_common(int(sys.argv[1]) if len(sys.argv) > 1 else 30):
    print(f"{100*c/total:6.2f}%  (user {100*buckets[(n,'u')]/total:5.2f}%)  {n[:130]}")
print("total", total)
