# %% [markdown]
# # Action-chunk models
# > Deterministic chunk dynamics, reward and success models, open-loop rollouts, and why chunks cut compounding error (the paper's Figure 2).

# %%
#| default_exp models

# %%
#| export
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as Fn
from tqdm import tqdm

from mac.core import MLP, atomic_write, get_device, provenance, seed_everything, write_csv, write_json
from mac.data import DEFAULT_DATASET_DIR, ChunkDataset, ObsNormalizer, chunk_starts, ensure_dataset, load_ogbench, parse_name, sample_windows

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail
import matplotlib.pyplot as plt


# %% [markdown]
# ## In the paper
#
# > Namely, instead of training a single-step model $p(s_{t+1} \mid s_t, a_t)$, we train a multi-step model
# > $p(s_{t+n} \mid s_t, a_{t:t+n-1})$ that takes an action-chunk $a_{t:t+n-1}$ as input and predicts a future state that
# > is $n$-step ahead. This substantially reduces the number of recursive model calls and mitigates compounding errors
# > (Figure 1, left), enabling long-horizon imaginary rollouts over 100 environment steps. (Section 1)
#
# > $L^{\text{dyn}}(\psi) = \mathbb{E}_{(s_t, \mathbf{a}_t, \dots, s_{t+n}) \sim \mathcal{D}} [\|p_\psi(s_t, \mathbf{a}_t) - s_{t+n}\|_2^2], \quad (5)$
# >
# > $L^{\text{rew}}(\psi) = \mathbb{E}_{(s_t, \mathbf{a}_t, \dots, s_{t+n}) \sim \mathcal{D}} [\|r_\psi(s_t, \mathbf{a}_t) - \mathbf{r}_t\|_2^2], \quad (6)$ (Section 4.2)
#
# > For large-scale benchmarks, we parameterize the reward model and the terminal model using a single success
# > prediction network $f_\psi(s_t, a_t)$, where termination is calculated as $\mathbb{1}(f_\psi(s_t, a_t) > 0.5)$ and
# > reward is calculated as $\mathbb{1}(f_\psi(s_t, a_t) > 0.5) - 1$. For reward-based tasks, we use a reward model
# > $r_\psi(s_t, a_t)$ without termination. (Appendix A.1)
#
# > Specifically, we train dynamics models with action chunk lengths of $\{1, 5, 10, 25\}$ and measure their mean
# > squared prediction errors along a length-100 dataset trajectory in puzzle-4x5. Figure 2 presents the result,
# > suggesting that longer action chunks indeed substantially mitigate error accumulation. Notably, the errors from a
# > standard one-step model diverge over time, substantiating the necessity of multi-step prediction for long-horizon
# > tasks. (Section 5.3, Figure 2)
#
# | symbol | meaning | code |
# |---|---|---|
# | $p_\psi(s, \mathbf a) = s + f_\psi(s, \mathbf a)$ | chunk dynamics (delta-parameterised) | `ChunkDynamics` |
# | $r_\psi(s, \mathbf a)$ | chunk reward, regresses $\mathbf r_t$ | `ChunkReward` |
# | $f_\psi(s, [g], \mathbf a)$ | success logit | `ChunkSuccess` |
# | L | chunks per open-loop rollout | `chunks.shape[0]` |

