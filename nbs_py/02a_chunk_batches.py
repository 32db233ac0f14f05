# %% [markdown]
# # Chunk batches
# > What the learner sees of a dataset: normalised observations, action chunks with their chunk rewards and masks (one home for the chunk return), and windows of consecutive chunks.

# %%
#| default_exp batches

# %%
#| export
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fastcore.basics import patch
import torch

from mac.core import get_device, median_seconds
from mac.data import DatasetError

# %%
#| hide
import tempfile, time
from pathlib import Path

import matplotlib.pyplot as plt
from fastcore.test import test_eq, test_close, test_fail

from mac.data import generate_dataset, load_ogbench

# %% [markdown]
# [Chapter 2](02_data.ipynb) makes and loads OGBench's datasets; this notebook turns them into what MAC's losses
# consume. `mac.batches` imports no generation code. The checks use a tiny generated dataset (3 + 1 episodes of 150
# steps).

# %% [markdown]
# ## In the paper
#
# > Moreover, we denote $\mathbf{a}_t \in \mathcal{A}^n$ to be the action chunk $a_{t:t+n}$, and $\mathbf{r}_t$ to be the
# > sum of discounted rewards for $n$ steps $\sum_{i=0}^{n-1} \gamma^i r_{t+i}$. (Section 4.2)
#
# And of the losses on those chunks (Eqs. 5-6), the sentence goes on:
#
# > where trajectory chunks are uniformly sampled from the offline dataset. (Section 4.2)
#
# | symbol | meaning | code |
# |---|---|---|
# | $s_t \in \mathbb R^S$ | observation (normalised) | `observations`, (B, S) |
# | $\mathbf a_t = a_{t:t+n}$ | action chunk, flattened time-major | `actions`, (B, n·d) |
# | $\mathbf r_t = \sum_{i<n}\gamma^i r_{t+i}$ | chunk reward | `rewards`, (B,) |
# | $s_{t+n}$ | observation n steps later | `next_observations`, (B, S) |
# | K | number of sub-goals of the task | `REWARD_K` |

# %%
tmp = Path(tempfile.mkdtemp())
generate_dataset('cube-single', 3, tmp, seed=0, max_episode_steps=150, progress=False)
env, train, val = load_ogbench('cube-single-play-singletask-task2-v0', tmp)


# %% [markdown]
# **Normalisation.** The official code scales each observation dimension to roughly $[-1, 1]$ with the min and max
# of the *validation* split: $\tilde x = (x - \frac{\max + \min}2) / (\frac{\max - \min}2 + 10^{-3})$ (the $10^{-3}$
# keeps constant dimensions finite). Dynamics, values and rollouts all live in this space, so the statistics travel
# with everything that needs them later (checkpoints, evaluation).

# %%
#| export
@dataclass
class ObsNormalizer:
    "Min-max scaling to ~[-1, 1] per dimension: (x − centre) / half_range."
    centre: torch.Tensor     # (S,)
    half_range: torch.Tensor # (S,)

    @classmethod
    def from_data(cls, obs, eps: float = 1e-3, device=None):
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=get_device(device) if device else None)
        lo, hi = x.min(0).values, x.max(0).values
        return cls((hi + lo) / 2, (hi - lo) / 2 + eps)

    def __call__(self, x): return (x - self.centre.to(x.device)) / self.half_range.to(x.device)
    def unnormalize(self, x): return x * self.half_range.to(x.device) + self.centre.to(x.device)
    def state_dict(self): return {'centre': self.centre.cpu(), 'half_range': self.half_range.cpu()}
    @classmethod
    def from_state_dict(cls, d, device=None): return cls(d['centre'].to(get_device(device)), d['half_range'].to(get_device(device)))


# %%
norm = ObsNormalizer.from_data(val['observations'])
x = norm(torch.as_tensor(val['observations']))
assert x.min() >= -1 and x.max() <= 1 and x.max() > 0.99  # on the validation split itself: within [-1, 1]
test_close(norm.unnormalize(x), torch.as_tensor(val['observations']), eps=1e-4)
test_close(ObsNormalizer.from_data(np.array([[0., 5.], [2., 5.]]))(torch.tensor([[1., 5.]])), torch.tensor([[0., 0.]]))


