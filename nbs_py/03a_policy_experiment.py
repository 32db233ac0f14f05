# %% [markdown]
# # Experiment: chunk policies on OGBench data
# > Chapter 3's flow and Gaussian chunk policies trained on a generated cube-single dataset and compared at held-out states (`mac_policy_demo`).

# %%
#| default_exp experiments.chunk_policies

# %%
#| export
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from tqdm import tqdm

from mac.core import atomic_write, get_device, provenance, run_cli, seed_everything, write_csv, write_json
from mac.batches import ChunkDataset, ChunkReturn, ObsNormalizer
from mac.data import DEFAULT_DATASET_DIR, ensure_dataset, load_ogbench, parse_name
from mac.policies import FlowChunkPolicy, GaussianChunkPolicy

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail


# %% [markdown]
# The experiment described in [chapter 3](03_chunk_policies.ipynb) ("On OGBench data"), kept apart from the module that
# defines the policies: `mac.policies` holds the networks, this notebook exports `mac.experiments.chunk_policies`,
# which trains them on real data. Chapter 3 shows the committed run; `tests/test_cli.py` runs the command end to end.
#
# The score: for each held-out state, the distance (RMS per chunk entry) from the chunk the oracle took to the nearest
# of the N sampled chunks, and to the samples on average.

# %%
#| export
def _chunk_metrics(samples, true):
    "Per state: distance from the true chunk to the nearest of N samples, and the mean distance (RMS per entry)."
    d = ((samples - true[:, None]) ** 2).mean(-1).sqrt()   # (B, N)
    return d.min(1).values, d.mean(1)

def _train(policy, data, steps, batch, lr, generator, desc, progress):
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    losses = []
    for i in (bar := tqdm(range(steps), desc=desc, disable=not progress, mininterval=2)):
        b = data.sample(batch, generator)
        loss = policy.loss(b['observations'], b['actions'])
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if i % 100 == 0: losses.append(loss.item()); bar.set_postfix(loss=f'{losses[-1]:.3f}')
    return losses


# %%
#| export
def policy_demo(out='results/chunk_policies', env='cube-single', episodes: int = 50, steps: int = 3000, hidden: int = 512,
                batch: int = 256, n: int = 10, seed: int = 0, dataset_dir=DEFAULT_DATASET_DIR, device=None, progress=True) -> dict:
    "Train flow and Gaussian chunk policies on a generated OGBench dataset; write metrics, figure and provenance."
    t0, out, device = time.time(), Path(out), get_device(device)
    spec = parse_name(env)
    used = ensure_dataset(spec.dataset, episodes, dataset_dir, workers=min(2, os.cpu_count() or 1), progress=progress)
    _, train, val = load_ogbench(spec.dataset, dataset_dir)
    norm = ObsNormalizer.from_data(val['observations'])
    data, held = (ChunkDataset.from_ogbench(d, norm, ret=ChunkReturn(n), device=device) for d in (train, val))
    seed_everything(seed); gd = torch.Generator(device).manual_seed(seed)
    pols = {'flow': FlowChunkPolicy(data.obs_dim, data.action_dim, n, (hidden,) * 4).to(device),
            'Gaussian': GaussianChunkPolicy(data.obs_dim, data.action_dim, n, (hidden,) * 4).to(device)}
    curves = {k: _train(p, data, steps, batch, 3e-4, gd, f'{k} BC', progress) for k, p in pols.items()}
    b = held.sample(512, torch.Generator(device).manual_seed(seed + 1))
    with torch.no_grad():
        samples = {k: p.sample(b['observations'], 32, generator=gd) for k, p in pols.items()}
        metrics = {k: [m.mean().item() for m in _chunk_metrics(s, b['actions'])] for k, s in samples.items()}
        metrics['Gaussian'].append(-pols['Gaussian'].log_prob(b['observations'], b['actions']).mean().item())
    rows = [dict(policy=k, nearest_of_32_rms=round(v[0], 4), mean_rms=round(v[1], 4),
                 heldout_nll=round(v[2], 2) if len(v) > 2 else '') for k, v in metrics.items()]
    fig = _plot_paths(samples, b['actions'], n, data.action_dim)
    atomic_write(out / 'paths.png', lambda p: fig.savefig(p, bbox_inches='tight', format='png'))
    write_csv(out / 'metrics.csv', rows)
    write_json(out / 'provenance.json', provenance(seed=seed, wall_time_s=time.time() - t0, device=device, env=spec.dataset,
               dataset=used, steps=steps, hidden=f'{hidden}x4', batch=batch, n=n, heldout_states=512, samples_per_state=32,
               loss_curves={k: v[::5] for k, v in curves.items()}))
    return {r['policy']: r for r in rows}


