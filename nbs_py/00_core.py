# %% [markdown]
# # Core
# > Device and seeding helpers, the MLP that every MAC network is made of, the EMA target update, and run provenance.

# %%
#| default_exp core

# %%
#| export
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail


# %% [markdown]
# ## In the paper
#
# > We follow the setup of the work by Park et al. (2025c;b), using 4-layer MLPs with layer normalization
# > (Ba et al., 2016) for all neural networks (the policy, critic, dynamics model, and reward model). (Appendix A.1)
#
# > where $(s_t = \hat{s}_t, \hat{a}_t, \hat{s}_{t+1}, \dots, \hat{s}_{t+n})$ is a length-$n$ imaginary rollout sampled
# > from the model using the current policy, and $\bar{V}$ is a target value function. (Section 4, after Eq. 3)
#
# > where $\bar{\varphi}$ denotes exponentially averaged target parameters (Mnih et al., 2013), and the expectations are
# > over $(s_t = \hat{s}_t, \hat{\mathbf{a}}_t, \hat{\mathbf{r}}_t, \dots, \hat{s}_{t+Hn})$ uniformly sampled from
# > $\mathcal{D}^{\text{img}}$ and $k$ uniformly sampled from $\{0, 1, \dots, H-1\}$. (Section 4.2, after Eq. 10)
#
# > Target network update rate: 0.005 (Appendix A.3, Table 8)
#
# Every network in MAC (flow policy $v_\theta$, one-step policy $\pi_\omega$, dynamics $p_\psi$, reward $r_\psi$,
# value $V_\varphi$, critic $Q_\varphi$) is the same MLP with different inputs and outputs. The paper says no more
# about the target network than the lines above (Algorithm 1 has no step for it); in the official code only the value
# function has one, a slow-moving EMA copy $\bar V$ updated after every gradient step (it is declared for the value network alone,
# [`mac.py:437`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L437), starts as a copy of it, [`mac.py:451-452`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L451-L452), and is blended in by
# [`mac.py:292-299`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L292-L299), which `update` calls after the optimiser step, [`mac.py:310`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L310)). The official code
# also pins down what "4-layer MLPs with layer normalization" means (the initialiser is
# [`networks.py:10-12`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/networks.py#L10-L12), the MLP [`networks.py:46-62`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/networks.py#L46-L62), and each network appends its output width as
# a last, plain Dense layer, e.g. [`networks.py:341`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/networks.py#L341)):
#
# | piece | official code | here |
# |---|---|---|
# | hidden layer | Dense → GELU → LayerNorm (LN *after* the activation) | `Linear → GELU(approximate='tanh') → LayerNorm(eps=1e-6)` |
# | depth | 4 hidden layers + a plain Dense output | `hidden=(512,)*4` + `Linear` |
# | GELU | `nn.gelu` (JAX default: tanh approximation) | `approximate='tanh'` |
# | init | Xavier-uniform on *every* Dense, zero biases | `nn.init.xavier_uniform_`, `zeros_` |
# | target | EMA with τ = 0.005 | `ema_update_(target, online, tau)` |
#
# Symbols used throughout the notebooks: B batch, S observation size, n chunk length, d action size,
# N samples for rejection sampling, F flow (Euler) steps. Four counts of steps that are easy to mix up:
#
# | symbol / name | counts | where |
# |---|---|---|
# | H (`MACConfig.H`) | chunks per imagined rollout: model calls, so n·H environment steps | chapters 6, 8 |
# | L | chunks per window of consecutive data chunks (`sample_windows`) | chapters 2, 5 |
# | `horizon` | environment steps of an open-loop model-error rollout (L = horizon / n chunks) | chapter 5 |
# | T | environment steps: of an episode (OGBench's `max_episode_steps`), or of the rollout in chapter 5's error bound | chapters 5, 8, 10 |

# %% [markdown]
# ## Devices and seeds
#
# Every tensor path in `mac` takes a device. One helper picks it: CUDA when present, the CPU otherwise, and a
# clear error when a user asks for a GPU that is not there.

# %%
#| export
def get_device(device: str | torch.device | None = None) -> torch.device:
    "The device to use: `None`/'auto' picks CUDA when available, else CPU; anything else is checked."
    if device is None or str(device) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try: dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:<index>'") from e
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here: use --device cpu (or 'auto')")
    return dev


