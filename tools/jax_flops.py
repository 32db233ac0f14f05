"""How much arithmetic one update does: the official JAX MAC against `mac`, counted, not timed (issue 15).

A speed ratio between two implementations of one algorithm says little until both are known to do the same work.
This counts the floating-point operations of the matrix products of one update on each side, at the configuration
of `tools/jax_interleaved.py` (W×4 networks, B = 256, n = 10, H = 10, N_train = 8, F = 10, rollouts from all 256
states):

- JAX: the anchor's own `MACAgent.update` (`../shared/tools/jax_anchor`, built by its `setup.sh` into /tmp/jaxmac),
  compiled by XLA for the CPU; every dot of the optimised HLO counts 2 × (output size) × (contracted size), times the
  trip count of each `while` loop around it (the rollouts' `lax.scan`), so code XLA removed is not counted.
- mac: `mac.bench.gemm_shapes` on one eager update (PyTorch's profiler; checked in chapter 11 against PyTorch's own
  FLOP counter).

Not a benchmark of time: it runs one update per side and reads shapes. Prints one line per width; with --out writes
`flops.json` and a provenance record.

    python tools/jax_flops.py --widths 256 512 --out results/bench/flops_vs_jax
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
from jax_interleaved import MAC_CONFIG, _last_json, anchor_args  # noqa: E402

JAX_SNIPPET = r"""
import json, os, sys
sys.path.insert(0, os.environ.get('JAXMAC_SRC', 'src'))   # run in the anchor's folder, which holds time_update.py
import numpy as np, jax
from time_update import load_or_synthesize          # the anchor's own data path (synthetic arrays are enough here)
from agents.mac import MACAgent, get_config
from utils.datasets import ACDataset, Dataset
W = {width}
data, _ = load_or_synthesize('/nonexistent', 30)
scale = dict(observations=dict(mean=data['observations'].mean(0), std=data['observations'].std(0),
                               min=data['observations'].min(0), max=data['observations'].max(0)))
config = get_config()
for k in ('actor_hidden_dims', 'value_hidden_dims', 'dynamics_hidden_dims'): config[k] = (W,) * 4
config.update(batch_size=256, action_chunking=10, rollout_steps=10, rollout_batch_size=256, num_samples_train=8,
              num_samples_test=32, flow_steps=10, dataset_class='ACDataset')
train = ACDataset(Dataset.create(scale=scale, **data), config)
agent = MACAgent.create(0, train.sample(1), config)
hlo = MACAgent.update.lower(agent, train.sample(256)).compile().as_text()   # what XLA runs, after its optimisations
print(json.dumps(dict(width=W, jax=jax.__version__, hlo=hlo)))
"""

_COMP = re.compile(r'^(?:ENTRY )?%([\w.\-]+) \((.*)\) -> .*\{$')
_PARAM = re.compile(r'([\w.\-]+): \w+\[([\d,]*)\]')
_INSTR = re.compile(r'^\s*(?:ROOT )?%([\w.\-]+) = \w+\[([\d,]*)\]')
_DOT = re.compile(r' dot\(%([\w.\-]+), %[\w.\-]+\), lhs_contracting_dims=\{([\d,]*)\}')
_SUB = re.compile(r'(calls|body|to_apply)=%([\w.\-]+)')   # fusions, while bodies, calls (and reducers: no dots)
_TRIPS = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def _shape(s: str) -> list[int]:
    return [int(x) for x in s.split(',') if x]


def _module(line: str) -> str:
    "The network a dot belongs to, from the op name JAX gave it (flax's `modules_<name>`), and whether it is a backward product."
    op = re.search(r'op_name="([^"]*)"', line)
    mods = re.findall(r'modules_(\w+)', op.group(1)) if op else []
    return (mods[-1] if mods else 'other') + (' (backward)' if op and 'transpose(' in op.group(1) else '')


def dot_flops(hlo: str) -> tuple[float, int, dict]:
    """(FLOPs of the dots one run of an XLA executable does, number of dots run, FLOPs by network), read from its
    optimised HLO text: each dot counts 2 × (output size) × (contracted size of its left operand); a computation
    reached through a fusion or call counts once per use, a `while` body `known_trip_count` times (an error if XLA
    did not prove it)."""
    comps, entry, cur = {}, None, None
    for line in hlo.splitlines():
        m = _COMP.match(line)
        if m:
            cur = comps[m.group(1)] = dict(shapes={p: _shape(d) for p, d in _PARAM.findall(m.group(2))}, lines=[])
            if line.startswith('ENTRY'): entry = m.group(1)
        elif cur is not None and line.strip() not in ('', '}'):
            cur['lines'].append(line)
            i = _INSTR.match(line)
            if i: cur['shapes'][i.group(1)] = _shape(i.group(2))
    memo = {}

    def count(name: str) -> tuple[float, int, Counter]:
        if name in memo: return memo[name]
        c, flops, dots, by = comps[name], 0.0, 0, Counter()
        for line in c['lines']:
            d = _DOT.search(line)
            if d:
                out = _shape(_INSTR.match(line).group(2))
                f = 2 * math.prod(out) * math.prod(c['shapes'][d.group(1)][int(j)] for j in d.group(2).split(',') if j)
                flops, dots = flops + f, dots + 1
                by[_module(line)] += f
            for kind, sub in _SUB.findall(line):
                f, n, b = count(sub)
                t = 1
                if kind == 'body' and n:
                    m = _TRIPS.search(line)
                    if not m: raise ValueError(f'a while loop whose body runs dots has no known trip count: {line[:200]}')
                    t = int(m.group(1))
                flops, dots = flops + t * f, dots + t * n
                for k, v in b.items(): by[k] += t * v
        memo[name] = (flops, dots, by)
        return memo[name]

    return count(entry)


CHECK_SNIPPET = r"""
import json, jax, jax.numpy as jnp
def f(x, w, v):                       # 3 products of (64x32)(32x48) before a scan of 7 steps of (64x48)(48x48), one after
    y = sum(x @ w for _ in range(3))
    y = jax.lax.scan(lambda c, _: (jnp.tanh(c @ v), None), y, None, length=7)[0]
    return (y @ v.T).sum()