# %% [markdown]
# The figure draws each sampled chunk as the end-effector path its xy actions imply (cumulative sums), beside the
# dataset's own chunk:

# %%
#| export
def _plot_paths(samples, true, n, d, k=4):
    "Implied end-effector xy paths (cumulative actions) of the sampled chunks at the first k held-out states."
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(len(samples), k, figsize=(2.4 * k, 2.5 * len(samples)), dpi=80, squeeze=False, layout='constrained')
    for r, (name, sm) in enumerate(samples.items()):
        for j in range(k):
            ax = axs[r, j]
            for c in sm[j].reshape(-1, n, d)[..., :2].cumsum(1).cpu(): ax.plot(*torch.cat([torch.zeros(1, 2), c]).T, color='C0' if r == 0 else 'C3', alpha=0.3, lw=0.8)
            ax.plot(*torch.cat([torch.zeros(1, 2), true[j].reshape(n, d)[:, :2].cumsum(0).cpu()]).T, 'k--', lw=1.5)
            ax.set(xticks=[], yticks=[], aspect='equal'); ax.set_title(f'{name}, state {j}', fontsize=8)
    fig.suptitle('32 sampled chunks per held-out state as implied end-effector xy paths (dashed: the oracle)')
    return fig


# %% [markdown]
# Its command line, `mac_policy_demo`:

# %%
#| export
@dataclass
class _PolicyDemoArgs:
    "Flow vs Gaussian chunk policies on a generated OGBench dataset."
    out: str = 'results/chunk_policies'     # output folder
    env: str = 'cube-single'                # environment of the play dataset
    episodes: int = 50                      # episodes to generate when no dataset exists (an existing one is used as is)
    steps: int = 3000                       # gradient steps per policy
    hidden: int = 512                       # width of the 4 hidden layers (paper: 512)
    seed: int = 0                           # seeds the networks, batches and samples
    device: str = 'auto'                    # 'auto' (CUDA if available), 'cpu' or 'cuda[:i]'
    dataset_dir: str = DEFAULT_DATASET_DIR  # where OGBench's files are
    debug: bool = False                     # show the traceback of an error

def policy_demo_cli(argv=None):
    "Command line: `mac_policy_demo --out results/chunk_policies --episodes 50 --steps 3000`."
    a = tyro.cli(_PolicyDemoArgs, args=argv, prog='mac_policy_demo')
    def body():
        for k in ('episodes', 'steps', 'hidden'):
            if getattr(a, k) < 1: raise ValueError(f'--{k} must be >= 1, got {getattr(a, k)}')
        res = policy_demo(a.out, a.env, a.episodes, a.steps, a.hidden, seed=a.seed, dataset_dir=a.dataset_dir, device=get_device(a.device))
        for r in res.values(): print(r)
        print(f'wrote {a.out}/paths.png, metrics.csv, provenance.json')
        return 0
    return run_cli('mac_policy_demo', body, a.debug)


# %% [markdown]
# The score on a hand-made case: three samples at distances 0, 1 and 2 from the true chunk.

# %%
true = torch.zeros(1, 4)
samples = torch.stack([torch.zeros(4), torch.ones(4), 2 * torch.ones(4)])[None]   # (B=1, N=3, 4)
nearest, mean = _chunk_metrics(samples, true)
test_close(nearest, torch.tensor([0.]))
test_close(mean, torch.tensor([1.]))

# %%
#| hide
import nbdev; nbdev.nbdev_export()
