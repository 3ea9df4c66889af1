import sys, collections
targets = sys.argv[1:]
cnt = {t: collections.Counter() for t in targets}
frames=[]
def sym(f):
    p=f.split(None,1); return p[1][:110] if len(p)>1 else f
def flush():
    if not frames: return
    for t in targets:
        for i,f in enumerate(frames):
            if t in f:
                # the first non-inlined-std frame below the target, plus leaf
                child = '(self)'
                for j in range(i-1, -1, -1):
                    s = sym(frames[j])
                    if 'ferromq' in s or j == 0:
                        child = s; 
                        if 'ferromq' in s: break
                cnt[t][(child, sym(frames[0]))] += 1
                break
for line in sys.stdin:
    if not line.strip():
        flush(); frames.clear(); continue
    frames.append(line.strip())
flush()
for t in targets:
    print("==", t, sum(cnt[t].values()))
    for (c,l),n in cnt[t].most_common(10): print(f"  {n:4d} {c}  <-leaf {l}")
