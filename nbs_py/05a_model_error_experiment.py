# %% [markdown]
# # Experiment: compounding model error against chunk length
# > The paper's Figure 2 measured: chapter 5's chunk dynamics trained for several chunk lengths and rolled out open-loop on held-out trajectories (`mac_model_error`).

# %%
#| default_exp experiments.model_error

# %%
#| export
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from tqdm import tqdm

from mac.core import atomic_write, get_device, provenance, run_cli, seed_everything, write_csv, write_json
from mac.batches import ChunkDataset, ChunkReturn, ObsNormalizer, chunk_starts, sample_windows
from mac.data import DEFAULT_DATASET_DIR, ensure_dataset, load_ogbench, parse_name
from mac.models import ChunkDynamics, rollout_open_loop

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail


# %% [markdown]
# The measurement that [chapter 5](05_chunk_models.ipynb) describes ("The compounding-error experiment") and whose
# committed run it shows, kept apart from the module that defines the models: `mac.models` holds the networks, this
# notebook exports `mac.experiments.model_error`, which trains them on generated data and measures their open-loop
# error.

# %%
#| export
def _train_dynamics(data: ChunkDataset, steps, hidden, batch, lr, generator, progress, desc):
    model = ChunkDynamics(data.obs_dim, data.action_dim, data.n, (hidden,) * 4).to(data.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for i in (bar := tqdm(range(steps), desc=desc, disable=not progress, mininterval=2)):
        b = data.sample(batch, generator)
        loss = model.loss(b['observations'], b['actions'], b['next_observations'])
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if i % 100 == 0: losses.append(loss.item()); bar.set_postfix(loss=f'{losses[-1]:.2e}')
    return model, losses


# %% [markdown]
# The experiment: one model per chunk length n, each trained on the same data, then rolled out open-loop from the same
# held-out states over the same `horizon` env steps (so that every n sees the same actions), with the squared error per
# env step and its 95% interval over the rollouts:

# %%
#| export
def model_error_experiment(out='results/model_error', env: str = 'cube-double', episodes: int = 200, ns=(1, 5, 10, 25),
                           steps: int = 10_000, hidden: int = 512, batch: int = 256, horizon: int = 100, n_traj: int = 256,
                           seed: int = 0, dataset_dir=DEFAULT_DATASET_DIR, device=None, workers: int | None = None, progress=True) -> list[dict]:
    "Train chunk dynamics for each n, roll them out open-loop over `horizon` env steps of held-out trajectories; write CSV/PNG/provenance."
    t0, out, device = time.time(), Path(out), get_device(device)
    bad = [n for n in ns if horizon % n]
    if bad: raise ValueError(f'horizon {horizon} must be a multiple of every chunk length, not of {bad}')
    spec = parse_name(env)
    used = ensure_dataset(spec.dataset, episodes, dataset_dir, workers=workers or min(2, os.cpu_count() or 1), progress=progress)
    _, train, val = load_ogbench(spec.dataset, dataset_dir)
    norm = ObsNormalizer.from_data(val['observations'])
    seed_everything(seed); gd = torch.Generator(device).manual_seed(seed)
    held1 = ChunkDataset.from_ogbench(val, norm, ret=ChunkReturn(1), device=device)
    starts = chunk_starts(held1.first, held1.last, horizon)
    t = torch.as_tensor(np.random.default_rng(seed).choice(starts, n_traj, replace=len(starts) < n_traj), device=device)
    rows, curves = [], {}
    for n in ns:
        model, losses = _train_dynamics(ChunkDataset.from_ogbench(train, norm, ret=ChunkReturn(n), device=device), steps, hidden, batch, 3e-4, gd, progress, f'dynamics n={n}')
        w = sample_windows(ChunkDataset.from_ogbench(val, norm, ret=ChunkReturn(n), device=device), n_traj, horizon // n, t=t)
        with torch.no_grad(): pred = rollout_open_loop(model, w['observations'][0], w['actions'])
        mse = ((pred - w['observations']) ** 2).mean(-1)                                    # (L+1, n_traj)
        mean, half = mse.mean(1), 1.96 * mse.std(1) / n_traj ** 0.5
        curves[n] = losses
        rows += [dict(n=n, env_step=k * n, mse=mean[k].item(), ci95_low=(mean[k] - half[k]).item(), ci95_high=(mean[k] + half[k]).item(),
                      final_train_loss=losses[-1]) for k in range(len(mean))]
    _write_model_error(out, rows, ns, horizon, spec.dataset)
    write_json(out / 'provenance.json', provenance(seed=seed, wall_time_s=time.time() - t0, device=device, env=spec.dataset, dataset=used,
               ns=list(ns), steps=steps, hidden=f'{hidden}x4', batch=batch, horizon=horizon, n_traj=n_traj, loss_curves_every_100=curves))
    return rows


# %%
#| export
def _write_model_error(out: Path, rows, ns, horizon, dataset):
    import matplotlib.pyplot as plt
    write_csv(out / 'model_error.csv', rows)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for i, n in enumerate(ns):
        r = [x for x in rows if x['n'] == n and x['env_step'] > 0]  # step 0 is exact (MSE 0): off a log scale
        x = [q['env_step'] for q in r]
        ax.plot(x, [q['mse'] for q in r], 'o-' if n > 1 else '-', ms=3, color=f'C{i}', label=f'n = {n}')
        ax.fill_between(x, [q['ci95_low'] for q in r], [q['ci95_high'] for q in r], color=f'C{i}', alpha=0.2)
    ax.set(yscale='log', xlabel='environment steps into the open-loop rollout', ylabel='MSE (normalised observations)',
           title=f'Longer chunks compound less model error\n({dataset}, held-out trajectories, 95% CI)', xlim=(0, horizon))
    ax.legend(); fig.tight_layout()
    atomic_write(out / 'model_error.png', lambda p: fig.savefig(p, format='png'))
    plt.close(fig)


# %% [markdown]
# Its command line, `mac_model_error`:

# %%
#| export
@dataclass
class _ModelErrorArgs:
    "Reproduce the paper's Figure 2: open-loop model error vs chunk length."
    out: str = 'results/model_error'        # output folder
    env: str = 'cube-double'                # environment of the play dataset
    episodes: int = 200                     # episodes to generate when no dataset exists (an existing one is used as is)
    ns: tuple[int, ...] = (1, 5, 10, 25)    # chunk lengths, e.g. --ns 1 5 10 25
    steps: int = 10_000                     # gradient steps per model
    hidden: int = 512                       # width of the 4 hidden layers
    horizon: int = 100                      # env steps of the open-loop rollouts (a multiple of every chunk length)
    n_traj: int = 256                       # rollouts measured
    seed: int = 0                           # seeds the models, batches and chosen trajectories
    device: str = 'auto'                    # 'auto' (CUDA if available), 'cpu' or 'cuda[:i]'
    dataset_dir: str = DEFAULT_DATASET_DIR  # where OGBench's files are
    debug: bool = False                     # show the traceback of an error

def model_error_cli(argv=None):
    "Command line: `mac_model_error --out results/model_error --env cube-double --episodes 200 --steps 10000`."
    a = tyro.cli(_ModelErrorArgs, args=argv, prog='mac_model_error')
    def body():
        for k in ('episodes', 'steps', 'hidden', 'horizon', 'n_traj'):
            if getattr(a, k) < 1: raise ValueError(f"--{k.replace('_', '-')} must be >= 1, got {getattr(a, k)}")
        if not a.ns or any(n < 1 for n in a.ns): raise ValueError(f'--ns: chunk lengths must be >= 1, got {a.ns}')
        rows = model_error_experiment(a.out, a.env, a.episodes, a.ns, a.steps, a.hidden, horizon=a.horizon, n_traj=a.n_traj,
                                      seed=a.seed, dataset_dir=a.dataset_dir, device=get_device(a.device))
        for n in a.ns: print(f'n = {n:2d}: MSE after {a.horizon} env steps = {[r["mse"] for r in rows if r["n"] == n][-1]:.4g}')
        print(f'wrote {a.out}/model_error.csv, model_error.png, provenance.json')
        return 0
    return run_cli('mac_model_error', body, a.debug)


# %% [markdown]
# A seconds-long sanity run of the whole pipeline (tiny models, a 4-episode dataset): it checks the plumbing and
# that windows really follow one trajectory, not the science.

# %%
import tempfile
tmp = Path(tempfile.mkdtemp())
rows = model_error_experiment(tmp / 'out', 'cube-single', episodes=2, ns=(1, 5), steps=30, hidden=32, horizon=20, n_traj=8,
                              dataset_dir=tmp / 'data', workers=1, progress=False)
test_eq(sorted({(r['n'], r['env_step']) for r in rows}), sorted([(1, k) for k in range(21)] + [(5, k) for k in range(0, 21, 5)]))
assert all(np.isfinite(r['mse']) and r['ci95_low'] <= r['mse'] <= r['ci95_high'] for r in rows)
assert all(r['mse'] > 0 for r in rows if r['env_step'] > 0)                # 30-step models are not exact: their error shows
assert (tmp / 'out' / 'model_error.png').exists() and (tmp / 'out' / 'provenance.json').exists()
_, tr, va = load_ogbench('cube-single-play-v0', tmp / 'data')
d5 = ChunkDataset.from_ogbench(va, ret=ChunkReturn(5))
w = sample_windows(d5, 3, 4, t=torch.tensor([0, 100, 200]))
test_eq(w['observations'][:, 1], torch.as_tensor(va['observations'][100:121:5]))  # one trajectory's states, in order

# %% [markdown]
# The measurement itself, checked with a model that cannot be wrong: an *oracle* chunk dynamics that finds the row of
# the validation data whose state and chunk are exactly the ones it is given and returns the state n steps later (NaN
# when there is no such row). Rolled out open-loop on the experiment's windows, it must reproduce every true state, at
# every step and not only the first. That fails if a window's chunks are not the ones taken from its states, or if a
# window mixes trajectories (what the official `sample_consecutive`'s reshape does, [`datasets.py:502-507`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L502-L507)).

# %%
obs_va = torch.as_tensor(va['observations'], dtype=torch.float64)
chunk_va = torch.as_tensor(va['actions'], dtype=torch.float64).clamp(-1 + 1e-5, 1 - 1e-5).unfold(0, 5, 1).transpose(1, 2).flatten(1)
key_va = torch.cat([obs_va[:len(chunk_va)], chunk_va], -1)                   # row t: (s_t, a_t, …, a_{t+4})
def oracle(s, a):
    "The validation data's own chunk dynamics: s_{t+5} for the row t whose (state, chunk) is exactly (s, a), else NaN."
    dist, t = torch.cdist(torch.cat([s, a], -1).double(), key_va, compute_mode='donot_use_mm_for_euclid_dist').min(1)
    return torch.where((dist < 1e-6)[:, None], obs_va[(t + 5).clamp(max=len(obs_va) - 1)], torch.nan).float()
test_close(rollout_open_loop(oracle, w['observations'][0], w['actions']), w['observations'], eps=1e-6)

# %%
#| hide
import nbdev; nbdev.nbdev_export()
