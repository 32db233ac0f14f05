# %% [markdown]
# # Goal-conditioned data and evaluation
# > Oracle goal representations, the goal distributions of the paper's Table 6, goal-conditioned chunk batches from a memory-mapped cache of many files, and OGBench's five-goal evaluation.

# %%
#| default_exp goals

# %%
#| export
from __future__ import annotations

import glob
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fastcore.basics import patch

from mac.batches import ObsNormalizer
from mac.cache import DatasetCache, build_cache, open_cache
from mac.core import get_device
from mac.data import DatasetError, parse_name
from mac.evaluate import run_episodes, vector_env

# %%
#| hide
import tempfile

import matplotlib.pyplot as plt
from fastcore.test import test_close, test_eq, test_fail

# %% [markdown]
# ## In the paper
#
# The paper's headline benchmarks (Section 5.1, Table 1) are goal-conditioned:
#
# > These tasks are not just long-horizon but also goal-conditioned (*i.e.*, the agent must reach any goal states given at test time), requiring complex, *multi-task* reasoning over a long episode.
#
# Goals are drawn from the dataset with four kinds of sampling, mixed in fixed ratios (Table 6, the paper's numbers):
#
# | network | $(p^\mathcal{D}_\text{cur}, p^\mathcal{D}_\text{geom}, p^\mathcal{D}_\text{traj}, p^\mathcal{D}_\text{rand})$ |
# |---|---|
# | actor, cube | (0, 1, 0, 0) |
# | actor, puzzle | (0, 0.5, 0, 0.5) |
# | actor, humanoidmaze | (0, 0, 1, 0) |
# | value, every environment | (0.2, 0, 0.5, 0.3) |
#
# "cur" is the state itself, "geom" a future state of the same trajectory at a geometric offset, "traj" a future
# state of the same trajectory drawn uniformly, "rand" any state of the dataset. The paper does not define them
# further; the official code does (paraphrased from `official-code-facts.md` §1.4, which cites its lines):
#
# 1. **Goals are oracle representations**, not full observations: for puzzles the button states, for cubes each
#    cube's position, $(\text{xyz} - (0.425, 0, 0))\cdot 10$; both OGBench's definitions, read from the dataset's
#    `qpos` and `button_states` (the `*-oraclerep-v0` datasets). They are min-max normalised like the observations,
#    with statistics from the validation file.
# 2. **Trajectory goals** lie in $t+1 \dots T$, the end of $s_t$'s own trajectory (official: $T-1$; details at the end): geometric offsets
#    $k \sim \mathrm{Geom}(1-\gamma)$ clipped to $T$, or uniform. Random goals are uniform over the dataset.
# 3. **Chunk success**: the value goal $g$ is reached by the chunk $\mathbf a_t$ when it is one of $s_t, \dots, s_{t+n-1}$.
#    The chunk's reward is $\text{success} - 1$ (one $-1$ per chunk, no sum over its steps) and its mask $1 - \text{success}$.
#    The success net $f_\psi(s, g, \mathbf a)$ learns this label; chapter 8's rollouts use its prediction.
# 4. **Two goals per sample**: value goals train the value, critic, success and reward nets and steer the
#    rollouts; actor goals train the flow and one-step policies. Their distributions differ (the table).
# 5. **Evaluation**: each environment has 5 evaluation goals (`task_id` 1-5); 15 episodes each, success is the
#    final step's `info['success']`, overall success the mean over the 5 goals.
#
# Symbols: B batch, n chunk length, S observation size, G goal size, d action size, γ discount.

# %% [markdown]
# ## Oracle representations
#
# A goal says what must be true at the end, nothing about the arm: the nine button colours of puzzle-3x3, the
# positions of the cubes. We compute it from the dataset's `qpos` (objects start at index 14, 7 numbers per cube's
# free joint) and `button_states`, as OGBench defines it, and check the result against OGBench's own
# `add_oracle_reps` below.

# %%
#| export
N_CUBES = {'cube-single': 1, 'cube-double': 2, 'cube-triple': 3, 'cube-quadruple': 4, 'cube-octuple': 8, 'scene': 1}
_OBJ0, _CUBE_QPOS = 14, 7   # qpos: 14 arm and gripper coordinates, then a free joint (xyz + quaternion) per cube
_XYZ_CENTRE, _XYZ_SCALE, _DRAWER_SCALE, _WINDOW_SCALE = np.array([0.425, 0.0, 0.0]), 10.0, 18.0, 15.0   # OGBench's constants

def oracle_keys(env: str) -> tuple[str, ...]:
    "The dataset arrays `oracle_reps` reads for `env`: puzzle: button states; cube: qpos; scene: both."
    e = parse_name(env).env
    return ('button_states',) if e.startswith('puzzle') else ('qpos', 'button_states') if e == 'scene' else ('qpos',)