# %% [markdown]
# ## Action-chunk batches
#
# A chunk starting at t needs $a_t, \dots, a_{t+n-1}$ and the state $s_{t+n}$, all inside one episode. With the
# episode spanning rows $[a, b]$ ($b$ = its last row), the valid starts are $t \in [a, b - n]$. A batch draws starts
# uniformly and gathers with vectorised indexing: `obs[t]`, `actions[t + arange(n)]` flattened time-major to
# (B, n·d), and the chunk reward $\mathbf r_t = \sum_{i<n} \gamma^i r_{t+i}$.
#
# **Sum or mean.** The paper defines $\mathbf r_t$ as the discounted *sum*; the official code takes the *mean*
# (`np.mean`), i.e. the sum divided by n. Every chunk reward, value and Q then shrinks by the factor 1/n, and the
# argmax over chunks (rejection sampling) is unchanged. The factor does not reweigh the losses against each other: in
# the official code's single summed loss each loss reaches only its own network, and Adam is invariant to a constant
# factor on a loss (up to its ε; chapter 1 checks it). What it changes is the size of the numbers the reward, value and
# critic networks must output. A value is worth about $1/(1-\gamma^n) \approx 100$ chunk rewards (γ = 0.999, n = 10),
# so it reaches about −1000·K with the sum and −100·K with the mean, and since Adam moves each weight by roughly the
# learning rate per step, the larger targets take more steps to reach (chapter 10's `cpu` preset takes the mean for
# that reason). We follow the paper (`ChunkReturn(agg='sum')`, the config's `reward_agg`); `'mean'` reproduces the code.

# %%
#| export
def episode_bounds(valids) -> tuple[np.ndarray, np.ndarray]:
    "First and last row of each episode, from a compact dataset's `valids` (0 on each episode's last row)."
    last = np.flatnonzero(np.asarray(valids) == 0)
    if len(last) == 0 or last[-1] != len(valids) - 1:
        raise DatasetError('valids must be 0 on the last row of every episode (is this a compact dataset?)')
    return np.r_[0, last[:-1] + 1], last

def chunk_starts(first, last, span: int) -> np.ndarray:
    "Every t with t + span ≤ last row of t's episode, i.e. rows t … t+span inside one episode."
    starts = [np.arange(a, b - span + 1) for a, b in zip(first, last) if b - a >= span]
    if not starts: raise DatasetError(f'no valid chunk: every episode is shorter than {span + 1} steps (longest: {int((last - first).max()) + 1})')
    return np.concatenate(starts)


# %%
f_, l_ = episode_bounds(np.array([1, 1, 1, 0, 1, 1, 0]))
test_eq((f_, l_), (np.array([0, 4]), np.array([3, 6])))
test_eq(chunk_starts(f_, l_, 2), np.array([0, 1, 4]))   # rows t..t+2 inside one episode
test_fail(lambda: chunk_starts(f_, l_, 4), contains='every episode is shorter than 5 steps')
test_fail(lambda: episode_bounds(np.array([1, 0, 1])), contains='compact dataset')


# %% [markdown]
# **One home for the chunk return.** Four choices decide what a chunk is worth, and every part of MAC that turns
# per-step rewards into chunk rewards or returns must make them the same way: the chunk length n, the discount γ (a
# chunk is discounted by Γ = γⁿ), sum or mean, and whether a chunk ends at the task's success (`terminals`, below).
# `ChunkReturn` holds the four together. The dataset's batches (`chunk`), the Monte-Carlo returns that chapter 10's
# `diagnose` compares values with (`returns`) and the trainer's config (`TrainConfig.chunk_return`) all take theirs
# from it. The check below ties the two views together: the return from a row equals its chunk reward plus Γ times
# the return n rows later, the recursion the value targets of chapter 6 are built on.