# %%
test_eq(get_device('cpu'), torch.device('cpu'))
test_eq(get_device().type, 'cuda' if torch.cuda.is_available() else 'cpu')
test_fail(lambda: get_device('tpu'), contains="unknown device 'tpu'")
if not torch.cuda.is_available(): test_fail(lambda: get_device('cuda'), contains='CUDA is not available')


# %% [markdown]
# Seeds are set at entry points (notebooks, CLIs), never inside library functions: those take a
# `torch.Generator` or the noise itself, so a check can pin their randomness.

# %%
#| export
def seed_everything(seed: int) -> torch.Generator:
    "Seed Python, NumPy and torch (all devices); return a CPU `torch.Generator` seeded the same way."
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# %%
g = seed_everything(0); a = torch.randn(3, generator=g), torch.rand(2)
g = seed_everything(0); b = torch.randn(3, generator=g), torch.rand(2)
test_eq(a[0], b[0]); test_eq(a[1], b[1])


# %% [markdown]
# Timings in the benchmarks (chapters 2, 4, 11) are medians of single calls, read from the clock of
# `torch.utils.benchmark`, which synchronises a GPU before reading the time, so a CUDA kernel still running is not
# left out. (Its `Timer` class adds two untimed runs to every measurement, which would triple the cost of timing one
# update call by call.)

# %%
#| export
def median_seconds(fn, reps: int = 50, warmup: int = 3) -> float:
    "Median wall seconds of one call of `fn()` over `reps` timed calls, after `warmup` untimed ones."
    from torch.utils.benchmark.utils.timer import timer as clock   # torch.utils.benchmark's clock: syncs a GPU first
    for _ in range(warmup): fn()
    ts = []
    for _ in range(reps): t0 = clock(); fn(); ts.append(clock() - t0)
    return float(np.median(ts))


# %%
calls = []
t = median_seconds(lambda: (calls.append(1), time.sleep(0.01)), reps=5, warmup=2)
test_eq(len(calls), 7)                       # warm-up calls run but are not timed
assert 0.01 <= t < 1, t                      # never less than the sleep it times


# %% [markdown]
# ## The MLP
#
# Each hidden layer is $h \mapsto \mathrm{LN}(\mathrm{GELU}(W h + b))$; the output layer is a plain affine map.
# The GELU is JAX's default, the tanh approximation
# $\mathrm{GELU}(x) = \tfrac{x}{2}\bigl(1 + \tanh z\bigr)$ with $z = \sqrt{2/\pi}\,(x + 0.044715\,x^3)$ (see `TanhGELU` below).
# Putting LayerNorm after the activation means every hidden representation has zero mean and unit variance
# across its features (before LN's learnable scale and shift, which start at 1 and 0). Xavier-uniform draws
# $W_{ij} \sim U(-a, a)$ with $a = \sqrt{6/(\text{fan\_in}+\text{fan\_out})}$.

# %%
#| export
class MLP(nn.Sequential):
    "MAC's MLP: `len(hidden)` × (Linear → GELU(tanh) → LayerNorm), then a plain Linear; Xavier-uniform, zero bias."
    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (512, 512, 512, 512), layer_norm: bool = True):
        layers, d = [], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), TanhGELU()] + ([nn.LayerNorm(h, eps=1e-6)] if layer_norm else [])
            d = h
        super().__init__(*layers, nn.Linear(d, out_dim))
        for m in self.modules():
            if isinstance(m, nn.Linear): nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)


