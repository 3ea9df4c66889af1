import re,sys
for f in sys.argv[1:]:
    samples=open(f).read().split('\n\n'); tot=0; c={}
    def add(k): c[k]=c.get(k,0)+1
    for s in samples:
        lines=[l.strip() for l in s.strip().split('\n')][1:]
        if not lines: continue
        tot+=1; txt='\n'.join(lines); leaf=lines[0]
        mem='memmove' in leaf or 'memcpy' in leaf
        al=re.search(r' (malloc|_int_malloc|_int_free|cfree\S*|unlink_chunk\S*|malloc_consolidate|_int_realloc|__GI___libc_realloc|__GI___libc_free|__GI___libc_malloc|__libc_free|__libc_malloc)\+',leaf)
        if mem: add('memcpy/memmove (all)')
        if mem and 'conn::dispatch' in txt and ('Box<T>::pin' in txt or 'BrokerService' in txt or 'handlers::dispatch' in txt) and 'encode_record' not in txt and 'ResponseFrame' not in txt and 'decode' not in txt: add('memcpy: request futures')
        if mem and 'encode_record' in txt and 'reserve' in txt: add('memcpy: batch growth')
        if al: add('allocator (all)')
        if al and 'dispatch_records' in txt: add('allocator: dispatch_records')
        if 'dispatch_records' in txt: add('dispatch_records incl')
        if 'malloc_consolidate' in leaf: add('malloc_consolidate')
    print(f, tot, ' | '.join('%s %.2f%%'%(k,100*v/tot) for k,v in sorted(c.items())))