# %% [markdown]
# ## Derivation: why fewer calls means less compounding
#
# Let the true dynamics $s \mapsto f(s)$ be λ-Lipschitz, let each model call add an error $\epsilon_t$ of size at most ε to
# the state it predicts (ε₁ for a one-step model, εₙ for a chunk model), and let $e_t = \|\hat s_t - s_t\|$ be the
# rollout's error after t environment steps.
#
# 1. **One-step model, one call.** $\hat s_{t+1} - s_{t+1} = f(\hat s_t) - f(s_t) + \epsilon_t$, so $e_{t+1} \le \lambda e_t + \epsilon_1$:
#    the error already made grows by λ, and the call injects a new one.
# 2. **One-step model, T steps.** Unrolling from $e_0 = 0$: $e_T \le \epsilon_1 \sum_{i=0}^{T-1} \lambda^i$, i.e. T injections,
#    the one made i steps before the end amplified by $\lambda^i$.
# 3. **Chunk model, one call.** It imitates the n-step map $f^n$, whose Lipschitz constant is $\lambda^n$ (at most), not λ:
#    $e_{t+(k+1)n} \le \lambda^n e_{t+kn} + \epsilon_n$.
# 4. **Chunk model, T steps.** With $T/n$ calls: $e_T \le \epsilon_n \sum_{j=0}^{T/n-1} \lambda^{nj}$, i.e. only T/n injections,
#    each amplified by the same true-dynamics factor ($\lambda^{nj}$ after $nj$ steps) as in step 2.
# 5. **The ratio.** Grouping step 2's sum in blocks of n, $\sum_{i<T} \lambda^i = S_n(\lambda) \sum_{j<T/n} \lambda^{nj}$ with
#    $S_n(\lambda) = \sum_{i<n} \lambda^i$, so the one-step bound is $(\epsilon_1/\epsilon_n)\, S_n(\lambda)$ times the chunk bound, for every T.
# 6. **What chunking buys.** Not slower growth (for λ > 1 both bounds grow like $\lambda^T$), but a constant factor:
#    it drops all but one injection in n, worth $S_n(\lambda)$ ($= n$ at λ = 1, more for λ > 1, less for λ < 1).
# 7. **When it pays.** The chunk model wins as long as one of its calls is less than $S_n(\lambda)$ times worse than a
#    one-step call, $\epsilon_n < S_n(\lambda)\,\epsilon_1$; a chunk call predicts further ahead, so $\epsilon_n > \epsilon_1$ is expected.
# 8. **What the bound leaves out.** A learned model's error is not a constant ε: it grows once an imagined state drifts off
#    the data, so an early error can also make later calls worse. Whether the trade pays off with learned models is
#    empirical: the experiment below measures it.

# %% [markdown]
# ## Toy: a linear system where both errors are measurable
#
# True dynamics $x_{t+1} = A x_t$; a one-step model $x \mapsto A x + e$ and a chunk model $x \mapsto A^n x + e$ that make
# the *same* error e on every call. With $A = \lambda I$ the bounds of steps 2 and 4 hold with equality, so the measured
# T-step errors must equal them, and their ratio must be $S_n(\lambda)$ whatever T. For any A the chunk model's
# error after k calls is $\sum_{j<k} A^{nj} e$ (step 4 without norms). Not exported: a notebook toy.