# %% [markdown]
# ### A faster GELU on the CPU, the same function
#
# On this machine's CPU, PyTorch's tanh-GELU kernel is slow (its vectorised `tanh` is), and a `cpu`-preset update
# calls it hundreds of times, most of them in model rollouts, which track no gradient (each of the H = 10 rollout
# steps runs five 4-layer networks). Since
# $1 + \tanh z = 2\sigma(2z)$, the same function is
#
# $$\mathrm{GELU}(x) = x\,\sigma\bigl(2z\bigr) = x\,\sigma\bigl(x\,(c_1 + c_2 x^2)\bigr),\qquad c_1 = \sqrt{8/\pi},\; c_2 = 0.044715\,c_1,$$
#
# and the sigmoid is fast. Computed in place on one fresh tensor ($x^2$, then $\cdot c_2 + c_1$, $\cdot x$, $\sigma$, $\cdot x$)
# it takes about half the time of PyTorch's kernel on a 512 × 256 float32 activation (0.115 against 0.221 ms, one
# thread), agreeing to 4.8e-7 (float rounding), and a whole `cpu`-preset update runs 1.08× faster (`mac_bench --gelu`,
# chapter 11; `results/bench/gelu_1thread/`). In-place arithmetic cannot be differentiated, so `TanhGELU` takes this
# path only where nothing needs a gradient: float32 on the CPU with autograd off or an input that needs no gradient —
# model rollouts, the teacher flow of distillation, the target value, acting. Everywhere else (training's backward passes,
# bfloat16, GPUs, where PyTorch's kernel is one fused launch) it is PyTorch's `GELU(approximate='tanh')` itself.
# `TanhGELU.fast_cpu = False` switches the fast path off everywhere (the benchmark compares both in one process).

# %%
#| export
_C1 = (8 / torch.pi) ** 0.5            # GELU_tanh(x) = x·σ(x·(c₁ + c₂x²)), since 1 + tanh z = 2σ(2z)
_C2 = 0.044715 * _C1

class TanhGELU(nn.GELU):
    "`nn.GELU(approximate='tanh')`; with no gradient to track, float32 on a CPU, it is computed as x·σ(x(c₁ + c₂x²)) in place (~2× faster)."
    fast_cpu = True                    # False: PyTorch's kernel everywhere
    def __init__(self): super().__init__(approximate='tanh')
    def forward(self, x):
        if not (self.fast_cpu and x.device.type == 'cpu' and x.dtype == torch.float32 and not (x.requires_grad and torch.is_grad_enabled())):
            return super().forward(x)
        t = x.square()                 # a fresh tensor: x itself is never written
        return t.mul_(_C2).add_(_C1).mul_(x).sigmoid_().mul_(x)


# %%
import torch.nn.functional as F
g, x = TanhGELU(), torch.cat([torch.linspace(-12, 12, 4001), 3 * torch.randn(20_000)]).reshape(-1, 1)
x0 = x.clone()
with torch.no_grad(): y = g(x)
test_eq(x, x0)                                                          # the input is not written
test_close(y, F.gelu(x, approximate='tanh'), eps=2e-6)                  # the same function, to float rounding
test_close(y, 0.5 * x.double() * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x.double() + 0.044715 * x.double() ** 3))), eps=2e-6)
xg = x.clone().requires_grad_()                                          # with a gradient to track: PyTorch's own kernel, bit for bit
assert torch.equal(g(xg), F.gelu(xg, approximate='tanh'))
assert torch.equal(torch.autograd.grad(g(xg).sum(), xg)[0], torch.autograd.grad(F.gelu(xg, approximate='tanh').sum(), xg)[0])
xb = x.bfloat16()                                                        # bfloat16 (autocast): PyTorch's kernel
with torch.no_grad(): assert torch.equal(g(xb), F.gelu(xb, approximate='tanh'))
TanhGELU.fast_cpu = False
with torch.no_grad(): assert torch.equal(g(x), F.gelu(x, approximate='tanh'))  # the switch restores PyTorch's kernel everywhere
TanhGELU.fast_cpu = True

# %% [markdown]
# Checks: the layer order is exactly the official one, the output has the right shape on any batch shape, and
# initialisation follows Xavier's bound.

# %%
net = MLP(7, 3, hidden=(32, 32, 32, 32))
kinds = [type(m).__name__ for m in net]
test_eq(kinds, ['Linear', 'TanhGELU', 'LayerNorm'] * 4 + ['Linear'])
test_eq(net[1].approximate, 'tanh'); test_eq(net[2].eps, 1e-6)
test_eq(net(torch.randn(5, 7)).shape, (5, 3))
test_eq(net(torch.randn(2, 4, 7)).shape, (2, 4, 3))
lin = [m for m in net if isinstance(m, nn.Linear)]
assert all((m.bias == 0).all() for m in lin)
for m in lin:
    bound = (6 / (m.in_features + m.out_features)) ** 0.5
    assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound


# %% [markdown]
# The forward pass against an independent computation: the network written out from the formulas, with GELU's tanh
# approximation $\tfrac12 h\,(1 + \tanh(\sqrt{2/\pi}\,(h + 0.044715\,h^3)))$ and LayerNorm
# $(h - \mu)/\sqrt{\sigma^2 + \epsilon}\cdot w + b$ with the *population* variance $\sigma^2$ and $\epsilon = 10^{-6}$. LayerNorm's
# scale and shift are set away from 1 and 0 first, so that they count; float64 makes any difference in the formulas show.

# %%
def hand_mlp(net, x):
    "The MLP from its formulas: per hidden layer affine → tanh-GELU → LayerNorm (population variance, ε = 1e-6); then affine."
    lin, lns = [m for m in net if isinstance(m, nn.Linear)], [m for m in net if isinstance(m, nn.LayerNorm)]
    for L, N in zip(lin[:-1], lns):
        h = x @ L.weight.T + L.bias
        h = 0.5 * h * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (h + 0.044715 * h ** 3)))
        mu = h.mean(-1, keepdim=True); var = ((h - mu) ** 2).mean(-1, keepdim=True)
        x = (h - mu) / torch.sqrt(var + 1e-6) * N.weight + N.bias
    return x @ lin[-1].weight.T + lin[-1].bias

net = MLP(7, 3, hidden=(32, 32)).double()
with torch.no_grad():
    for m in net:
        if isinstance(m, nn.LayerNorm): m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.5, 0.5)
    x = torch.randn(16, 7, dtype=torch.float64)
    test_close(net(x), hand_mlp(net, x), eps=1e-10)

# %% [markdown]
# The ε is not cosmetic. A hidden layer whose features barely differ (population variance $\sigma^2 = 10^{-6}$, as when a
# layer's inputs are nearly constant) comes out of LayerNorm (unit scale, zero shift) with standard deviation
# $\sqrt{\sigma^2/(\sigma^2 + \epsilon)}$: 0.71 with Flax's $\epsilon = 10^{-6}$, 0.30 with PyTorch's default $10^{-5}$.

# %%
ln = MLP(7, 3, hidden=(32,))[2]                                   # a freshly made LayerNorm: scale 1, shift 0
z = torch.randn(16, 32)
h = 1e-3 * (z - z.mean(-1, keepdim=True)) / z.std(-1, unbiased=False, keepdim=True)   # variance exactly 1e-6 per row
with torch.no_grad(): test_close(ln(h).std(-1, unbiased=False), torch.full((16,), (1e-6 / (1e-6 + 1e-6)) ** 0.5), eps=1e-3)


# %% [markdown]
# ## The EMA target update
#
# The target value network trails the online one: $\bar\varphi \leftarrow \tau \varphi + (1-\tau)\bar\varphi$ with
# $\tau = 0.005$, i.e. a `lerp` of each target parameter towards its online twin. (Which online weights, pre- or
# post-update, is the agent's business: chapter 8.)

# %%
#| export
@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, tau: float = 0.005) -> None:
    "In place: every target parameter ← τ·online + (1 − τ)·target."
    for p_t, p_o in zip(target.parameters(), online.parameters(), strict=True): p_t.lerp_(p_o, tau)


# %%
online, target = MLP(3, 1, hidden=(4,)), MLP(3, 1, hidden=(4,))
expected = [0.1 * po + 0.9 * pt for po, pt in zip(online.parameters(), target.parameters())]
ema_update_(target, online, tau=0.1)
for e, pt in zip(expected, target.parameters()): test_close(pt.detach(), e.detach(), eps=1e-7)
ema_update_(target, online, tau=1.0)
assert all(torch.equal(pt, po) for po, pt in zip(online.parameters(), target.parameters()))
test_fail(lambda: ema_update_(MLP(3, 1, hidden=(4, 4)), online), contains='zip()')  # different architectures


# %% [markdown]
# ## Provenance and atomic writes
#
# Every number this project reports comes with a record of how it was made: commit, command, seed, machine,
# wall time and versions. The machine includes the CPU's model and vector extensions: this project's runs are made
# on machines that change from session to session (one with avx512_bf16, one with AVX2 only), and a wall time or a
# bfloat16 speed means little without them. Files are written atomically (a temporary file in the same folder, then a rename),
# so an interrupted run never leaves a half-written file that looks valid.

