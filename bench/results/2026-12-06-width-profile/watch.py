import subprocess, time, re, sys
log = sys.argv[1]
state = 0  # 0: before width; 1: in width, waiting 64-topic window; 2: waiting broker stop; 3: waiting 10k window; 4 done
pos = 0
while state < 4:
    time.sleep(0.2)
    try:
        data = open(log, errors='replace').read()
    except FileNotFoundError:
        continue
    new, pos = data[pos:], len(data)
    for line in new.splitlines():
        if state == 0 and line.startswith('[suite] width'):
            state = 1
        elif state in (1, 3) and re.match(r'^\[ *\d+\.\ds\]  +\d+ msg/s', line):
            name = 't64' if state == 1 else 't10000'
            print(f"{time.strftime('%H:%M:%S')} perf {name}: {line}", flush=True)
            subprocess.run(['perf', 'record', '-a', '-F', '499', '-o', f'{sys.argv[2]}/{name}.data', '--', 'sleep', '20'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            state = 2 if state == 1 else 4
            break
        elif state == 2 and line.startswith('[suite] stopped: broker'):
            state = 3
