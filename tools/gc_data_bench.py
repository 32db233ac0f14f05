"""Benchmark of chapter 9b's goal-conditioned batches at dataset scale (issue 14): batches per second and resident memory
for synthetic datasets of 1M, 10M and 100M transitions in OGBench's file layout (1M rows per file, episodes of 1000 rows).

    python tools/gc_data_bench.py --out results/gc_data_bench [--sizes 1 10 100] [--floats float16] [--work DIR]

The files are synthetic (random numbers in puzzle-3x3's layout: 55 float32 observations, 5 actions, terminals, 9 button
states stored as int8 to save disk); the 100 files of a size are hard links to one file, so only the cache (one
concatenated .npy per key, chapter 2b) takes the full size on disk. Each size is measured in a fresh process: batches of
B = 1024 chunks of n = 10 with value and actor goals (Table 6's puzzle mixes), median of 5 timings of 50 batches after 20
warm-up batches, twice: first with a cold page cache (dropped before the process starts, where the system allows it),
then at once in a second process drawing other batches (whatever the first brought into the page cache stays there); memory is the process's resident set split into anonymous memory (what the process allocated) and
file-backed pages of the memory map (the kernel's page cache, shared and evictable). Results accumulate in
OUT/bench.json, one entry per size, so an interrupted run continues where it stopped.

`--interleaved` then compares each size with the smallest in one process, both caches open (and, where they fit,
read into memory), alternating blocks of 50 batches for 10 rounds (the order flips every round): on a loaded machine
the load hits both alike, so the median of the per-round speed ratios is the figure to read (entry `interleaved`).

`--floats float16` builds the caches with float16 float arrays (chapter 2b); `open_cache` decides, as in a run, whether
to read a cache through at open (it fits in 3/4 of the available memory) or to read rows with 16 threads (it does
not); `open_s` is that open. An OUT folder holds the results of one float type only.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROWS_PER_FILE, EP = 1_000_000, 1000


def make_file(path: Path, seed: int = 0):
    rng = np.random.default_rng(seed)
    term = np.zeros(ROWS_PER_FILE, bool); term[EP - 1::EP] = True
    np.savez(path, observations=rng.standard_normal((ROWS_PER_FILE, 55), dtype=np.float32),
             actions=rng.uniform(-1, 1, (ROWS_PER_FILE, 5)).astype(np.float32), terminals=term,
             button_states=rng.integers(0, 2, (ROWS_PER_FILE, 9)).astype(np.int8))


def _batches(cache):
    "Goal-conditioned batches (puzzle-3x3's goal mixes, n = 10) over `cache`, identity normalisers, one thread."
    import torch
    from mac.batches import ObsNormalizer
    from mac.goals import GoalChunkBatches
    torch.set_num_threads(1)
    ident = lambda k: ObsNormalizer(torch.zeros(k), torch.ones(k))
    return GoalChunkBatches(cache, 'puzzle-3x3', 10, ident(55), ident(9), device='cpu')


def measure(cache_dir: str, seed: int = 0) -> dict:
    "Run in a fresh process: sampling speed and memory of GoalChunkBatches over the cache."
    import torch
    from mac.cache import open_cache
    def mem():
        f = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)
        kb = lambda k: int(f[k].split()[0]) / 1024
        return dict(rss_mb=round(kb('VmRSS'), 1), anon_mb=round(kb('RssAnon'), 1), file_mb=round(kb('RssFile'), 1))
    m0 = mem()
    t0 = time.perf_counter(); c = open_cache(cache_dir); open_s = time.perf_counter() - t0
    gb = _batches(c)
    g = torch.Generator().manual_seed(seed)
    for _ in range(20): gb.sample(1024, g)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(50): gb.sample(1024, g)
        times.append((time.perf_counter() - t0) / 50)
    return dict(rows=len(c), io_threads=c.io_threads, open_s=round(open_s, 2), preload_s=c.preload_s and round(c.preload_s, 2),
                floats=str(c.arrays['observations'].dtype), batches_per_s=round(1 / float(np.median(times)), 1), batch_ms_all=[round(1e3 * t, 2) for t in times],
                before_open=m0, after=mem())


def measure_pair(dirs: list, seed: int = 0, rounds: int = 10, block: int = 50) -> dict:
    "Run in a fresh process: caches `dirs` sampled in alternating blocks; speed of each relative to the first, per round."
    import torch
    from mac.cache import open_cache
    caches = [open_cache(d) for d in dirs]
    gbs = [_batches(c) for c in caches]
    g = torch.Generator().manual_seed(seed)
    for gb in gbs:
        for _ in range(20): gb.sample(1024, g)
    ms = [[] for _ in gbs]
    for r in range(rounds):
        for i in (range(len(gbs)) if r % 2 == 0 else reversed(range(len(gbs)))):
            t0 = time.perf_counter()
            for _ in range(block): gbs[i].sample(1024, g)
            ms[i].append(1e3 * (time.perf_counter() - t0) / block)
    ratios = [[a / b for a, b in zip(ms[0], m)] for m in ms]   # > 1: faster than the first cache
    return dict(rows=[len(c) for c in caches], io_threads=[c.io_threads for c in caches], preload_s=[c.preload_s and round(c.preload_s, 2) for c in caches],
                batch_ms_median=[round(float(np.median(m)), 2) for m in ms], speed_vs_first_median=[round(float(np.median(q)), 3) for q in ratios],
                speed_vs_first_all=[[round(x, 3) for x in q] for q in ratios], batch_ms_all=[[round(x, 2) for x in m] for m in ms], rounds=rounds, block=block)


def _cache_of(work: Path, m: int, base: Path, floats: str) -> tuple[Path, float]:
    "The cache of m hard-linked copies of the base file, built (or found) in work/<m>M, and the seconds that took."
    from mac.cache import build_cache
    d = work / f'{m}M'; d.mkdir(exist_ok=True)
    for i in range(m):
        if not (d / f'data-{i:03d}.npz').exists(): os.link(base, d / f'data-{i:03d}.npz')
    t0 = time.time(); build_cache(sorted(d.glob('data-*.npz')), d / 'cache', progress=True, floats=floats)
    return d / 'cache', time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='results/gc_data_bench'); ap.add_argument('--sizes', type=int, nargs='+', default=[1, 10, 100])
    ap.add_argument('--work', default=os.path.expanduser('~/.cache/mac/gc_data_bench')); ap.add_argument('--measure', help=argparse.SUPPRESS); ap.add_argument('--seed', type=int, default=0, help=argparse.SUPPRESS)
    from mac.cache import FLOATS
    ap.add_argument('--floats', choices=FLOATS, default='float32')
    ap.add_argument('--interleaved', action='store_true'); ap.add_argument('--pair', nargs='+', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure: print(json.dumps(measure(a.measure, a.seed))); return
    if a.pair: print(json.dumps(measure_pair(a.pair, a.seed))); return
    out, work = Path(a.out), Path(a.work); out.mkdir(parents=True, exist_ok=True); work.mkdir(parents=True, exist_ok=True)
    res_path = out / 'bench.json'
    res = json.loads(res_path.read_text()) if res_path.exists() else {}
    other = {m: e.get('floats', 'float32') for m, e in res.items() if m != 'interleaved' and e.get('floats', 'float32') != a.floats}
    if other: sys.exit(f'{res_path} holds results for {other} caches, not {a.floats}: pass another --out')   # (entries of runs 1-2 predate the key: float32)
    measured = False
    base = work / 'base.npz'
    if not base.exists(): make_file(work / 'base.tmp.npz'); (work / 'base.tmp.npz').rename(base)
    for m in a.sizes:
        if str(m) in res: print(f'{m}M: done before: {res[str(m)]["batches_per_s"]} batches/s'); continue
        d = work / f'{m}M'; shutil.rmtree(d, ignore_errors=True)
        _, build_s = _cache_of(work, m, base, a.floats)
        run = lambda seed: json.loads(subprocess.run([sys.executable, __file__, '--measure', str(d / 'cache'), '--seed', str(seed)], check=True, capture_output=True, text=True).stdout)
        subprocess.run('sync', shell=True)
        try: Path('/proc/sys/vm/drop_caches').write_text('3\n'); cold = True
        except OSError: cold = False                        # not permitted: the first measurement is as warm as the build left it
        first = run(0); r = run(1) | dict(first=first, first_is_cold=cold)   # the second draws other batches: warmer, not the same rows
        r |= dict(files=m, build_s=round(build_s, 1), cache_gb=round(sum(f.stat().st_size for f in (d / 'cache').glob('*.npy')) / 1e9, 2),
                  load_1min=os.getloadavg()[0])
        res[str(m)] = r; measured = True; res_path.write_text(json.dumps(res, indent=1) + '\n')
        print(f"{m}M transitions ({a.floats}): open {first['open_s']} s, {first['batches_per_s']} batches/s from a {'cold' if cold else 'warm'} page cache, then {r['batches_per_s']} (B=1024, n=10), resident {r['after']['rss_mb']} MB "
              f"(anonymous {r['after']['anon_mb']} MB, mapped file pages {r['after']['file_mb']} MB), cache {r['cache_gb']} GB built in {build_s:.0f} s")
        if not a.interleaved: shutil.rmtree(d)
    if a.interleaved:
        sizes = sorted(a.sizes); caches = [_cache_of(work, m, base, a.floats)[0] for m in sizes]
        subprocess.run('sync', shell=True)
        r = json.loads(subprocess.run([sys.executable, __file__, '--pair', *map(str, caches)], check=True, capture_output=True, text=True).stdout)
        measured = True; res['interleaved'] = r | dict(sizes_m=sizes, floats=a.floats, load_1min=os.getloadavg()[0]); res_path.write_text(json.dumps(res, indent=1) + '\n')
        for m, t, q in zip(sizes, r['batch_ms_median'], r['speed_vs_first_median']):
            print(f"interleaved: {m}M {t} ms a batch, speed {q:.2f}x that of {sizes[0]}M (median of {r['rounds']} rounds)")
        for m in sizes: shutil.rmtree(work / f'{m}M')
    if '1' in res:
        for m in (k for k in res if k != 'interleaved'):
            print(f"{m}M / 1M: speed {res[m]['batches_per_s'] / res['1']['batches_per_s']:.2f}x, anonymous memory "
                  f"{res[m]['after']['anon_mb'] / res['1']['after']['anon_mb']:.2f}x")
    from mac.core import provenance
    if measured: (out / 'provenance.json').write_text(json.dumps(provenance(command=' '.join(['python', 'tools/gc_data_bench.py'] + sys.argv[1:])), indent=1, default=str) + '\n')


if __name__ == '__main__':
    main()