# %%
#| export
def atomic_write(path: str | Path, write_fn) -> Path:
    "Call `write_fn(tmp_path)` then rename the temporary file onto `path`: readers see the old file or the whole new one."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp'); os.close(fd)
    umask = os.umask(0); os.umask(umask)
    try: write_fn(Path(tmp)); os.chmod(tmp, 0o666 & ~umask); os.replace(tmp, path)  # mkstemp's 0600 → usual perms
    finally:
        if os.path.exists(tmp): os.unlink(tmp)
    return path

def write_json(path: str | Path, obj) -> Path:
    "Atomically write `obj` as indented JSON."
    return atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=str) + '\n'))

def write_csv(path: str | Path, rows: list[dict]) -> Path:
    "Atomically write dict rows as CSV; the header is the union of their keys, in order of appearance."
    fields = list(dict.fromkeys(k for r in rows for k in r))
    def write(p):
        with open(p, 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=fields, restval=''); w.writeheader(); w.writerows(rows)
    return atomic_write(path, write)

def read_csv(path: str | Path) -> list[dict]:
    "A CSV file's rows as dicts of strings; [] when there is no file yet (a run that has not logged, a report not yet written)."
    path = Path(path)
    if not path.exists(): return []
    with open(path, newline='') as f: return list(csv.DictReader(f))


# %% [markdown]
# Logs of long runs grow one row at a time and must survive a kill: `append_csv` adds a line at the end (the file is
# not rewritten, so a tail -f or TensorBoard keeps reading it) and rewrites the whole file atomically only when a row
# brings a new column or when a resumed run drops the rows after its checkpoint (`keep_until`), together with a last
# line that a killed process left half-written. Rows carry a `step` column.

# %%
#| export
def append_csv(path: Path, row: dict | None = None, keep_until: int | None = None):
    """Append a row: one line at the end of the file when the header already has its columns; the whole file is
    rewritten (atomically) only when a new column appears or, with `keep_until`, to drop the rows after that step
    (a resumed run) and a last line that a killed process left half-written."""
    path = Path(path)
    if keep_until is None and row and path.exists():
        with open(path, newline='') as f: header = next(csv.reader(f), [])
        if header and set(row) <= set(header):
            with open(path, 'a', newline='') as f: csv.DictWriter(f, fieldnames=header, restval='').writerow(row)
            return
    rows = [r for r in read_csv(path) if None not in r.values() and str(r.get('step', '')).isdigit()]   # drop a half-written line
    if keep_until is not None: rows = [r for r in rows if int(r['step']) <= keep_until]
    rows += [row] if row else []
    if rows: write_csv(path, rows)
    elif keep_until is not None: path.unlink(missing_ok=True)   # no row left (a fresh run over an old one's log): no old rows either



# %%
# The logs grow by appending one line (the file is not rewritten: its inode stays); a new column rewrites it with the
# wider header; a resume drops the rows after the checkpoint's step and a half-written last line.
f = Path(tempfile.mkdtemp()) / 'log.csv'
for s in (10, 20): append_csv(f, dict(step=s, loss=0.5))
ino = f.stat().st_ino; append_csv(f, dict(step=30, loss=0.4)); test_eq(f.stat().st_ino, ino)
test_eq(f.read_text().count('step'), 1)
append_csv(f, dict(step=40, loss=0.3, V=-1.0))                               # a new column: header widened, file rewritten
test_eq([r['V'] for r in csv.DictReader(open(f))], ['', '', '', '-1.0'])
with open(f, 'a') as fh: fh.write('5')              # killed while writing the row of step 50: '5' would pass for step 5
append_csv(f, keep_until=40); test_eq([int(r['step']) for r in csv.DictReader(open(f))], [10, 20, 30, 40])
append_csv(f, keep_until=20); test_eq([int(r['step']) for r in csv.DictReader(open(f))], [10, 20])
append_csv(f, keep_until=0); assert not f.exists()   # a fresh run (step 0) keeps none of an earlier run's rows