def oracle_reps(env: str, qpos=None, button_states=None) -> np.ndarray:
    "OGBench's oracle goal representation of states (rows of `qpos`, `button_states`): puzzle buttons, cube positions (G,)."
    e = parse_name(env).env
    given = dict(qpos=qpos, button_states=button_states)
    missing = [k for k in oracle_keys(env) if given[k] is None]
    if missing:
        raise DatasetError(f'{env}: its oracle goal representation needs the dataset key {" and ".join(map(repr, missing))}, which these data '
                           f'lack: make the dataset with mac_data (it stores qpos and button_states, as OGBench does)')
    if e.startswith('puzzle'): return np.asarray(button_states, np.float32)
    qpos, k = np.asarray(qpos, np.float32), N_CUBES[e]   # float32 (a float16 cache's qpos would round again below)
    if qpos.shape[1] < _OBJ0 + k * _CUBE_QPOS + (4 if e == 'scene' else 0):
        raise DatasetError(f'{env}: qpos has {qpos.shape[1]} columns, too few for {k} cube(s): these data are not from {e}')
    xyz = np.stack([qpos[:, _OBJ0 + i * _CUBE_QPOS: _OBJ0 + i * _CUBE_QPOS + 3] for i in range(k)], 1)   # (rows, k, 3)
    cubes = ((xyz - _XYZ_CENTRE) * _XYZ_SCALE).reshape(len(qpos), 3 * k)
    if e != 'scene': return cubes.astype(np.float32)
    drawer = _OBJ0 + k * _CUBE_QPOS + 2                          # scene: one cube, two buttons, then the drawer and window joints
    return np.concatenate([cubes, np.asarray(button_states, np.float64), qpos[:, [drawer]] * _DRAWER_SCALE,
                           qpos[:, [drawer + 1]] * _WINDOW_SCALE], 1).astype(np.float32)


# %% [markdown]
# Against OGBench's `relabel_utils.add_oracle_reps` on random `qpos` and button states (it needs an environment only
# for its cube and button counts, which a stand-in provides):

# %%
from types import SimpleNamespace

from ogbench.relabel_utils import add_oracle_reps

rng = np.random.default_rng(0)
for env, cubes in (('puzzle-3x3', 0), ('cube-single', 1), ('cube-double', 2), ('cube-octuple', 8), ('scene', 1)):
    data = dict(qpos=rng.normal(size=(50, 14 + 7 * max(cubes, 1) + 4)), button_states=rng.integers(0, 2, (50, 9 if env.startswith('puzzle') else 2)))
    fake_env = SimpleNamespace(unwrapped=SimpleNamespace(_num_cubes=cubes, _num_buttons=2))
    add_oracle_reps(f'{env}-v0', fake_env, data)
    test_close(oracle_reps(env, data['qpos'], data['button_states']), data['oracle_reps'], eps=1e-5)
test_fail(lambda: oracle_reps('puzzle-3x3', qpos=data['qpos']), contains="needs the dataset key 'button_states'")


# %% [markdown]
# ## Goal distributions
#
# A `GoalMix` holds the four probabilities of Table 6; each sampled row draws its kind, then its goal through the
# cache's `goals` (chapter 2b), which never leaves the row's trajectory for the three trajectory kinds.

# %%
#| export
@dataclass(frozen=True)
class GoalMix:
    "Probabilities of the four goal kinds (Table 6): the state itself, a geometric or uniform future of its trajectory, any state."
    cur: float = 0.0
    geom: float = 0.0
    traj: float = 0.0
    rand: float = 0.0
    def __post_init__(self):
        p = (self.cur, self.geom, self.traj, self.rand)
        if min(p) < 0 or abs(sum(p) - 1) > 1e-6: raise ValueError(f'GoalMix probabilities must be >= 0 and sum to 1, got {p}')

VALUE_MIX = GoalMix(cur=0.2, traj=0.5, rand=0.3)                        # Table 6, every environment
ACTOR_MIX = {'cube': GoalMix(geom=1.0), 'puzzle': GoalMix(geom=0.5, rand=0.5), 'humanoidmaze': GoalMix(traj=1.0)}

def default_actor_mix(env: str) -> GoalMix:
    "Table 6's actor goal mix for an environment (scene, absent from the paper's goal-conditioned set, takes the cube mix)."
    e = parse_name(env).env
    return ACTOR_MIX['puzzle' if e.startswith('puzzle') else 'cube']

def sample_goals(cache: DatasetCache, rows, mix: GoalMix, rng: np.random.Generator, gamma: float) -> np.ndarray:
    "A goal row per row: its kind drawn from `mix`, then the goal from the cache (trajectory kinds stay in the row's trajectory)."
    p = np.array([mix.cur, mix.geom, mix.traj, mix.rand]); kinds = rng.choice(4, size=len(rows), p=p / p.sum())
    out = np.empty(len(rows), np.int64)
    for i, kind in enumerate(('current', 'geom', 'traj', 'random')):
        sel = kinds == i
        if sel.any(): out[sel] = cache.goals(rows[sel], kind, rng, gamma)
    return out


# %% [markdown]
# The checks use a hand-made dataset whose rows say who they are: observation, action and button state all carry
# the row's global index, so every sampled quantity can be traced to the rows it came from. Three files, episodes of
# random lengths; the cache of chapter 2b joins them.