# %%
#| export
@dataclass(frozen=True)
class ChunkReturn:
    "What a chunk is worth: n per-step rewards → one chunk reward and mask, and returns discounted by Γ = γⁿ per chunk."
    n: int = 10                # chunk length (the agent's n)
    gamma: float = 0.999       # per-env-step discount γ
    agg: str = 'sum'           # 'sum' (paper: Σᵢ γⁱ r_{t+i}) or 'mean' (official code: the same sum / n)
    terminals: bool = False    # end a chunk at its first success (mask 0, later rewards dropped); paper and official code: never

    def __post_init__(self):
        if self.n < 1: raise ValueError(f'chunk length n must be >= 1, got {self.n}')
        if not 0 < self.gamma <= 1: raise ValueError(f'gamma must be in (0, 1], got {self.gamma}')
        if self.agg not in ('sum', 'mean'): raise ValueError(f"reward_agg must be 'sum' (paper) or 'mean' (official code), got {self.agg!r}")

    @property
    def gamma_n(self) -> float: return self.gamma ** self.n                 # Γ, the discount of one chunk
    @property
    def scale(self) -> float: return 1 / self.n if self.agg == 'mean' else 1.0

    def weights(self, device=None) -> torch.Tensor:
        "(n,) weights wᵢ = scale·γⁱ: the chunk reward is Σᵢ wᵢ r_{t+i}."
        return self.scale * self.gamma ** torch.arange(self.n, dtype=torch.float32, device=device)


# %% [markdown]
# A chunk's reward is Σᵢ wᵢ r_{t+i}. With `terminals` the rewards after the chunk's first success drop out and its mask
# is 0, so that the value target stops at the success; without, every chunk's mask is 1:

# %%
#| export
@patch
def chunk(self: ChunkReturn, rewards, masks, weights=None) -> tuple[torch.Tensor, torch.Tensor]:
    "Per-step rewards and OGBench masks (0 where the task is solved), both (B, n) → chunk rewards (B,), chunk masks (B,)."
    if self.terminals:  # the chunk ends at its first success: later rewards drop out, the chunk's mask is 0
        alive = torch.cumprod(torch.cat([torch.ones_like(masks[:, :1]), masks[:, :-1]], 1), 1)   # 1 up to the first success
        rewards, m = rewards * alive, masks.prod(1)
    else: m = torch.ones(len(rewards), device=rewards.device)
    return rewards @ (self.weights(rewards.device) if weights is None else weights), m


# %% [markdown]
# The Monte-Carlo return from every row of a dataset, for the diagnostics: G_t = r_t + γ·c_t·G_{t+1} backwards through
# each episode (c_t = 0 at a success when `terminals` is on, else 1), scaled as the chunk rewards are:

# %%
#| export
@patch
def returns(self: ChunkReturn, rewards, masks, first, last) -> np.ndarray:
    "The Monte-Carlo return from every row of a dataset (episodes [first, last], inclusive), in chunk-reward units."
    cont = np.asarray(masks, dtype=np.float64) if self.terminals else np.ones(len(rewards))   # a return stops at a success
    G = np.zeros(len(rewards))
    for a, b in zip(first, last):
        g = 0.0
        for t in range(int(b), int(a) - 1, -1): g = rewards[t] + self.gamma * cont[t] * g; G[t] = g
    return self.scale * G


