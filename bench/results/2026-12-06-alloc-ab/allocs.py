"""Allocation counts from a heaptrack flame-graph stack file, grouped by the innermost
FerroMQ frames (usage: allocs.py STACKS [frames] [rows])."""
import sys, re, subprocess, collections
lines = open(sys.argv[1]).read().splitlines()
names = set()
rows = []
for l in lines:
    stack, _, n = l.rpartition(' ')
    frames = [re.sub(r' \([^)]*\)$', '', f) for f in stack.split(';')]
    rows.append((frames, int(n)))
    names.update(frames)
names = sorted(names)
out = subprocess.run(['c++filt'], input='\n'.join(names), capture_output=True, text=True).stdout.splitlines()
dm = dict(zip(names, out))
agg = collections.Counter()
depth = int(sys.argv[2]) if len(sys.argv) > 2 else 1
for frames, n in rows:
    d = [re.sub(r'::h[0-9a-f]{16}$', '', dm[f]) for f in frames]
    ours = [f for f in d if re.search(r'ferromq|mqbroker', f)]
    key = ' <- '.join(reversed(ours[-depth:])) if ours else (d[-1] if d else '?')
    agg[key] += n
tot = sum(agg.values())
print('total', tot)
for k, v in agg.most_common(int(sys.argv[3]) if len(sys.argv) > 3 else 40):
    print(f'{v:9d} {v/tot*100:5.1f}%  {k[:260]}')