# %%
def index_files(folder, lengths_per_file, seed=0):
    "puzzle-3x3-like npz files (+ -val twins) whose observations, actions and button states encode their global row."
    rng, row, paths = np.random.default_rng(seed), 0, []
    for i, lengths in enumerate(lengths_per_file):
        n = sum(lengths); term = np.zeros(n, bool); term[np.cumsum(lengths) - 1] = True
        r = (row + np.arange(n)).astype(np.float32)
        arrays = dict(observations=np.stack([r, -r, r % 7], 1), actions=np.stack([r / 1e5, rng.uniform(-1, 1, n)], 1).astype(np.float32),
                      terminals=term, qpos=rng.normal(size=(n, 20)).astype(np.float32), button_states=np.stack([r] * 9, 1).astype(np.int64))
        for name in (f'data-{i:03d}.npz', f'data-{i:03d}-val.npz'): np.savez(Path(folder) / name, **arrays)
        paths.append(Path(folder) / f'data-{i:03d}.npz'); row += n
    return paths

tmp = Path(tempfile.mkdtemp())
lengths = [list(np.random.default_rng(1).integers(30, 300, 20)) for _ in range(3)]
files = index_files(tmp, lengths)
c = open_cache(build_cache(files, tmp / 'cache', progress=False))
rng = np.random.default_rng(2)
rows = c.chunk_starts(5, 100_000, rng)
g = sample_goals(c, rows, VALUE_MIX, rng, gamma=0.99)
same = c.episode_of(g) == c.episode_of(rows)
cur, fut = g == rows, same & (g > rows)
test_close(cur.mean(), 0.2, eps=0.01)                                                # p_cur

# %% [markdown]
# Each kind is checked against what it must be. Current goals: exactly 20%. Random goals are uniform over all rows,
# so a random goal lands in the row's own trajectory with the probability (episode length)/(rows), which we compute
# independently; every other goal is in the future of its own trajectory, and those are 50% + that small share.

# %%
ep_len = (c.last - c.first + 1)[c.episode_of(rows)]
p_own = (ep_len / len(c)).mean()                                                     # P(random goal ∈ own episode)
test_close(fut.mean(), 0.5 + 0.3 * p_own * ((ep_len - 1) / ep_len).mean(), eps=0.01)  # traj + random ones that fall ahead
test_close((~same).mean(), 0.3 * (1 - p_own), eps=0.01)                             # random goals elsewhere
assert (g[same & ~cur] > rows[same & ~cur]).sum() / max((same & ~cur).sum(), 1) > 0.98  # trajectory goals only ahead
# geometric offsets: mean of Geom(1 − γ) clipped to the episode's end, computed from the formula for each row
a = c.goals(rows, 'geom', rng, gamma=0.95) - rows
room = c.last[c.episode_of(rows)] - rows                                              # the farthest offset allowed
kk = np.arange(1, 400)[None]; pk = 0.05 * 0.95 ** (kk - 1)
expected = (np.minimum(kk, room[:, None]) * pk).sum(1) + room * 0.95 ** 399           # E[min(k, room)], tail beyond 399 is tiny
test_close(a.mean(), expected.mean(), eps=0.2)
assert (a >= 1).all() and (a <= room).all()


# %% [markdown]
# ## Goal-conditioned chunk batches
#
# One sample: a chunk start t (uniform over all valid starts of all files), its chunk $a_t \dots a_{t+n-1}$ and
# $s_{t+n}$ as in chapter 2a, a value goal and an actor goal, and the chunk's success label (goal row in $t \dots t+n-1$),
# reward and mask. Only the B sampled rows are read from the memory map, so memory does not grow with the dataset.
# The random numbers come from the training run's torch generator (one draw seeds numpy's sampler per batch), so a
# resumed run continues the same stream.

# %%
#| export
class GoalChunkBatches:
    "Goal-conditioned chunk batches (official `ACGCDataset`'s fields) from a memory-mapped cache of many OGBench files."
    def __init__(self, cache: DatasetCache, env: str | None, n: int, obs_norm: ObsNormalizer, goal_norm: ObsNormalizer,
                 value_mix: GoalMix = VALUE_MIX, actor_mix: GoalMix | None = None, gamma: float = 0.999, device=None,
                 action_clip: float = 1 - 1e-5, goal_fn=None):   # goal_fn(rows) → goals; default: the OGBench env's oracle representation
        if env is None and (goal_fn is None or actor_mix is None): raise ValueError('without an OGBench env name, pass goal_fn and actor_mix')
        self.cache, self.env, self.n, self.gamma, self.clip, self.goal_fn = cache, env, n, gamma, action_clip, goal_fn
        self.obs_norm, self.goal_norm, self.device = obs_norm, goal_norm, get_device(device)
        self.value_mix, self.actor_mix = value_mix, actor_mix or default_actor_mix(env)
        self.goal_dim = self.reps(np.array([0])).shape[1]

    @property
    def obs_dim(self): return self.cache.arrays['observations'].shape[1]
    @property
    def action_dim(self): return self.cache.arrays['actions'].shape[1]


# %% [markdown]
# A goal is a dataset row; what the networks see is its representation: the oracle representation of the section above
# (`oracle_reps`), unless a `goal_fn` replaces it (the checks below use one):