# %%
with tempfile.TemporaryDirectory() as d:
    f = write_json(Path(d) / 'sub' / 'a.json', {'x': 1})
    test_eq(json.loads(f.read_text()), {'x': 1})
    test_eq(f.stat().st_mode & 0o777, 0o666 & ~(lambda m: (os.umask(m), m)[1])(os.umask(0)))  # ordinary permissions
    def boom(p): p.write_text('half'); raise OSError('disk full')
    test_fail(lambda: atomic_write(f, boom), contains='disk full')
    test_eq(json.loads(f.read_text()), {'x': 1})        # the old file survives an interrupted write
    test_eq(sorted(os.listdir(Path(d) / 'sub')), ['a.json'])  # and no temporary file is left behind
    rows = [dict(step=1, loss=0.5), dict(step=2, V=-1.0)]
    test_eq(read_csv(write_csv(Path(d) / 'r.csv', rows)), [dict(step='1', loss='0.5', V=''), dict(step='2', loss='', V='-1.0')])
    test_eq(read_csv(Path(d) / 'none.csv'), [])        # no file yet: no rows
    c = write_csv(Path(d) / 'r.csv', [{'step': 1, 'loss': 0.5}, {'step': 2, 'success': 1.0}])
    test_eq(c.read_text().splitlines(), ['step,loss,success', '1,0.5,', '2,,1.0'])


# %% [markdown]
# Every result this project writes carries a provenance record: the commit and whether the tree was dirty, a hash of the
# code the process imported, the command, the seed, the machine and the versions. Its small readers first:

# %%
#| export
def _git(*args):
    try: return subprocess.run(['git', *args], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError): return None

def _version(pkg):
    try: return metadata.version(pkg)
    except metadata.PackageNotFoundError: return None

def _source_sha256() -> str:
    "SHA-256 of the package's .py files as they are when mac.core is imported (the code a run actually loaded)."
    h = hashlib.sha256()
    pkg = Path(importlib.util.find_spec('mac').origin).parent  # works from the notebook and from the package
    for f in sorted(pkg.glob('*.py')): h.update(f.name.encode()); h.update(f.read_bytes())
    return h.hexdigest()[:16]

_SOURCE_SHA256 = _source_sha256()

# %% [markdown]
# The machine part of a record names the CPU's vector extensions, since they decide how fast this code runs on a CPU
# (bfloat16 is fast only with the last two):

# %%
#| export
_VECTOR_FLAGS = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16')   # what decides CPU speed here (fast bf16 needs either of the last two)

def _cpu() -> dict:
    "The CPU's model name and vector extensions (Linux's /proc/cpuinfo; elsewhere whatever `platform` knows)."
    try: info = Path('/proc/cpuinfo').read_text()
    except OSError: return dict(model=platform.processor() or None, features=None)
    field = lambda k: next((l.split(':', 1)[1].strip() for l in info.splitlines() if l.startswith(k)), '')
    flags = set(field('flags').split())
    return dict(model=field('model name') or None, features=[f for f in _VECTOR_FLAGS if f in flags] if flags else None)   # None: not known


# %% [markdown]
# Records name no one's home directory: paths under it are written with `~`, which still expands where the record is
# used.

# %%
#| export
def unhome(s: str) -> str:
    "`s` with this user's home directory written as `~`, so that records name no one's home (paths stay usable: `~` expands)."
    home = str(Path.home()).rstrip('/')
    return re.sub(rf'{re.escape(home)}(?=/|\s|$)', '~', s) if home else s


# %% [markdown]
# And the record itself:

# %%
#| export
def provenance(seed=None, wall_time_s=None, device=None, command=None, **extra) -> dict:
    "A record of how a result was made: commit, command, seed, machine, wall time, versions (+ anything in `extra`)."
    dev = torch.device(device) if device is not None else None
    # $MAC_COMMIT, when set, names the commit of a copied tree (a GPU machine's copy may lack .git or carry a stale one)
    commit, copied = (os.environ['MAC_COMMIT'], True) if os.environ.get('MAC_COMMIT') else (_git('rev-parse', 'HEAD'), False)
    return dict(
        commit=commit, dirty=None if copied or commit is None else bool(_git('status', '--porcelain', '--untracked-files=no')),
        mac_source_sha256=_SOURCE_SHA256,  # `dirty` is the tree when the record is written; this is the code the run imported
        command=unhome(command if command is not None else ' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])),
        seed=seed, wall_time_s=None if wall_time_s is None else round(float(wall_time_s), 2),
        finished_at=time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        machine=dict(host=platform.node(), platform=platform.platform(), processor=platform.machine(),
                     cpus=os.cpu_count(), cpu=_cpu(), torch_threads=torch.get_num_threads(),
                     load_avg=[round(x, 2) for x in os.getloadavg()] if hasattr(os, 'getloadavg') else None,
                     device=str(dev) if dev else None,
                     gpu=torch.cuda.get_device_name(dev) if dev is not None and dev.type == 'cuda' else None),
        versions={'python': platform.python_version(), **{p: _version(p) for p in
                  ('mac', 'torch', 'numpy', 'ogbench', 'mujoco', 'gymnasium')}},
        **extra)


# %%
p = provenance(seed=3, wall_time_s=1.234, device='cpu', command='demo', steps=10)
test_eq((p['seed'], p['wall_time_s'], p['command'], p['steps']), (3, 1.23, 'demo', 10))
test_eq(p['versions']['torch'].split('+')[0], torch.__version__.split('+')[0])
assert {'commit', 'dirty', 'mac_source_sha256', 'machine', 'versions', 'finished_at'} <= set(p)
with tempfile.TemporaryDirectory() as d:  # a copy of the code (as sent to a GPU machine): the commit comes from $MAC_COMMIT
    here = os.getcwd(); os.chdir(d); os.environ['MAC_COMMIT'] = 'abc123'
    try: q = provenance()
    finally: os.chdir(here); del os.environ['MAC_COMMIT']
test_eq((q['commit'], q['dirty']), ('abc123', None))
assert set(p['machine']['cpu']) == {'model', 'features'}   # which CPU made it: machines differ from session to session
h = str(Path.home())   # records name no home directory: the shell expands `~` before a command sees it, so it is written back
test_eq(provenance(command=f'mac_train --dataset-path {h}/.ogbench/data/x --out {h}')['command'], 'mac_train --dataset-path ~/.ogbench/data/x --out ~')
test_eq(unhome(f'{h}other/x'), f'{h}other/x')             # only the home directory itself, not a name that starts like it


# %% [markdown]
# Every command (`mac_data`, `mac_train`, `mac_quickstart`, …) reports a known error as one line and a distinct exit
# code, and shows the traceback only when asked (`--debug`): 2 for input the user can fix (a bad setting, a missing or
# invalid file, a busy folder), 3 for a training that diverged, 4 for the system (a full disk, a permission).

# %%
#| export
EXIT_USAGE, EXIT_DIVERGED, EXIT_SYSTEM = 2, 3, 4

def run_cli(prog: str, body, debug: bool = False, codes: tuple = ()) -> int:
    "Run a command's `body()`; a known error becomes one line on stderr and its exit code (re-raised with `debug`)."
    table = (*codes, ((ValueError, FileExistsError, FileNotFoundError), EXIT_USAGE), (OSError, EXIT_SYSTEM))
    try: return body()
    except Exception as e:
        code = next((c for types, c in table if isinstance(e, types)), None)
        if code is None or debug: raise
        hint = '' if code == EXIT_USAGE else ' (run again with --debug for the traceback)'
        print(f'{prog}: error: {" ".join(str(e).split())}{hint}', file=sys.stderr)
        return code


# %%
import io, contextlib
err = io.StringIO()
with contextlib.redirect_stderr(err): rc = run_cli('demo', lambda: int('x'))
test_eq((rc, err.getvalue()), (2, "demo: error: invalid literal for int() with base 10: 'x'\n"))
def disk_full(): raise OSError(28, 'No space left on device')
with contextlib.redirect_stderr(err): test_eq(run_cli('demo', disk_full), 4)
with contextlib.redirect_stderr(err): test_eq(run_cli('demo', lambda: open('/nonexistent/x')), 2)       # a missing file: the user's to fix
test_eq(run_cli('demo', lambda: 0), 0)
test_fail(lambda: run_cli('demo', lambda: int('x'), debug=True), contains='invalid literal')             # --debug: the traceback
test_fail(lambda: run_cli('demo', lambda: [][1]), contains='list index out of range')                     # a bug is never hidden

# %% [markdown]
# ## Implementation details
#
# 1. LayerNorm uses `eps=1e-6` (Flax's default) rather than PyTorch's 1e-5, to match the official networks.
# 2. GELU uses the tanh approximation, JAX's default, which the official code inherits.
# 3. Every linear layer, the output layer included, is Xavier-uniform with zero bias: the official code has no
#    small final-layer initialisation.
# 4. `ema_update_` takes whichever online weights it is given; the official code passes the *pre-update* weights
#    (a one-step lag), and chapter 8 reproduces that.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
