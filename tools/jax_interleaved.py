"""The official JAX MAC update against `mac`'s, timed interleaved on the same cores (issue 15).

Each round runs, one after the other and each in a fresh process, the JAX anchor's driver
(`../shared/tools/jax_anchor`, built by its `setup.sh` into /tmp/jaxmac) and `mac.bench.bench_agent` at the same
configuration: W×4 networks, B = 256, n = 10, H = 10, N_train = 8, N_test = 32, F = 10, rollouts from all 256 states;
medians of K updates after warm-up. Rounds alternate JAX, mac, JAX, mac, ... so that a change in the machine's load
reaches both. Prints one line per measurement and the ratio of the medians per width; writes every figure and a
provenance record into --out. Not a test: run it on an otherwise idle machine and report the load it records.

    python tools/jax_interleaved.py --widths 256 512 --rounds 2 --k 50 --out results/bench/jax_interleaved
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAC_CONFIG = """
from mac.agent import MACConfig
W = {width}
cfg = MACConfig(n=10, H=10, actor_hidden=(W,) * 4, value_hidden=(W,) * 4, dynamics_hidden=(W,) * 4, flow_steps=10,
                n_train=8, n_test=32, rollout_batch=256)
"""   # the anchor's configuration on mac's side, shared by the tools that compare with it
MAC_SNIPPET = MAC_CONFIG + """
import json, sys, torch
torch.set_num_threads({threads})
from mac.bench import bench_agent
r = bench_agent(cfg, 256, reps={k}, warmup=2, components=False, device='cpu', compile={compile})
print(json.dumps(dict(impl='mac', width=W, update_median_s=r['update_s'], act_latency_median_s=r['act_ms'] / 1e3,
                      compile_s=r.get('compile_s'), torch=torch.__version__, threads=torch.get_num_threads())))
"""


def _last_json(out: str) -> dict:
    "The last JSON line of a driver's output, with the home folder written as ~ (records hold no home paths)."
    for line in reversed(out.strip().splitlines()):
        if line.startswith('{'): return json.loads(line.replace(str(Path.home()), '~'))
    raise RuntimeError(f'no JSON line in the output:\n{out[-2000:]}')


def run_jax(jaxmac: Path, width: int, k: int) -> dict:
    p = subprocess.run([str(jaxmac / 'venv/bin/python'), str(jaxmac / 'time_update.py'), '--width', str(width), '--k', str(k)],
                       capture_output=True, text=True, cwd=jaxmac)
    if p.returncode: raise RuntimeError(f'JAX driver failed ({p.returncode}):\n{p.stderr[-2000:]}')
    return _last_json(p.stdout)


def run_mac(width: int, k: int, threads: int, compile: bool) -> dict:
    code = MAC_SNIPPET.format(width=width, k=k, threads=threads, compile=compile)
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT,
                       env=os.environ | {'PYTHONPATH': str(ROOT)})
    if p.returncode: raise RuntimeError(f'mac bench failed ({p.returncode}):\n{p.stderr[-2000:]}')
    return _last_json(p.stdout)


def anchor_args(ap: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    "Adds --jaxmac and --out, parses, and stops with what to do if the anchor is not built."
    ap.add_argument('--jaxmac', default=os.environ.get('JAXMAC_ROOT', '/tmp/jaxmac'), help="the anchor's folder (its setup.sh)")
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    if not (Path(a.jaxmac) / 'time_update.py').exists():
        sys.exit(f'{a.jaxmac}/time_update.py is missing: build the anchor first (bash ../shared/tools/jax_anchor/setup.sh <MAC repo>)')
    return a


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--widths', type=int, nargs='+', default=[256, 512])
    ap.add_argument('--rounds', type=int, default=2, help='JAX/mac pairs per width')
    ap.add_argument('--k', type=int, default=50, help='timed updates per measurement')
    ap.add_argument('--threads', type=int, default=os.cpu_count(), help="mac's torch threads (XLA uses every core it may)")
    ap.add_argument('--compile', action='store_true', help="time mac's torch.compile path instead of eager")
    a = anchor_args(ap, argv)
    jaxmac = Path(a.jaxmac)
    if a.rounds < 1 or a.k < 1: sys.exit('--rounds and --k must be >= 1')
    sys.path.insert(0, str(ROOT))
    from mac.core import provenance, write_json
    t0, rows = time.time(), []
    for w in a.widths:
        for r in range(a.rounds):
            for impl in ('jax', 'mac'):
                load = [round(x, 2) for x in os.getloadavg()]
                res = run_jax(jaxmac, w, a.k) if impl == 'jax' else run_mac(w, a.k, a.threads, a.compile)
                row = dict(width=w, round=r, impl=impl, update_median_s=res['update_median_s'],
                           act_latency_median_s=res.get('act_latency_median_s'), load_before=load,
                           at=time.strftime('%H:%M:%S'), raw=res)
                rows.append(row)
                print(f"W={w} round {r} {impl:3s}: {res['update_median_s']:.4f} s per update, "
                      f"act {1e3 * (row['act_latency_median_s'] or float('nan')):.2f} ms (load {load})", flush=True)
                if a.out: write_json(Path(a.out) / 'rows.json', rows)
    summary = {}
    for w in a.widths:
        m = {i: statistics.median(x['update_median_s'] for x in rows if x['width'] == w and x['impl'] == i) for i in ('jax', 'mac')}
        summary[w] = dict(jax_s=m['jax'], mac_s=m['mac'], mac_rate_over_jax=m['jax'] / m['mac'])
        print(f"W={w}: JAX {m['jax']:.4f} s, mac {m['mac']:.4f} s -> mac runs {m['jax'] / m['mac']:.2f}x the JAX update rate")
    if a.out:
        write_json(Path(a.out) / 'summary.json', summary)
        write_json(Path(a.out) / 'provenance.json', provenance(wall_time_s=time.time() - t0, device='cpu', widths=a.widths,
                                                               rounds=a.rounds, k=a.k, threads=a.threads, mac_compile=a.compile))
    return 0


if __name__ == '__main__':
    sys.exit(main())