# %%
# Monte-Carlo returns by hand: two episodes (rows 0-3, 4-5), γ = 0.5; the first is solved at row 2 (reward 0, mask 0),
# so with terminals its return stops there; the second ends unsolved and its return is cut at its last row.
r, c = np.array([-1., -1, 0, -1, -1, -1]), np.array([1., 1, 0, 1, 1, 1])
test_close(ChunkReturn(2, 0.5, terminals=True).returns(r, c, [0, 4], [3, 5]), [-1.5, -1.0, 0.0, -1.0, -1.5, -1.0])
test_close(ChunkReturn(2, 0.5).returns(r, c, [0, 4], [3, 5])[1], -1.25)   # without terminals it runs on: -1 + 0.5·(0 + 0.5·(-1))
test_close(ChunkReturn(2, 0.5, 'mean').returns(r, c, [0, 4], [3, 5]), ChunkReturn(2, 0.5).returns(r, c, [0, 4], [3, 5]) / 2)
test_fail(lambda: ChunkReturn(agg='max'), contains="'sum' (paper) or 'mean'")
test_fail(lambda: ChunkReturn(n=0), contains='n must be >= 1')
# the two views agree: G_t = chunk reward of rows t..t+n-1 + Γ·(chunk mask)·G_{t+n}, on a random episode, every setting
rng = np.random.default_rng(0); r = -rng.integers(0, 2, 40).astype(np.float64); m = (r < 0).astype(np.float64)
for ret in (ChunkReturn(4, 0.9), ChunkReturn(4, 0.9, 'mean'), ChunkReturn(4, 0.9, terminals=True), ChunkReturn(4, 0.9, 'mean', True)):
    G = ret.returns(r, m, [0], [39]); t = np.arange(0, 36)
    rows = t[:, None] + np.arange(4)
    cr, cm = ret.chunk(torch.tensor(r[rows], dtype=torch.float32), torch.tensor(m[rows], dtype=torch.float32))
    test_close(G[t], cr.double().numpy() + ret.gamma_n * cm.double().numpy() * G[t + 4], eps=1e-5)


# %%
#| export
class ChunkDataset:
    "A dataset on a device that samples action-chunk batches (and consecutive windows) with vectorised gathers."
    def __init__(self, observations, actions, valids, rewards=None, masks=None, *, ret: ChunkReturn = ChunkReturn(), device=None,
                 action_clip: float = 1 - 1e-5, normalizer: ObsNormalizer | None = None):
        if not isinstance(ret, ChunkReturn): raise TypeError(f'ret must be a ChunkReturn (e.g. ChunkReturn(n=10)), got {ret!r}')
        dev = get_device(device); t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)
        self.ret, self.n, self.device, self.normalizer = ret, ret.n, dev, normalizer
        n = ret.n
        obs = t(observations)
        self.obs = normalizer(obs) if normalizer is not None else obs         # (N, S)
        self.actions = t(actions).clamp(-action_clip, action_clip)          # (N, d)
        self.rewards = t(rewards) if rewards is not None else torch.zeros(len(obs), device=dev)
        self.masks = t(masks) if masks is not None else torch.ones(len(obs), device=dev)
        self.first, self.last = episode_bounds(valids)
        self.starts = torch.as_tensor(chunk_starts(self.first, self.last, n), device=dev)
        self._weights = ret.weights(dev)                                     # (n,)
        self._offsets = torch.arange(n, device=dev)

    @classmethod
    def from_ogbench(cls, dataset: dict, normalizer: ObsNormalizer | None = None, *, ret: ChunkReturn = ChunkReturn(), **kw):
        "From a compact OGBench dataset dict (as `load_ogbench` returns)."
        return cls(dataset['observations'], dataset['actions'], dataset['valids'], dataset.get('rewards'), dataset.get('masks'),
                   ret=ret, normalizer=normalizer, **kw)

    @property
    def obs_dim(self): return self.obs.shape[1]
    @property
    def action_dim(self): return self.actions.shape[1]


# %% [markdown]
# A batch: B starts t drawn uniformly from the valid starts; rows t … t+n−1 give the chunk's actions and, through
# `ChunkReturn`, its reward and mask; s_t and s_{t+n} are the observations:

# %%
#| export
@patch
def sample(self: ChunkDataset, B: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    "B chunks: observations (B,S), actions (B,n·d), rewards (B,), next_observations (B,S), masks (B,)."
    t = self.starts[torch.randint(len(self.starts), (B,), device=self.device, generator=generator)]  # (B,)
    rows = t[:, None] + self._offsets                                                            # (B, n)
    rewards, masks = self.ret.chunk(self.rewards[rows], self.masks[rows], self._weights)             # (B,), (B,)
    return dict(observations=self.obs[t], actions=self.actions[rows].reshape(B, -1),
                rewards=rewards, next_observations=self.obs[t + self.n], masks=masks)


# %% [markdown]
# `masks` are all ones, as in the official code (single-task data has no termination). With `ChunkReturn(terminals=True)` the
# chunk instead ends at the first step whose OGBench mask is 0 (the task is solved there): rewards after it are
# dropped and the chunk's mask is 0 — the MDP the evaluation environment runs, since OGBench's single-task
# environments end an episode at the goal. Chapter 10 explains when that is worth it. Checks against a
# hand-built dataset whose observations encode (episode, step): every chunk stays in one episode, its actions are
# consecutive and time-major, its reward is the discounted sum, and $s_{t+n}$ is n steps later.

# %%
lengths = [7, 12, 5]
ep_id = np.concatenate([np.full(L, e) for e, L in enumerate(lengths)]); step = np.concatenate([np.arange(L) for L in lengths])
obs = np.stack([ep_id, step], 1).astype(np.float32)
acts = np.stack([ep_id, step, step * 0.01, -step * 0.01, ep_id * 0.1], 1).astype(np.float32) * 0.01
valids = np.concatenate([np.r_[np.ones(L - 1), 0] for L in lengths])
rew = (step * 0.1 - 1).astype(np.float32)
toy = ChunkDataset(obs, acts, valids, rew, ret=ChunkReturn(3, 0.9), action_clip=10)
b = toy.sample(500, generator=torch.Generator().manual_seed(0))
test_eq(b['actions'].shape, (500, 3 * 5))
s0, s_n = b['observations'], b['next_observations']
test_eq(s_n[:, 0], s0[:, 0]); test_eq(s_n[:, 1], s0[:, 1] + 3)                 # same episode, n steps later
a = b['actions'].reshape(500, 3, 5)
test_close(a[:, :, 1], (s0[:, 1:2] + torch.arange(3)) * 0.01, eps=1e-6)               # consecutive, time-major actions
test_close(b['rewards'], sum(0.9 ** i * ((s0[:, 1] + i) * 0.1 - 1) for i in range(3)), eps=1e-5)
test_eq(set(toy.starts.tolist()), set(np.flatnonzero((step <= np.repeat(np.array(lengths) - 1, lengths) - 3))))
toy_mean = ChunkDataset(obs, acts, valids, rew, ret=ChunkReturn(3, 0.9, 'mean'), action_clip=10)
test_close(toy_mean.sample(64, torch.Generator().manual_seed(0))['rewards'] * 3, toy.sample(64, torch.Generator().manual_seed(0))['rewards'], eps=1e-5)
test_fail(lambda: ChunkDataset(obs, acts, valids, ret=ChunkReturn(12)), contains='every episode is shorter than 13 steps')
test_fail(lambda: ChunkDataset(obs, acts, valids, ret=12), contains='ret must be a ChunkReturn')
test_close(ChunkDataset(obs, acts * 1e3, valids, ret=ChunkReturn(2)).actions.abs().max().item(), 1 - 1e-5, eps=1e-7)  # actions clipped to ±(1 − 1e-5)
solved = (step % 4 == 2).astype(np.float32)                           # "success" at steps 2, 6, 10 of each episode
term = ChunkDataset(obs, acts, valids, solved - 1, 1 - solved, ret=ChunkReturn(3, 0.9, terminals=True), action_clip=10)
b = term.sample(500, generator=torch.Generator().manual_seed(0)); t0 = b['observations'][:, 1]
first = torch.stack([(t0 + i) % 4 == 2 for i in range(3)], 1).float().argmax(1)     # offset of the first success (if any)
hit = torch.stack([(t0 + i) % 4 == 2 for i in range(3)], 1).any(1)
test_eq(b['masks'], (~hit).float())
test_close(b['rewards'], torch.where(hit, -(1 - 0.9 ** first) / 0.1, torch.full_like(t0, -(1 + 0.9 + 0.81))), eps=1e-5)
test_eq(ChunkDataset(obs, acts, valids, solved - 1, 1 - solved, ret=ChunkReturn(3), action_clip=10).sample(64)['masks'], torch.ones(64))


# %% [markdown]
# ## Consecutive windows
#
# The model-error study (chapter 5) needs L successive chunks of *one* trajectory: states
# $s_t, s_{t+n}, \dots, s_{t+Ln}$ and chunks $\mathbf a_t, \mathbf a_{t+n}, \dots$. The official code gathers the
# rows time-major, (n·L, B), and then reshapes them as (B, L, n) without a transpose, which interleaves time and
# batch: its "trajectories" mix different episodes (`ACGCDataset.sample_consecutive`,
# [`datasets.py:502-507`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L502-L507); `ACDataset` repeats the same lines at [`datasets.py:722-727`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L722-L727)). Ours gathers (B, L, n) index
# rows directly.

# %%
#| export
def sample_windows(data: ChunkDataset, B: int, L: int, generator: torch.Generator | None = None, t=None) -> dict[str, torch.Tensor]:
    "B windows of L consecutive chunks of one episode: observations (L+1, B, S) at t + k·n, actions (L, B, n·d); starts `t` optional."
    n = data.n
    if t is None:
        starts = torch.as_tensor(chunk_starts(data.first, data.last, n * L), device=data.device)
        t = starts[torch.randint(len(starts), (B,), device=data.device, generator=generator)]                  # (B,)
    else:  # given starts (e.g. the same trajectories for several n): each window must fit in its episode
        t = torch.as_tensor(t, device=data.device)
        last = data.last[np.searchsorted(data.last, t.cpu().numpy())]
        if (t.cpu().numpy() + n * L > last).any(): raise DatasetError(f'a window of {L} chunks of {n} steps does not fit in its episode for some starts')
    rows = t[:, None, None] + n * torch.arange(L, device=data.device)[None, :, None] + data._offsets            # (B, L, n)
    obs_rows = t[None, :] + n * torch.arange(L + 1, device=data.device)[:, None]                               # (L+1, B)
    return dict(observations=data.obs[obs_rows], actions=data.actions[rows].reshape(B, L, -1).transpose(0, 1))


# %%
w = sample_windows(toy, 200, 3, generator=torch.Generator().manual_seed(1))  # n = 3, L = 3: 10 states of one episode
test_eq(w['observations'].shape, (4, 200, 2)); test_eq(w['actions'].shape, (3, 200, 15))
test_eq(w['observations'][:, :, 0], w['observations'][:1, :, 0].expand(4, -1))                 # one episode per window
test_eq(w['observations'][:, :, 1], w['observations'][0, :, 1] + 3 * torch.arange(4)[:, None])  # steps t, t+n, t+2n, t+3n
wa = w['actions'].reshape(3, 200, 3, 5)
test_close(wa[:, :, :, 1] * 100, w['observations'][0, :, 1][None, :, None] + torch.arange(9.).reshape(3, 1, 3), eps=1e-4)
test_eq(set(w['observations'][0, :, 0].long().tolist()), {1})  # only episode 1 (12 steps) is long enough for 3·3 + 1 states
w2 = sample_windows(toy, 2, 3, t=torch.tensor([7, 9]))                        # given starts: episode 1, steps 0 and 2
test_eq(w2['observations'][:, :, 1], torch.tensor([[0., 2.], [3., 5.], [6., 8.], [9., 11.]]))
test_fail(lambda: sample_windows(toy, 1, 3, t=torch.tensor([10])), contains='does not fit')

# %% [markdown]
# ## A look at a generated dataset
#
# Ten 1001-step episodes of cube-single (plus one validation episode) take ~20 s, so this notebook uses four
# episodes, loaded as `cube-single-play-singletask-task2-v0`: where the cube goes, the reward histogram (task 2's
# single cube is at its target for part of the play data), and a batch of chunks from the sampler.

# %%
tmp2 = Path(tempfile.mkdtemp())
t0 = time.time()
generate_dataset('cube-single', 4, tmp2, seed=0, progress=False)
print(f'4 + 1 episodes of 1001 steps in {time.time() - t0:.1f}s')
env, train, val = load_ogbench('cube-single-play-singletask-task2-v0', tmp2)
data = ChunkDataset.from_ogbench(train, ObsNormalizer.from_data(val['observations']), ret=ChunkReturn(n=10))
batch = data.sample(256, generator=torch.Generator().manual_seed(0))
print({k: tuple(v.shape) for k, v in batch.items()})
test_eq(batch['actions'].shape, (256, 50))

# %%
qpos = np.load(tmp2 / 'cube-single-play-v0.npz')['qpos']
fig, axs = plt.subplots(1, 3, figsize=(11, 3.2), dpi=80)
ends = np.flatnonzero(np.load(tmp2 / 'cube-single-play-v0.npz')['terminals'])
for a, b_ in zip(np.r_[0, ends[:-1] + 1], ends + 1): axs[0].plot(qpos[a:b_, 14], qpos[a:b_, 15], lw=0.8)
axs[0].set(title='Cube xy over four play episodes', xlabel='x (m)', ylabel='y (m)', aspect='equal')
axs[1].hist(train['rewards'], bins=[-1.5, -0.5, 0.5], rwidth=0.6)
axs[1].set(title='Task-2 rewards: mostly unsolved (−1)', xlabel='reward r_t = #satisfied − K (K = 1)', ylabel='steps', xticks=[-1, 0])
axs[2].hist(batch['rewards'].cpu(), bins=30)
axs[2].set(title='Chunk rewards Σγⁱr (n = 10)', xlabel='chunk reward', ylabel='chunks', yscale='log')
plt.tight_layout(); plt.show()


# %% [markdown]
# ## Speed
#
# `bench_batches` times the gather of one batch (the default: 256 chunks of n = 10 from a 100k-row dataset);
# `mac_bench` (chapter 11) prints it beside the update timings.

# %%
#| export
def bench_batches(B: int = 256, n: int = 10, rows: int = 100_000, obs_dim: int = 28, action_dim: int = 5, device='cpu',
                  reps: int = 500) -> float:
    "Median milliseconds to sample one batch of B chunks of length n from a random `rows`-row dataset on `device`."
    g = torch.Generator().manual_seed(0)
    data = ChunkDataset(torch.randn(rows, obs_dim, generator=g), torch.rand(rows, action_dim, generator=g) * 2 - 1,
                        np.r_[np.ones(rows - 1), 0], ret=ChunkReturn(n=n), device=device)
    gd = torch.Generator(data.device).manual_seed(0)
    return 1e3 * median_seconds(lambda: data.sample(B, gd), reps=reps, warmup=reps // 10)


# %%
print(f'a batch of 256 chunks: {bench_batches(reps=50):.3f} ms (median; a figure, not a test)')

# %% [markdown]
# ## Implementation details
#
# 1. Valid chunk starts are all t with rows t … t+n in one episode. The official code additionally drops the last
#    two windows of each episode (a side effect of the compact format's doubled terminals:
#    the data are loaded with `compact_dataset=True`, [`env_utils.py:19-26`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/envs/env_utils.py#L19-L26); ogbench 1.2.2 then flags both of
#    the last two rows of each episode as terminal, `ogbench/utils.py:71-73`; and a chunk start must lie more than n rows
#    before the first flagged row, [`datasets.py:688-693`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L688-L693)); with
#    1001-step episodes that is 0.2% of the starts.
# 2. Chunk rewards are the paper's discounted sum by default; `ChunkReturn(agg='mean')` (config: `reward_agg='mean'`) gives the official code's mean
#    (rewards, values and Q n times smaller, targets the networks reach in fewer steps; the same argmax).
# 3. Masks are all ones (the official code ignores OGBench's success masks for single-task data); `ChunkReturn(terminals=True)`
#    ends a chunk at its first success instead (rewards after it dropped, mask 0).
# 4. Observations are min-max normalised with the validation split's statistics, as the official code; actions
#    are clipped to ±(1 − 1e-5).
# 5. Consecutive windows are gathered per trajectory, fixing the official `sample_consecutive` reshape bug.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