# %%
def chunk_model_error(A, e, n: int, T: int, x0):
    "Roll the truth x ↦ Aⁿx and the model x ↦ Aⁿx + e for T/n calls from x0 (S,); the error x̂ − x after each call (T/n, S)."
    An, x_hat, x, errs = torch.linalg.matrix_power(A, n), x0, x0, []
    for _ in range(T // n):
        x_hat, x = An @ x_hat + e, An @ x; errs.append(x_hat - x)
    return torch.stack(errs)

S_n = lambda lam, n: sum(lam ** i for i in range(n))                      # S_n(λ) = 1 + λ + … + λⁿ⁻¹
e, x0, n = torch.tensor([1e-3, -2e-3, 5e-4], dtype=torch.float64), torch.ones(3, dtype=torch.float64), 10
for lam in (0.9, 1.0, 1.05):
    A = lam * torch.eye(3, dtype=torch.float64)
    for T in (20, 100):
        e1, en = chunk_model_error(A, e, 1, T, x0)[-1].norm(), chunk_model_error(A, e, n, T, x0)[-1].norm()
        test_close(e1, e.norm() * S_n(lam, T), eps=1e-12)                  # step 2: T injections
        test_close(en, e.norm() * S_n(lam ** n, T // n), eps=1e-12)       # step 4: T/n injections, each grown by λ^{nj}
        test_close(e1 / en, S_n(lam, n), eps=1e-9)                         # step 5: a constant factor, the same for T = 20 and 100
torch.manual_seed(0); A = torch.eye(3, dtype=torch.float64) + 0.05 * torch.randn(3, 3, dtype=torch.float64)   # any A
test_close(chunk_model_error(A, e, n, 100, x0)[-1], sum(torch.linalg.matrix_power(A, n * j) @ e for j in range(10)), eps=1e-12)

# %%
lam, T = 1.05, 100
A = lam * torch.eye(3, dtype=torch.float64)
err1, errn = chunk_model_error(A, e, 1, T, x0).norm(dim=-1), chunk_model_error(A, e, n, T, x0).norm(dim=-1)
fig, ax = plt.subplots(figsize=(6, 3.4), dpi=80)
ax.plot(range(1, T + 1), err1, label='one-step model (T calls)')
ax.plot(range(n, T + 1, n), errn, 'o', ms=5, label=f'chunk model, n = {n} (T/n calls)')
ax.plot(range(1, T + 1), err1 / S_n(lam, n), ':', c='gray', label='one-step error / $S_n(\\lambda)$')
ax.set(yscale='log', xlabel='environment steps into the rollout', ylabel='$\\|\\hat x - x\\|$',
       title=f'Chunks keep the growth rate (λ = {lam}) and cut the error {S_n(lam, n):.1f}-fold')
ax.legend(fontsize=8); plt.show()


# %% [markdown]
# ## The models
#
# All three are the chapter-0 MLP on the concatenation of their inputs, in the official code's order (state,
# [goal], chunk). The dynamics predicts the *change* of state (official `delta_pred=True`): the paper writes
# $p_\psi(s, \mathbf a) \approx s_{t+n}$, and $s + f_\psi$ is that with a residual that starts near "no change".

# %%
#| exports
class ChunkDynamics(nn.Module):
    "p_ψ(s, a) = s + f_ψ(s, a): the state n steps after executing the chunk a (B, n·d) from s (B, S)."
    def __init__(self, obs_dim: int, action_dim: int, n: int, hidden=(512, 512, 512, 512)):
        super().__init__()
        self.obs_dim, self.action_dim, self.n = obs_dim, action_dim, n
        self.net = MLP(obs_dim + n * action_dim, obs_dim, hidden)

    def forward(self, obs, actions): return obs + self.net(torch.cat([obs, actions], -1))

    def loss(self, obs, actions, next_obs):
        "Eq. 5 (mean over batch and state dims): (p_ψ(s_t, a_t) − s_{t+n})²."
        return ((self(obs, actions) - next_obs) ** 2).mean()

class ChunkReward(nn.Module):
    "r_ψ(s, a): the chunk reward Σ γ^i r_{t+i} (or its mean, chapter 2)."
    def __init__(self, obs_dim: int, action_dim: int, n: int, hidden=(512, 512, 512, 512)):
        super().__init__()
        self.net = MLP(obs_dim + n * action_dim, 1, hidden)

    def forward(self, obs, actions): return self.net(torch.cat([obs, actions], -1)).squeeze(-1)
    def loss(self, obs, actions, rewards): return ((self(obs, actions) - rewards) ** 2).mean()  # eq. (6)


# %%
#| exports
class ChunkSuccess(nn.Module):
    "f_ψ(s, [g], a) → success logit; success = 1(σ(f) > 0.5) gives termination and the reward success − 1."
    def __init__(self, obs_dim: int, action_dim: int, n: int, goal_dim: int = 0, hidden=(512, 512, 512, 512)):
        super().__init__()
        self.goal_dim = goal_dim
        self.net = MLP(obs_dim + goal_dim + n * action_dim, 1, hidden)

    def forward(self, obs, actions, goal=None):
        if (goal is None) != (self.goal_dim == 0): raise ValueError(f'this success model expects a goal of size {self.goal_dim}' if self.goal_dim else 'this success model takes no goal')
        return self.net(torch.cat([obs, *([goal] if goal is not None else []), actions], -1)).squeeze(-1)

    def loss(self, obs, actions, success, goal=None):
        "Binary cross-entropy of the logit against the 0/1 success target."
        return Fn.binary_cross_entropy_with_logits(self(obs, actions, goal), success)

    def predict(self, obs, actions, goal=None):
        "(reward, termination) = (1(σ(f) > 0.5) − 1, 1(σ(f) > 0.5)) as floats."
        success = (self(obs, actions, goal) > 0).float()  # σ(f) > 0.5  ⇔  f > 0
        return success - 1, success


# %% [markdown]
# Checks: a zero network predicts "no change" (the delta parameterisation), shapes, the success model's
# reward/termination rule and its goal handling.

# %%
dyn = ChunkDynamics(4, 2, 3, hidden=(16, 16))
with torch.no_grad(): dyn.net[-1].weight.zero_(); dyn.net[-1].bias.zero_()
s, a = torch.randn(5, 4), torch.randn(5, 6)
suc = ChunkSuccess(4, 2, 3, hidden=(8,))
with torch.no_grad():
    test_eq(dyn(s, a), s)                                                    # f_ψ = 0  ⇒  p_ψ(s, a) = s
    test_eq(ChunkReward(4, 2, 3, hidden=(8,))(s, a).shape, (5,))
    suc.net[-1].bias.fill_(3.0); suc.net[-1].weight.zero_()
    r, term = suc.predict(s, a); test_eq((r, term), (torch.zeros(5), torch.ones(5)))   # confident success: r = 0, done
    suc.net[-1].bias.fill_(-3.0)
    r, term = suc.predict(s, a); test_eq((r, term), (-torch.ones(5), torch.zeros(5)))
test_eq(ChunkSuccess(4, 2, 3, goal_dim=2, hidden=(8,))(s, a, torch.randn(5, 2)).shape, (5,))
test_fail(lambda: ChunkSuccess(4, 2, 3, goal_dim=2, hidden=(8,))(s, a), contains='expects a goal of size 2')

# %% [markdown]
# The loss falls on a tiny problem (a linear system driven by 3-step chunks), and the success loss matches
# `F.binary_cross_entropy` on probabilities.

# %%
g = seed_everything(0)
A, Bm = torch.randn(4, 4) * 0.1, torch.randn(4, 6) * 0.3
dyn = ChunkDynamics(4, 2, 3, hidden=(64, 64)); opt = torch.optim.Adam(dyn.parameters(), lr=1e-3)
hist = []
for i in range(300):
    s, a = torch.randn(128, 4, generator=g), torch.rand(128, 6, generator=g) * 2 - 1
    loss = dyn.loss(s, a, s + s @ A.T + a @ Bm.T); opt.zero_grad(); loss.backward(); opt.step(); hist.append(loss.item())
print(f'dynamics loss {np.mean(hist[:10]):.3f} → {np.mean(hist[-10:]):.4f}')
assert np.mean(hist[-10:]) < 0.1 * np.mean(hist[:10])
tgt = torch.tensor([0., 1., 1., 0., 1.])
with torch.no_grad(): test_close(suc.loss(s[:5], a[:5], tgt), Fn.binary_cross_entropy(torch.sigmoid(suc(s[:5], a[:5])), tgt), eps=1e-5)


# %% [markdown]
# ## Open-loop rollouts
#
# Apply the model L times, feeding a given sequence of chunks: $\hat s_0 = s_0$, $\hat s_{k+1} = p_\psi(\hat s_k, \mathbf a_k)$.
# Batched over B start states; the result holds every predicted state.

# %%
#| exports
def rollout_open_loop(dynamics, obs0, chunks):
    "States (L+1, B, S) from s_0 (B, S) and chunks (L, B, n·d): ŝ_{k+1} = p_ψ(ŝ_k, a_k)."
    states = [obs0]
    for a in chunks: states.append(dynamics(states[-1], a))
    return torch.stack(states)


# %%
class Counting(nn.Module):  # wraps a model and counts its calls
    def __init__(self, m): super().__init__(); self.m, self.calls = m, 0
    def forward(self, *x): self.calls += 1; return self.m(*x)
dyn = ChunkDynamics(4, 2, 3, hidden=(16,))
s0, chunks = torch.randn(7, 4), torch.randn(2, 7, 6)
with torch.no_grad():
    test_close(rollout_open_loop(dyn, s0, chunks)[2], dyn(dyn(s0, chunks[0]), chunks[1]))  # = composing by hand
for n in (1, 10):
    c = Counting(ChunkDynamics(4, 2, n, hidden=(8,)))
    with torch.no_grad(): out = rollout_open_loop(c, s0, torch.randn(100 // n, 7, 2 * n))
    test_eq(c.calls, 100 // n); test_eq(out.shape, (100 // n + 1, 7, 4))      # 100 env steps: 100 calls for n=1, 10 for n=10


# %% [markdown]
# ## The compounding-error experiment (Figure 2)
#
# On a locally generated cube-double play dataset (chapter 2), train one dynamics model per chunk length
# n ∈ {1, 5, 10, 25}, same width and number of gradient steps. Then, on held-out trajectories from the validation
# split, start at the true $s_t$ and roll each model open-loop for 100 environment steps feeding the **true** action
# chunks; compare each prediction $\hat s_{t+kn}$ with **the same trajectory's** true state $s_{t+kn}$ (chapter 2's
# window gather; the official measurement mixes trajectories: its `sample_consecutive` gathers the windows time-major but reshapes them as if batch-major, which interleaves different start states, [`datasets.py:502-507`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L502-L507)). Every n uses the same start states. Error
# is the MSE over state dimensions in normalised observation space, averaged over trajectories, with a 95%
# confidence band.

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
    held1 = ChunkDataset.from_ogbench(val, norm, n=1, device=device)
    starts = chunk_starts(held1.first, held1.last, horizon)
    t = torch.as_tensor(np.random.default_rng(seed).choice(starts, n_traj, replace=len(starts) < n_traj), device=device)
    rows, curves = [], {}
    for n in ns:
        model, losses = _train_dynamics(ChunkDataset.from_ogbench(train, norm, n=n, device=device), steps, hidden, batch, 3e-4, gd, progress, f'dynamics n={n}')
        w = sample_windows(ChunkDataset.from_ogbench(val, norm, n=n, device=device), n_traj, horizon // n, t=t)
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

def model_error_cli(argv=None):
    "Command line: `mac_model_error --out results/model_error --env cube-double --episodes 200 --steps 10000`."
    ap = argparse.ArgumentParser(prog='mac_model_error', description="Reproduce the paper's Figure 2: open-loop model error vs chunk length.")
    ap.add_argument('--out', default='results/model_error'); ap.add_argument('--env', default='cube-double')
    ap.add_argument('--episodes', type=int, default=200, help='episodes to generate when no dataset exists (an existing one is used as is)')
    ap.add_argument('--ns', default='1,5,10,25', help='chunk lengths, comma-separated')
    ap.add_argument('--steps', type=int, default=10_000, help='gradient steps per model'); ap.add_argument('--hidden', type=int, default=512)
    ap.add_argument('--horizon', type=int, default=100); ap.add_argument('--n-traj', type=int, default=256)
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--device', default='auto')
    ap.add_argument('--dataset-dir', default=DEFAULT_DATASET_DIR)
    a = ap.parse_args(argv)
    try: ns = tuple(int(x) for x in a.ns.split(','))
    except ValueError: ap.error(f'--ns must be comma-separated integers, got {a.ns!r}')
    for k in ('episodes', 'steps', 'hidden', 'horizon', 'n_traj'):
        if getattr(a, k) < 1: ap.error(f"--{k.replace('_', '-')} must be >= 1")
    if any(n < 1 for n in ns): ap.error('chunk lengths must be >= 1')
    try: rows = model_error_experiment(a.out, a.env, a.episodes, ns, a.steps, a.hidden, horizon=a.horizon, n_traj=a.n_traj,
                                       seed=a.seed, dataset_dir=a.dataset_dir, device=get_device(a.device))
    except ValueError as e: ap.error(str(e))
    for n in ns: print(f'n = {n:2d}: MSE after {a.horizon} env steps = {[r["mse"] for r in rows if r["n"] == n][-1]:.4g}')
    print(f'wrote {a.out}/model_error.csv, model_error.png, provenance.json')


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
d5 = ChunkDataset.from_ogbench(va, n=5)
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

# %% [markdown]
# ## Results: Figure 2 reproduced
#
# The committed run, made by `mac_model_error --out results/model_error` (cube-double play data, 200 + 20
# generated episodes; 512×4 models; 10k gradient steps each; 256 held-out trajectories; provenance in the folder):

# %%
res = Path('../results/model_error')
if (res / 'model_error.csv').exists():
    import csv as _csv
    table = list(_csv.DictReader(open(res / 'model_error.csv')))
    for n in sorted({int(r['n']) for r in table}):
        last = [r for r in table if int(r['n']) == n][-1]
        print(f"n = {n:2d}: MSE at env step {last['env_step']:>3s} = {float(last['mse']):.4g}  (95% CI {float(last['ci95_low']):.3g} to {float(last['ci95_high']):.3g})")
    from IPython.display import Image, display
    display(Image(filename=str(res / 'model_error.png')))
else: print('not run yet: mac_model_error --out results/model_error')

# %% [markdown]
# ## Implementation details
#
# 1. Delta parameterisation $p_\psi(s, \mathbf a) = s + f_\psi(s, \mathbf a)$ (official `delta_pred=True`); predicted
#    states are never clipped.
# 2. Losses are means over the batch and the state dimensions (official); Eq. 5 writes a squared norm.
# 3. One deterministic model, no ensemble (official MAC); the baselines' ensembles are not part of MAC.
# 4. The success model takes $[s, g, \mathbf a]$ when a goal is given (official, goal-conditioned) and $[s, \mathbf a]$
#    otherwise (the paper's $f_\psi(s_t, \mathbf a_t)$); success is $\sigma(f) > 0.5$. For reward-based tasks the paper
#    uses the reward model without termination; the official code still trains the success net there, on all-zero
#    targets (the single-task batches set every mask to 1, [`datasets.py:768`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L768), and the success target is 1 − mask, [`mac.py:46`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L46)), so nothing terminates.
# 5. The model-error study compares each prediction with the *same* trajectory's true state; the official
#    `sample_consecutive` mixes trajectories ([`datasets.py:502-507`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L502-L507)). We use cube-double (the paper: puzzle-4x5 from a
#    100M dataset, far beyond a 2-core machine) and 100 environment steps (the paper's figure; the code logs 150).

# %%
#| hide
import nbdev; nbdev.nbdev_export()