# %%
#| export
@patch
def reps(self: GoalChunkBatches, rows) -> np.ndarray:
    "Goal representations of dataset rows (rows, G): `goal_fn`'s, or the oracle representation."
    if self.goal_fn is not None: return np.asarray(self.goal_fn(rows), np.float32)
    a = self.cache.arrays
    return oracle_reps(self.env, *(self.cache.take(k, rows) if k in a else None for k in ('qpos', 'button_states')))


# %% [markdown]
# Sampling draws the rows first, the chunk starts and both goals, with one numpy generator seeded from the run's torch
# generator:

# %%
#| export
@patch
def sample(self: GoalChunkBatches, B: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    "B chunks with goals: observations, next_observations (B,S), actions (B,n·d), value/actor goals (B,G), rewards, masks (B,)."
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=generator.device if generator else 'cpu'))
    return self.batch(*self.rows(B, np.random.default_rng(seed)))

@patch
def rows(self: GoalChunkBatches, B: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    "The dataset rows of B chunks: starts t, value goals, actor goals (B,) each."
    t = self.cache.chunk_starts(self.n, B, rng)
    return t, sample_goals(self.cache, t, self.value_mix, rng, self.gamma), sample_goals(self.cache, t, self.actor_mix, rng, self.gamma)


# %% [markdown]
# and then reads only those rows (the chunk's actions, the two states, the two goals), and computes the value goal's
# success label, reward and mask from the row indices:

# %%
#| export
@patch
def batch(self: GoalChunkBatches, t, gv, ga) -> dict[str, torch.Tensor]:
    "The batch of chunks starting at rows t with value goals gv and actor goals ga (rows), as `sample` returns it."
    B, n = len(t), self.n
    success = ((gv >= t) & (gv < t + n)).astype(np.float32)          # the goal is one of s_t … s_{t+n-1}
    chunk = np.clip(np.asarray(self.cache.take('actions', (t[:, None] + np.arange(n)).ravel()), np.float32), -self.clip, self.clip).reshape(B, -1)   # float32 first: a float16 cache would round the clip to ±1
    T = lambda x: torch.as_tensor(np.asarray(x, np.float32), device=self.device)
    obs = self.obs_norm(T(self.cache.take('observations', np.concatenate([t, t + n]))))   # one gather each: fewer waits on disk
    goals = self.goal_norm(T(self.reps(np.concatenate([gv, ga]))))
    return dict(observations=obs[:B], next_observations=obs[B:], actions=T(chunk), value_goals=goals[:B], actor_goals=goals[B:],
                rewards=T(success - 1), masks=T(1 - success))


# %% [markdown]
# Against the rows: with identity normalisers the batch's numbers are the rows they came from.

# %%
ident = lambda k: ObsNormalizer(torch.zeros(k), torch.ones(k))
gb = GoalChunkBatches(c, 'puzzle-3x3', 5, ident(3), ident(9), gamma=0.99, device='cpu')
test_eq((gb.obs_dim, gb.goal_dim, gb.action_dim), (3, 9, 2))
b = gb.sample(4096, torch.Generator().manual_seed(0))
t = b['observations'][:, 0].long().numpy()
test_eq(b['next_observations'][:, 0].long().numpy(), t + 5)                              # s_{t+n}
test_close(b['actions'].reshape(-1, 5, 2)[..., 0] * 1e5, torch.as_tensor(t[:, None] + np.arange(5), dtype=torch.float32), eps=0.05)  # a_t … a_{t+4}, in order
gv, ga = b['value_goals'][:, 0].long().numpy(), b['actor_goals'][:, 0].long().numpy()
test_eq(b['masks'].numpy(), 1 - ((gv >= t) & (gv < t + 5)))                              # success ⇔ goal ∈ s_t … s_{t+4}
test_eq(b['rewards'].numpy(), -b['masks'].numpy())                                       # reward = success − 1
assert (c.episode_of(t + 5) == c.episode_of(t)).all()                                    # never across an episode
test_close((gv == t).mean(), 0.2, eps=0.03); assert (ga != t).mean() > 0.99               # value: 20% current; puzzle actor: never
test_eq(set(c.file[c.episode_of(t)]), {0, 1, 2})                                         # every file is sampled
test_eq(gb.sample(64, torch.Generator().manual_seed(5))['actions'], gb.sample(64, torch.Generator().manual_seed(5))['actions'])  # the generator decides


# %% [markdown]
# ## Data for a run
#
# A goal-conditioned dataset is one OGBench file pair (`puzzle-3x3-play-v0.npz` and its `-val` twin, the 1M play
# data) or a folder of many pairs (the 100M sets: `*.npz` beside `*-val.npz`). `goal_data` checks the pairs, builds
# the cache once (chapter 2b), and takes the normalisers from the first validation file, as the official code does.

# %%
#| export
def dataset_files(path) -> list[tuple[Path, Path]]:
    "(train, val) pairs: one OGBench .npz and its -val twin, or every pair in a folder; a missing twin is an error."
    p = Path(path).expanduser()
    train = sorted(Path(f) for f in glob.glob(str(p / '*.npz')) if not f.endswith('-val.npz')) if p.is_dir() else [p]
    if not train: raise DatasetError(f'{p} holds no .npz dataset files')
    pairs = [(f, f.with_name(f.stem + '-val.npz')) for f in train]
    missing = [v.name for f, v in pairs if not f.exists() or not v.exists()]
    if missing: raise DatasetError(f'{p}: missing {", ".join(missing[:5])}{" …" if len(missing) > 5 else ""}: every dataset file needs its -val twin (OGBench\'s layout)')
    return pairs

def goal_normalizers(env: str, val: dict, device=None) -> tuple[ObsNormalizer, ObsNormalizer]:
    "Min-max normalisers of observations and oracle goals from a validation split (official: the first file's)."
    reps = oracle_reps(env, val.get('qpos'), val.get('button_states'))
    return ObsNormalizer.from_data(val['observations'], device=device), ObsNormalizer.from_data(reps, device=device)

def goal_cache_dir(path, floats: str = 'float32') -> Path:
    "Where `goal_data` caches the files at `path` unless told: `mac-cache` in a folder, `<stem>.cache` beside one file; `-float16` added for a float16 cache (chapter 2b)."
    p, tag = Path(path).expanduser(), ('' if floats == 'float32' else f'-{floats}')
    return p / f'mac-cache{tag}' if p.is_dir() else p.with_name(f'{p.stem}{tag}.cache')

def goal_data(env: str, path, n: int, gamma: float = 0.999, value_mix: GoalMix = VALUE_MIX, actor_mix: GoalMix | None = None,
              device=None, norms=None, progress: bool = True, cache_dir=None, floats: str = 'float32') -> GoalChunkBatches:
    "Goal-conditioned batches over the files at `path` (a train file or a folder), cached once in `cache_dir` (default: `goal_cache_dir`)."
    pairs = dataset_files(path)
    cache_dir = cache_dir or goal_cache_dir(path, floats)
    if norms is None:
        with np.load(pairs[0][1]) as z: norms = goal_normalizers(env, dict(z), device)
    cache = open_cache(build_cache([f for f, _ in pairs], cache_dir, progress=progress, keys=('actions', *oracle_keys(env)), floats=floats), progress=progress)   # no qvel
    return GoalChunkBatches(cache, env, n, *norms, value_mix=value_mix, actor_mix=actor_mix, gamma=gamma, device=device)


# %%
gd = goal_data('puzzle-3x3', tmp, 5, device='cpu', progress=False, cache_dir=tmp / 'cache')          # the folder: three pairs, the cache built above
test_eq(len(gd.cache), sum(map(sum, lengths)))
lean = goal_data('puzzle-3x3', tmp, 5, device='cpu', progress=False, cache_dir=tmp / 'lean')          # a new cache holds what sampling reads
test_eq(sorted(lean.cache.arrays), ['actions', 'button_states', 'observations', 'terminals'])
src = np.concatenate([np.load(f)['button_states'] for f, _ in dataset_files(tmp)])
test_eq(np.asarray(lean.cache.arrays['button_states']), src)                                  # the same values ...
assert lean.cache.arrays['button_states'].itemsize < src.itemsize                             # ... in a smaller integer type
v0 = np.load(tmp / 'data-000-val.npz'); x = gd.goal_norm(torch.as_tensor(v0['button_states'], dtype=torch.float32))
test_close(x.min(), -1, eps=0.01); test_close(x.max(), 1, eps=0.01)                        # statistics of the first validation file (official)
(tmp / 'data-001-val.npz').rename(tmp / 'held.npz')
test_fail(lambda: dataset_files(tmp), contains='missing data-001-val.npz')
(tmp / 'held.npz').rename(tmp / 'data-001-val.npz')
odd = tmp / 'odd'; odd.mkdir(); z = dict(np.load(files[0])); z['observations'] = z['observations'][:, :2]
for nm in ('a.npz', 'a-val.npz'): np.savez(odd / nm, **z)
for nm in ('b.npz', 'b-val.npz'): np.savez(odd / nm, **dict(np.load(files[1])))
test_fail(lambda: goal_data('puzzle-3x3', odd, 5, progress=False, cache_dir=odd / 'cache'), contains='do not match the first file')
test_fail(lambda: goal_data('cube-double', tmp, 5, progress=False, cache_dir=tmp / 'cache'), contains='too few for 2 cube(s)')   # data of another env
nob = tmp / 'nob'; nob.mkdir(); z = dict(np.load(files[0])); del z['button_states']
for nm in ('a.npz', 'a-val.npz'): np.savez(nob / nm, **z)
test_fail(lambda: goal_data('puzzle-3x3', nob, 5, progress=False, cache_dir=nob / 'cache'), contains="needs the dataset key 'button_states'")
assert not (nob / 'cache').exists()                                                        # refused before anything was written

# %% [markdown]
# With `floats='float16'` the cache's float arrays take half the bytes (chapter 2b), in a folder of their own beside
# the files (`mac-cache-float16`), and batches come back in float32: the same rows as from the float32 cache, each
# value within float16's rounding. Actions are clipped after they are turned back into float32, since float16 would
# round the clip's 1 − 10⁻⁵ up to 1.

# %%
half = goal_data('puzzle-3x3', tmp, 5, device='cpu', progress=False, floats='float16')    # default folder: beside the files
assert (tmp / 'mac-cache-float16' / 'manifest.json').exists() and goal_cache_dir(tmp, 'float16') == tmp / 'mac-cache-float16'
b32, b16 = gd.sample(64, torch.Generator().manual_seed(3)), half.sample(64, torch.Generator().manual_seed(3))
for k in b32:                                           # the same rows; each value within float16's rounding (≤ 2⁻¹¹ of it, before normalising)
    test_eq(b16[k].dtype, torch.float32)
    nz = gd.obs_norm if 'observations' in k else None   # (observations here reach ~10⁴; goals are integer button states, exact)
    raw = nz.unnormalize(b32[k]) if nz else b32[k]
    bound = 2 ** -11 * raw.abs() / (nz.half_range if nz else 1) + 1e-5
    assert ((b16[k] - b32[k]).abs() <= bound).all(), k
assert (b16['actions'] != b32['actions']).any()                                             # (and it did round)
ones = tmp / 'ones'; ones.mkdir()
for q in sum(map(list, dataset_files(tmp)), []): z = dict(np.load(q)); z['actions'][:] = 1; np.savez(ones / q.name, **z)
test_eq(goal_data('puzzle-3x3', ones, 5, device='cpu', progress=False, floats='float16').sample(8)['actions'].max().item(), np.float32(1 - 1e-5))

# %% [markdown]
# ## Evaluation on the five goals
#
# OGBench's goal-conditioned environments take the goal at reset (`options={'task_id': k}`) and return it, as an
# oracle representation when made with `use_oracle_rep=True`, in the reset's `info['goal']`. Chapter 9's
# `run_episodes` runs the episodes in parallel and hands each episode's goal to the policy; this function does that
# for each of the 5 goals and averages, the paper's protocol.

# %%
#| export
GC_TASKS = (1, 2, 3, 4, 5)

def goal_eval_venv(env: str, episodes: int, workers: int | None = None, **env_kwargs):
    "The parallel envs (with oracle goals) that `evaluate_goals` runs in; keep one open to reuse across evaluations (`venv=`)."
    return vector_env(f'{parse_name(env).env}-v0', episodes, workers, use_oracle_rep=True, **env_kwargs)



# %% [markdown]
# `evaluate_goals` opens one set of env processes for all the goals (or runs in one it is given), plays `episodes`
# per goal with the agent acting on normalised observations and goals, and reports each goal's and the mean success,
# with the protocol in words.

# %%
#| export
def evaluate_goals(agent, obs_norm: ObsNormalizer, goal_norm: ObsNormalizer, env: str, episodes: int = 15,
                   workers: int | None = None, seed: int = 0, replan_every: int = 1, tasks=GC_TASKS,
                   progress: bool = False, venv=None, **env_kwargs) -> dict:
    """OGBench goal-conditioned evaluation: `episodes` per evaluation goal, per-goal and overall final-step success.
    `venv`: an open `goal_eval_venv` of the same size to run them in (left open)."""
    dev, e = agent.device, parse_name(env).env
    gen = torch.Generator(dev).manual_seed(seed)
    def act(obs, goals):
        f = lambda x, nz: nz(torch.as_tensor(np.asarray(x), dtype=torch.float32, device=dev))
        return agent.act(f(obs, obs_norm), gen, f(goals, goal_norm)).cpu().numpy()
    per, t0 = {}, time.time()
    if venv is not None and env_kwargs: raise ValueError(f'env_kwargs {env_kwargs} would be ignored: the envs of `venv` are made already (pass them to goal_eval_venv)')
    own = venv is None
    if own: venv = goal_eval_venv(env, episodes, workers, **env_kwargs)   # one set of env processes for all the goals
    try:
        for k in tasks:
            per[k] = run_episodes(act, f'{e}-v0', episodes, workers, seed, replan_every, agent.action_dim, progress,
                                  options=dict(task_id=k), with_goals=True, venv=venv)
    finally:
        if own: venv.close()
    return dict(success=float(np.mean([r['success'] for r in per.values()])), per_task={k: r['success'] for k, r in per.items()},
                successes={k: r['successes'] for k, r in per.items()}, episodes=episodes * len(tasks), replan_every=replan_every,
                env=f'{e}-v0 (oracle goals)', wall_s=round(time.time() - t0, 2),
                protocol=f"final-step info['success'], {episodes} episodes on each of goals {', '.join(map(str, tasks))}, re-plan every {replan_every} step(s)")



# %% [markdown]
# A check in the real environment, on short episodes: the goals the policy receives are the environment's
# (9 button states for puzzle-3x3, the same for every episode of a task, different across tasks), and the
# bookkeeping counts every episode.

# %%
from mac.agent import MACAgent, MACConfig

seen = {}
class Spy(MACAgent):
    def act(self, obs, generator=None, goal=None):
        seen.setdefault(self._task, []).append(goal.clone()); return super().act(obs, generator, goal)
spy = Spy(55, 5, MACConfig(actor_hidden=(16,), value_hidden=(16,), dynamics_hidden=(16,), n_test=2), device='cpu', goal_dim=9)
ident9 = ObsNormalizer(torch.zeros(9), torch.ones(9))
obs_norm = ObsNormalizer(torch.zeros(55), torch.ones(55))
res = {}
for k in (1, 3):
    spy._task = k
    res[k] = evaluate_goals(spy, obs_norm, ident9, 'puzzle-3x3-play-oraclerep-v0', episodes=2, workers=1, tasks=(k,), max_episode_steps=12)
test_eq(res[1]['episodes'], 2); assert 0 <= res[1]['success'] <= 1
g1, g3 = torch.cat(seen[1]), torch.cat(seen[3])
assert ((g1 == 0) | (g1 == 1)).all() and (g1 == g1[0]).all() and not torch.equal(g1[0], g3[0])

# %% [markdown]
# ## Does it work? A toy with goals
#
# The checks above test the plumbing. Here the whole goal-conditioned agent (chapter 8 with `goal_dim`) learns from
# this chapter's batches, on a problem small enough to train in this notebook: chapter 8's point mass, now with goals.
# $s \in [-1, 1]^2$, $s' = \mathrm{clip}(s + 0.1a, -1, 1)$, 50-step episodes; the data are 400 episodes of the same
# aimless behaviour policy (unit speed, heading redrawn with probability 0.2 per step) from uniform starts, stored as an
# OGBench file with its `-val` twin and cached as in chapter 2b. A goal is a position (the "oracle representation" of a
# point mass is its state, given here as `goal_fn`), sampled with Table 6's value mix and the cube actor mix (geometric).
# At test time the agent starts near $(-0.6, -0.6)$ and must reach each of four goals (within 0.15): the
# analogue of OGBench's five evaluation goals (three corners and the centre).
#
# **Settings**, those of chapter 8's toy, fixed before the first run and not tuned after it: n = 5, H = 3, γ = 0.95 (also
# the geometric goal rate), hidden (64, 64), F = 5, N_train = 8, N_test = 32, lr 1e-3, τ = 0.01, batch 128, 800 updates, one
# CPU thread; data seed 0 (validation twin 100), initialisation and training generator 0, evaluation seed 1 (25 episodes
# per goal). Compared: the agent with N_test = 32 (MAC), the same agent with N_test = 1 (its goal-conditioned behaviour
# policy alone) and the data's own policy. The assertion, also fixed in advance: MAC's mean success over the four goals
# exceeds the behaviour policy's by at least 0.2.

# %%
T_EP, RADIUS = 50, 0.15
def env_step(s, a): return np.clip(s + 0.1 * np.clip(a, -1, 1), -1, 1)
def behaviour_action(theta, rng, p_turn=0.2):
    "Unit speed along heading θ, redrawn uniformly with probability p_turn each step (chapter 8's behaviour policy)."
    theta = np.where(rng.random(len(theta)) < p_turn, rng.uniform(0, 2 * np.pi, len(theta)), theta)
    return np.stack([np.cos(theta), np.sin(theta)], -1), theta

def point_mass_file(path, E, rng):
    "E behaviour episodes of T_EP steps from uniform starts, as an OGBench compact file (T_EP + 1 rows each)."
    s, theta = rng.uniform(-1, 1, (E, 2)), rng.uniform(0, 2 * np.pi, E)
    obs, acts = [s], []
    for _ in range(T_EP): a, theta = behaviour_action(theta, rng); s = env_step(s, a); acts.append(a); obs.append(s)
    acts.append(np.zeros_like(a))                                        # the last row's action is never used
    term = np.zeros((E, T_EP + 1), bool); term[:, -1] = True
    np.savez(path, observations=np.stack(obs, 1).reshape(-1, 2).astype(np.float32),
             actions=np.stack(acts, 1).reshape(-1, 2).astype(np.float32), terminals=term.ravel())

toy_dir = Path(tempfile.mkdtemp())
point_mass_file(toy_dir / 'pm.npz', 400, np.random.default_rng(0)); point_mass_file(toy_dir / 'pm-val.npz', 40, np.random.default_rng(100))
pm = open_cache(build_cache([toy_dir / 'pm.npz'], toy_dir / 'cache', progress=False))
nz = ObsNormalizer.from_data(np.load(toy_dir / 'pm-val.npz')['observations'])   # goals are positions: one normaliser for both
toy_cfg = MACConfig(n=5, H=3, gamma=0.95, lr=1e-3, tau=0.01, flow_steps=5, n_train=8, n_test=32,
                    actor_hidden=(64, 64), value_hidden=(64, 64), dynamics_hidden=(64, 64))
toy_batches = GoalChunkBatches(pm, None, toy_cfg.n, nz, nz, actor_mix=GoalMix(geom=1.0), gamma=toy_cfg.gamma, device='cpu',
                               goal_fn=lambda rows: pm.take('observations', rows))
threads = torch.get_num_threads(); torch.set_num_threads(1)
torch.manual_seed(0); toy = MACAgent(2, 2, toy_cfg, device='cpu', goal_dim=2)
g = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
for _ in range(800): log = toy.update(toy_batches.sample(128, g), g)
print(f'800 updates in {time.perf_counter() - t0:.1f} s; last losses', {k: round(v.item(), 3) for k, v in log.items()})

# %%
GOALS = np.array([[0.6, 0.6], [0.6, -0.6], [-0.6, 0.6], [0.0, 0.0]])
def reach(N, goal, E=25, seed=1):
    "Success (E,) and paths (E, T_EP+1, 2) from starts near (-0.6, -0.6) to `goal`: the agent with N candidates (0: the data's policy)."
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    s = np.array([-0.6, -0.6]) + rng.uniform(-0.05, 0.05, (E, 2)); done, path = np.zeros(E, bool), [s]
    gt, theta = nz(torch.as_tensor(np.repeat(goal[None], E, 0), dtype=torch.float32)), rng.uniform(0, 2 * np.pi, E)
    for _ in range(T_EP // toy_cfg.n):                                   # one chunk per n steps, executed open loop
        if N == 0:
            chunk = []
            for _ in range(toy_cfg.n): a, theta = behaviour_action(theta, rng); chunk.append(a)
            chunk = np.stack(chunk, 1)
        else: chunk = toy.acting_policy(nz(torch.as_tensor(s, dtype=torch.float32)), N, gen, gt).reshape(E, toy_cfg.n, 2).numpy()
        for j in range(toy_cfg.n):
            s = np.where(done[:, None], s, env_step(s, chunk[:, j])); done |= np.linalg.norm(s - goal, axis=-1) <= RADIUS; path.append(s)
    return done, np.stack(path, 1)

gc_results = {name: [reach(N, goal) for goal in GOALS] for name, N in (('data policy', 0), ('N_test = 1', 1), ('N_test = 32', 32))}
torch.set_num_threads(threads)
for name, res in gc_results.items(): print(f"{name:12s} success per goal {[int(100 * d.mean()) for d, _ in res]} %, mean {np.mean([d.mean() for d, _ in res]):.2f}")

fig, axs = plt.subplots(1, 2, figsize=(7, 3.5), dpi=80, sharey=True)
for ax, name in zip(axs, ('N_test = 1', 'N_test = 32')):
    for k, (goal, (done, path)) in enumerate(zip(GOALS, gc_results[name])):
        for q in path[:5]: ax.plot(*q.T, lw=0.8, color=f'C{k}')
        ax.add_patch(plt.Circle(goal, RADIUS, color=f'C{k}', alpha=0.3))
    ax.plot(-0.6, -0.6, 'k*')
    ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect='equal', title=f"{name}: {np.mean([d.mean() for d, _ in gc_results[name]]):.0%} of goals reached")
axs[0].set_ylabel('5 episodes per goal (disk: goal, ★ start)', fontsize=8)
plt.tight_layout(); plt.show()
succ = {name: np.mean([d.mean() for d, _ in res]) for name, res in gc_results.items()}
assert succ['N_test = 32'] >= succ['N_test = 1'] + 0.2, succ

# %% [markdown]
# **Reading.** On our machine (one thread, the seeds above; its first and only run; the cell above prints these numbers) the agent reaches every goal in all
# 25 episodes with N_test = 32; its goal-conditioned behaviour policy alone (N_test = 1) reaches 48% on average (28-64%
# per goal), and the data's aimless policy 10%. The agent has learned, from rollouts in its own chunk model, values
# $V(s, g)$ that rise towards whichever goal it is given, and the critic picks, among the behaviour policy's chunks,
# the one heading there: one network set serves all four goals, which is what goal-conditioned MAC needs at scale.

# %% [markdown]
# ## Implementation details
#
# Where this chapter departs from the paper or the official code, and why:
#
# 1. **Every batch from every file.** The official code holds one file in memory and moves to the next every 1000
#    updates; here each batch is uniform over all valid chunk starts of all files (chapter 2b's cache), which is
#    what the paper's "sample batch from $\mathcal D$" says, with memory that does not grow with the dataset.
# 2. **Trajectory goals** are uniform on $t+1 \dots T$ and geometric ones clip to $T$, the episode's last row. The
#    official code's interval ends one row earlier, at $T-1$: OGBench's compact loader marks both $T-1$ and $T$ as
#    terminal and the code takes the first mark as the end (its uniform draw also rounds, giving the ends half
#    weight). Here $T$, a state the trajectory really reached, can be a goal; with $\gamma = 0.999$ and 1000-row
#    episodes many geometric goals clip, so that mass sits on $T$ instead of $T-1$, one step apart. **Random goals** are
#    uniform over all rows; the official code leaves out each episode's last row (its `valids`), 0.1% of the rows.
# 3. **Valid chunk starts** need rows $t \dots t+n$ inside one episode (chapter 2a); the official code also drops the
#    last two windows of each episode.
# 4. **Scene** is not among the paper's goal-conditioned environments; it gets the cube actor mix.
# 5. **Normalisers** from the first file's validation split, for observations and goals alike (official; the paper
#    does not mention normalisation).
# 6. **Evaluation seeds**: each of the five goals runs the same environment seeds, `seed … seed + episodes − 1`, so the
#    final evaluation's seeds stay disjoint from the training evaluations' as in chapter 10.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