args = (jnp.ones((64, 32)), jnp.ones((32, 48)), jnp.ones((48, 48)))
for fn in (f, jax.grad(f, argnums=(1, 2))):
    print(json.dumps(dict(hlo=jax.jit(fn).lower(*args).compile().as_text())))
"""


MAC_SNIPPET = MAC_CONFIG + """
import json, torch
from mac.bench import gemm_shapes, _seeded_agent
_, agent, b, g, _ = _seeded_agent(cfg, 256, 28, 5, 'cpu')   # the agent and batch every mac benchmark times
agent.update(b, g)
s = gemm_shapes(lambda: agent.update(b, g))
print(json.dumps(dict(width=W, torch=torch.__version__, gflop=sum(2 * bb * m * k * n for bb, m, k, n in s) / 1e9, products=len(s))))
"""


def _check(jaxmac: Path) -> str:
    """The counter against a hand count, on a function with products inside and outside a scan: forward 3 + 7 + 1
    products; its gradient (with respect to both weights) adds, per product, the ones XLA keeps. Fails loudly."""
    p = subprocess.run([str(jaxmac / 'venv/bin/python'), '-c', CHECK_SNIPPET], capture_output=True, text=True,
                       env=os.environ | {'JAX_PLATFORMS': 'cpu'})
    if p.returncode: raise RuntimeError(f'check failed to run:\n{p.stderr[-2000:]}')
    fwd, grad = (json.loads(line)['hlo'] for line in p.stdout.strip().splitlines()[-2:])
    want = 2 * (3 * 64 * 32 * 48 + 7 * 64 * 48 * 48 + 64 * 48 * 48)
    got, dots, _ = dot_flops(fwd)
    # XLA may merge the 3 identical products into 1 (common subexpressions): accept either, but nothing else
    ok = {want: 11, want - 2 * 2 * 64 * 32 * 48: 9}
    if ok.get(int(got)) != dots: raise AssertionError(f'forward: counted {got:.0f} FLOP in {dots} dots, want {ok}')
    g, gd, _ = dot_flops(grad)
    if not g > got: raise AssertionError(f'gradient: counted {g:.0f} FLOP, not more than the forward {got:.0f}')
    return f'forward {got / 1e6:.3f} MFLOP in {dots} dots (hand count agrees), gradient {g / 1e6:.3f} MFLOP in {gd} dots'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--widths', type=int, nargs='+', default=[256, 512])
    a = anchor_args(ap, argv)
    jaxmac = Path(a.jaxmac)
    check = _check(jaxmac)
    print(f'counter checked on a known function: {check}', flush=True)
    sys.path.insert(0, str(ROOT))
    from mac.core import provenance, write_json
    t0, rows = time.time(), []
    for w in a.widths:
        p = subprocess.run([str(jaxmac / 'venv/bin/python'), '-c', JAX_SNIPPET.format(width=w)], capture_output=True,
                           text=True, cwd=jaxmac, env=os.environ | {'JAX_PLATFORMS': 'cpu'})
        if p.returncode: raise RuntimeError(f'JAX lowering failed ({p.returncode}):\n{p.stderr[-2000:]}')
        j = _last_json(p.stdout)
        jf, jc, by = dot_flops(j['hlo'])
        p = subprocess.run([sys.executable, '-c', MAC_SNIPPET.format(width=w)], capture_output=True, text=True, cwd=ROOT,
                           env=os.environ | {'PYTHONPATH': str(ROOT)})
        if p.returncode: raise RuntimeError(f'mac count failed ({p.returncode}):\n{p.stderr[-2000:]}')
        m = _last_json(p.stdout)
        row = dict(width=w, jax_gflop=jf / 1e9, jax_dot_calls=jc, mac_gflop=m['gflop'], mac_products=m['products'],
                   mac_over_jax=m['gflop'] / (jf / 1e9), jax=j['jax'], torch=m['torch'],
                   jax_gflop_by_network={k: round(v / 1e9, 3) for k, v in sorted(by.items())})
        rows.append(row)
        print(f"W={w}: JAX {row['jax_gflop']:.1f} GFLOP in {jc} dot calls, mac {row['mac_gflop']:.1f} GFLOP in "
              f"{row['mac_products']} products -> mac does {row['mac_over_jax']:.3f}x the JAX arithmetic", flush=True)
    if a.out:
        write_json(Path(a.out) / 'flops.json', rows)
        write_json(Path(a.out) / 'provenance.json', provenance(wall_time_s=time.time() - t0, device='cpu', widths=a.widths))
    return 0


if __name__ == '__main__':
    sys.exit(main())
