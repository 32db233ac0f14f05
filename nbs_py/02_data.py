# %% [markdown]
# # OGBench data without downloads
# > Generate OGBench's manipulation datasets locally with its own scripted oracles, load them through OGBench's API, normalise them, and sample action-chunk batches.

# %%
#| default_exp data

# %%
#| export
from __future__ import annotations

import os
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
import multiprocessing as mp

os.environ.setdefault('MUJOCO_GL', 'egl')  # headless rendering; must be set before mujoco is imported

import numpy as np
import tyro
from tqdm import tqdm

from mac.core import atomic_write, provenance, run_cli, write_json

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail
import tempfile, json, warnings
warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')

# %% [markdown]
# ## In the paper
#
# > We employ 25 single-task manipulation tasks from five environments in OG-Bench (Park et al., 2025a):
# > cube-$\{\text{single}, \text{double}\}$, scene, and puzzle-$\{3 \times 3, 4 \times 4\}$. Unlike in Section 5.1, these
# > tasks are reward-based (i.e., not goal-conditioned), where the agent gets a reward according to the progress of the
# > task. We use the 1M-sized play datasets given by the benchmark. We report the average success rate across 5 tasks
# > for each environment. (Section 5.2)
#
# OGBench's datasets download from a university server at run time. Machines without internet cannot reach it,
# but OGBench ships the scripted oracles that produced those datasets, and its generation recipe is public. So
# this chapter makes the same datasets locally, in OGBench's file format, and loads them with OGBench's own
# loader: a downloaded file and a generated one are interchangeable.

# %% [markdown]
# ## OGBench's manipulation environments
#
# A UR5e arm with a Robotiq gripper on a table (MuJoCo). `cube-*` move one to eight cubes to target poses;
# `scene` combines a cube, two buttons (which lock the drawer and window), a drawer and a window; `puzzle-*` are
# Lights-Out puzzles of buttons. Observations hold the arm's proprioception and the objects' states (S = 28 for
# cube-single, 40 for scene, 55 for puzzle-3x3); actions are 5-D (end-effector x, y, z, yaw and gripper), in $[-1, 1]$.

# %%
#| export
ENVS = ('cube-single', 'cube-double', 'cube-triple', 'cube-quadruple', 'cube-octuple',
        'scene', 'puzzle-3x3', 'puzzle-4x4', 'puzzle-4x5', 'puzzle-4x6')  # OGBench manipulation envs
KINDS = ('play', 'noisy')  # dataset types: scripted plan oracles, or Markov oracles with noise
REWARD_K = {'cube-single': 1, 'cube-double': 2, 'cube-triple': 3, 'cube-quadruple': 4, 'cube-octuple': 8, 'scene': 5,
            'puzzle-3x3': 9, 'puzzle-4x4': 16, 'puzzle-4x5': 20, 'puzzle-4x6': 24}  # sub-goals per task
DEFAULT_DATASET_DIR = '~/.ogbench/data'  # OGBench's default

class DatasetError(ValueError):
    "A dataset name, file or setting that cannot be used; the message says what is wrong and how to fix it."


# %% [markdown]
# Names follow OGBench: the environment `cube-single-v0`, its dataset `cube-single-play-v0` (files
# `cube-single-play-v0.npz` and `cube-single-play-v0-val.npz`), and the single-task versions
# `cube-single-play-singletask-task2-v0` (the same files, with rewards relabelled for task 2). One parser accepts
# any of these forms, or the bare `cube-single`, and says what it supports when a name is wrong.

# %%
#| export
@dataclass(frozen=True)
class DatasetName:
    env: str                # e.g. 'cube-single'
    kind: str = 'play'      # 'play' or 'noisy'
    task: int | None = None # single-task id (1-5), None for the goal-conditioned dataset
    singletask: bool = False
    oraclerep: bool = False # goal-conditioned with OGBench's oracle goal representations (chapter 9b)

    @property
    def dataset(self): return f'{self.env}-{self.kind}-v0'          # the files' stem
    @property
    def env_id(self): return f'{self.env}-v0'                       # the environment that made the data
    @property
    def full(self):                                                 # what ogbench.make_env_and_datasets takes
        if self.oraclerep: return f'{self.env}-{self.kind}-oraclerep-v0'
        if not self.singletask: return self.dataset
        return f'{self.env}-{self.kind}-singletask' + (f'-task{self.task}' if self.task else '') + '-v0'


# %% [markdown]
# `parse_name` accepts `<env>[-play|-noisy][-singletask[-taskK]|-oraclerep][-v0]` and names that grammar in its error
# when a name does not fit it:

# %%
#| export
def parse_name(name: str) -> DatasetName:
    "Parse 'cube-single', 'cube-single-v0', 'cube-single-play-v0', 'cube-single-play-singletask-task2-v0' or 'puzzle-3x3-play-oraclerep-v0'."
    rest = name[:-3] if name.endswith('-v0') else name
    env = next((e for e in sorted(ENVS, key=len, reverse=True) if rest == e or rest.startswith(e + '-')), None)
    if env is None:
        raise DatasetError(f'unknown environment in {name!r}: supported are {", ".join(ENVS)} '
                           f'(e.g. cube-single-play-singletask-task2-v0)')
    parts = [p for p in rest[len(env):].split('-') if p]
    kind = parts.pop(0) if parts and parts[0] in KINDS else 'play'
    singletask = bool(parts) and parts[0] == 'singletask'
    oraclerep = parts == ['oraclerep']
    task = None
    if oraclerep: pass
    elif singletask and len(parts) == 2 and parts[1].startswith('task') and parts[1][4:].isdigit(): task = int(parts[1][4:])
    elif parts and not (singletask and len(parts) == 1):
        raise DatasetError(f'cannot parse {name!r}: expected <env>[-play|-noisy][-singletask[-taskK]|-oraclerep][-v0], '
                           f'e.g. {env}-play-singletask-task2-v0')
    if task is not None and not 1 <= task <= 5: raise DatasetError(f'{name!r}: OGBench tasks are task1 … task5')
    return DatasetName(env, kind, task, singletask, oraclerep)


# %%
test_eq(parse_name('cube-single'), DatasetName('cube-single'))
test_eq(parse_name('cube-double-noisy-v0'), DatasetName('cube-double', 'noisy'))
n = parse_name('puzzle-4x4-play-singletask-task4-v0')
test_eq((n.env, n.task, n.dataset, n.full), ('puzzle-4x4', 4, 'puzzle-4x4-play-v0', 'puzzle-4x4-play-singletask-task4-v0'))
test_eq(parse_name('scene-play-singletask-v0').full, 'scene-play-singletask-v0')
o = parse_name('puzzle-3x3-play-oraclerep-v0'); test_eq((o.oraclerep, o.singletask, o.dataset, o.full), (True, False, 'puzzle-3x3-play-v0', 'puzzle-3x3-play-oraclerep-v0'))
test_fail(lambda: parse_name('puzzle-3x3-play-oraclerep-task2-v0'), contains='cannot parse')
test_fail(lambda: parse_name('cube-sextuple'), contains='supported are cube-single, cube-double')
test_fail(lambda: parse_name('cube-single-play-singletask-task9-v0'), contains='task1 … task5')
test_fail(lambda: parse_name('cube-single-expert-v0'), contains='cannot parse')

# %% [markdown]
# A frame of each of the paper's five environments, rendered headless (MuJoCo with `MUJOCO_GL=egl`; where no GL
# is available the notebook says so and goes on).

# %%
import gymnasium, ogbench  # noqa: F401  (importing ogbench registers its environments)
import matplotlib.pyplot as plt
frames = {}
try:
    for e in ('cube-single', 'cube-double', 'scene', 'puzzle-3x3', 'puzzle-4x4'):
        env = gymnasium.make(f'{e}-v0', render_mode='rgb_array', width=160, height=160)
        env.reset(seed=0); frames[e] = env.render(); env.close()
except Exception as err: print(f'no headless rendering here ({type(err).__name__}: {err}); skipping the frames')
if frames:
    fig, axs = plt.subplots(1, len(frames), figsize=(2 * len(frames), 2.2), dpi=80)
    for ax, (e, im) in zip(axs, frames.items()): ax.imshow(im); ax.set_title(e, fontsize=9); ax.axis('off')
    fig.suptitle("The paper's five reward-based OGBench environments"); plt.show()


# %% [markdown]
# ## Generating datasets with OGBench's oracles
#
# OGBench's recipe for the *play* datasets (its `generate_manipspace.py`), which we follow:
#
# 1. Make the environment with `terminate_at_goal=False, mode='data_collection', max_episode_steps=1001`, so every
#    episode has 1001 steps.
# 2. Drive it with the *plan* oracles (`ogbench.manipspace.oracles.plan`): cube, button, drawer, window, each with
#    noise 0.1 and noise smoothing 0.5; puzzle buttons are pressed with the gripper always closed.
# 3. Whenever the current oracle is done, pick a new target with `env.unwrapped.set_new_target`; cube envs pass a
#    stacking probability drawn once per episode: single 0, double U(0, 0.25), triple U(0.05, 0.35),
#    quadruple U(0.1, 0.5), octuple U(0, 0.35).
# 4. Clip actions to [−1, 1]; record the observation *before* the step, the action, `terminals` (1 on the
#    episode's last step) and the previous physics state `info['prev_qpos']`, `info['prev_qvel']` (and
#    `prev_button_states` for puzzle and scene), so row t describes $s_t$.
# 5. `scene` only: discard and redo an episode whose cube leaves the visible area (y ≥ 0.29, or y ≤ −0.3 outside the drawer's height).
# 6. Add 10% more episodes as the `-val` split; store float32 arrays, bool terminals, int64 button states.
#
# *Noisy* datasets use the Markov (closed-loop) oracles with per-episode Gaussian noise level ξ ~ U(0, noise)
# (scaled by (1, 1, 1, 3, 10) per action dimension), a minimum action norm of 0.4, and random actions with
# probability `p_random_action` (OGBench: 0.1).

# %%
#| export
def _p_stack(env: str, rng: np.random.Generator) -> float:
    "Per-episode probability that a new cube target is a stack (OGBench's recipe)."
    lo, hi = {'cube-single': (0, 0), 'cube-double': (0, 0.25), 'cube-triple': (0.05, 0.35),
              'cube-quadruple': (0.1, 0.5), 'cube-octuple': (0, 0.35)}.get(env, (0.5, 0.5))
    return float(rng.uniform(lo, hi))


# %% [markdown]
# The oracles: OGBench's plan oracles for the play datasets, its Markov oracles for the noisy ones, one per kind of task
# the environment sets (cubes; buttons; in scene also the drawer and the window).

# %%
#| export
def _make_oracles(env, name: str, kind: str, noise: float, noise_smoothing: float, min_norm: float):
    "OGBench's scripted oracles for one environment, keyed by the task type they solve."
    from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
    from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
    from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle
    plan = dict(noise=noise, noise_smoothing=noise_smoothing)
    mk = dict(min_norm=min_norm)
    if name.startswith('cube'):
        return {'cube': CubeMarkovOracle(env=env, **mk) if kind == 'noisy' else CubePlanOracle(env=env, **plan)}
    if name.startswith('puzzle'):
        return {'button': ButtonMarkovOracle(env=env, gripper_always_closed=True, **mk) if kind == 'noisy'
                else ButtonPlanOracle(env=env, gripper_always_closed=True, **plan)}
    if kind == 'noisy':
        return {'cube': CubeMarkovOracle(env=env, max_step=100, **mk), 'button': ButtonMarkovOracle(env=env, **mk),
                'drawer': DrawerMarkovOracle(env=env, **mk), 'window': WindowMarkovOracle(env=env, **mk)}
    return {'cube': CubePlanOracle(env=env, **plan), 'button': ButtonPlanOracle(env=env, **plan),
            'drawer': DrawerPlanOracle(env=env, **plan), 'window': WindowPlanOracle(env=env, **plan)}


# %% [markdown]
# Scene's health check, as in OGBench's recipe: an episode is unhealthy when the cube leaves the visible area outside
# the drawer (`collect_episode` below redoes it).

# %%
#| export
def _healthy(env: str, qpos: np.ndarray) -> bool:
    "Scene's health check: the cube (qpos 14:17) stays visible unless it is inside the drawer."
    if env != 'scene': return True
    xyz = qpos[:, 14:17]
    far_right = (xyz[:, 1] >= 0.29).any()
    far_left = ((xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))).any()
    return not (far_right or far_left)


# %% [markdown]
# **Determinism.** Each episode gets its own seed stream, derived from `(seed, episode index)`: it seeds the
# environment's reset, the global NumPy generator the oracles draw from, and our own choices (stacking probability,
# noise level, random actions). An episode is therefore the same whichever worker makes it and whatever ran
# before it, so the same seed and episode count give the same file for any number of workers.

# %%
#| export
@dataclass(frozen=True)
class GenConfig:
    env: str                      # OGBench env name, e.g. 'cube-single'
    kind: str = 'play'            # 'play' (plan oracles) or 'noisy' (Markov oracles + noise)
    seed: int = 0
    max_episode_steps: int = 1001 # OGBench's recipe
    noise: float = 0.1            # oracle action noise (play) / max Gaussian noise level ξ (noisy)
    noise_smoothing: float = 0.5  # plan oracles' noise smoothing
    min_norm: float = 0.4         # Markov oracles' minimum action norm
    p_random_action: float = 0.0  # probability of a uniformly random action (OGBench's noisy sets: 0.1)

_WORKER = {}

def _env_and_oracles(cfg: GenConfig):
    "One environment and its oracles per process, made on first use."
    if _WORKER.get('cfg') != cfg:
        import warnings; warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')  # float32 Box notices
        import gymnasium, ogbench  # noqa: F401
        env = gymnasium.make(f'{cfg.env}-v0', terminate_at_goal=False,
                             mode='data_collection', max_episode_steps=cfg.max_episode_steps)
        _WORKER.update(cfg=cfg, env=env, oracles=_make_oracles(env, cfg.env, cfg.kind, cfg.noise, cfg.noise_smoothing, cfg.min_norm))
    return _WORKER['env'], _WORKER['oracles']


# %% [markdown]
# Episode number `index` depends only on the seed and the index (see **Determinism** above), so workers can make any
# episodes in any order and the file comes out the same:

# %%
#| export
def collect_episode(cfg: GenConfig, index: int) -> dict[str, np.ndarray]:
    "Episode number `index` of the dataset `cfg` describes: one (healthy) oracle episode as arrays."
    env, oracles = _env_and_oracles(cfg)
    ss = np.random.SeedSequence([cfg.seed, index])
    saved = np.random.get_state()  # the oracles draw from NumPy's global generator: seed it, then restore it
    try:
        for attempt_ss in ss.spawn(100):  # scene redoes unhealthy episodes; each attempt has its own stream
            env_seed, np_seed, own_seed = attempt_ss.generate_state(3)
            np.random.seed(np_seed); rng = np.random.default_rng(own_seed)
            ep = _run_episode(env, oracles, cfg, rng, int(env_seed))
            if _healthy(cfg.env, ep['qpos']): return ep
    finally: np.random.set_state(saved)
    raise RuntimeError(f'{cfg.env}: 100 unhealthy episodes in a row for episode {index}; is the environment broken?')


# %% [markdown]
# One episode: the oracle acts (with a random action at rate `p_random_action`, and Gaussian noise in the noisy
# datasets), and whenever it has finished its task the environment sets a new target and the matching oracle takes over;
# each row records the observation, the action, and the physics state before the step.

# %%
#| export
def _run_episode(env, oracles, cfg: GenConfig, rng, env_seed: int) -> dict[str, np.ndarray]:
    ob, info = env.reset(seed=env_seed)
    p_stack = _p_stack(cfg.env, rng)
    xi = rng.uniform(0, cfg.noise) if cfg.kind == 'noisy' else 0.0
    agent = oracles[info['privileged/target_task']]; agent.reset(ob, info)
    rec = {k: [] for k in ('observations', 'actions', 'terminals', 'qpos', 'qvel', 'button_states')}
    done = False
    while not done:
        if rng.random() < cfg.p_random_action: action = rng.uniform(-1, 1, size=env.action_space.shape)
        else:
            action = np.asarray(agent.select_action(ob, info), dtype=np.float64)
            if cfg.kind == 'noisy': action = action + rng.normal(0, [xi, xi, xi, 3 * xi, 10 * xi])
        action = np.clip(action, -1, 1)
        next_ob, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        if agent.done:  # a new target whenever the oracle has finished its task
            kw = {'p_stack': p_stack} if cfg.env.startswith('cube') else {}
            agent_ob, agent_info = env.unwrapped.set_new_target(**kw)
            agent = oracles[agent_info['privileged/target_task']]; agent.reset(agent_ob, agent_info)
        rec['observations'].append(ob); rec['actions'].append(action); rec['terminals'].append(done)
        rec['qpos'].append(info['prev_qpos']); rec['qvel'].append(info['prev_qvel'])
        if 'prev_button_states' in info: rec['button_states'].append(info['prev_button_states'])
        ob = next_ob
    return _as_arrays(rec)

def _as_arrays(rec):
    "OGBench's dtypes: float32 everywhere, bool terminals, int64 button states; empty keys dropped."
    types = {'terminals': bool, 'button_states': np.int64}
    return {k: np.asarray(v, dtype=types.get(k, np.float32)) for k, v in rec.items() if len(v)}


# %%
cfg = GenConfig('cube-single', max_episode_steps=120)
t0 = time.time(); ep = collect_episode(cfg, 0); dt = time.time() - t0
print({k: (v.shape, v.dtype.name) for k, v in ep.items()}, f'{len(ep["actions"]) / dt:.0f} steps/s (incl. env creation)')
test_eq(ep['terminals'].sum(), 1); assert ep['terminals'][-1]
test_eq(len(ep['observations']), 120)
assert np.abs(ep['actions']).max() <= 1
ep_again = collect_episode(cfg, 0)
assert all(np.array_equal(ep[k], ep_again[k]) for k in ep)   # same (seed, index) → the same episode
assert not np.array_equal(collect_episode(cfg, 1)['actions'], ep['actions'])

# %% [markdown]
# `qpos` row t is the physics state of observation t (OGBench stores `prev_qpos`): cube-single's observation holds
# the cube's position as (xyz − (0.425, 0, 0)) · 10 at indices 19:22, and the cube's xyz is `qpos[14:17]`; they agree
# row by row (with `qpos` of the *next* state they would not).

# %%
cube_in_obs = ep['observations'][:, 19:22] / 10 + np.array([0.425, 0, 0])
test_close(cube_in_obs, ep['qpos'][:, 14:17], eps=1e-5)
assert np.abs(cube_in_obs[:-1] - ep['qpos'][1:, 14:17]).max() > 1e-3  # the cube moves, so a one-row shift would show


# %% [markdown]
# ### Whole datasets: workers, atomic files, skip-if-valid
#
# `generate_dataset` makes `episodes` training episodes and `episodes // 10` validation episodes (OGBench's split),
# in worker processes, merged in episode order. Files are written atomically (temporary file, then rename), so an
# interrupted run leaves either no file or a complete one, and a sidecar `<dataset>.json` records how they were
# made. An existing valid pair made with the same settings is kept; different settings are an error unless `force`.
# A valid file is never replaced without `force`: when one of the pair is missing, only that one is made, and only
# if the sidecar says the other was made here with the same settings (episode `i` depends only on the seed and `i`,
# so the missing file comes out as it would have); otherwise the call refuses and changes nothing.

# %%
#| export
def dataset_paths(name: str, dataset_dir=DEFAULT_DATASET_DIR) -> tuple[Path, Path]:
    "The train and validation files OGBench reads for a dataset name."
    stem = parse_name(name).dataset
    d = Path(os.path.expanduser(str(dataset_dir)))
    return d / f'{stem}.npz', d / f'{stem}-val.npz'

def save_npz(path: Path, arrays: dict):
    "Write arrays as a compressed .npz atomically: a reader sees the old file or the whole new one, never a part."
    def write(tmp):
        with open(tmp, 'wb') as f: np.savez_compressed(f, **arrays)
    atomic_write(path, write)

def merge_episodes(episodes: list[dict]) -> dict:
    "Concatenate per-episode arrays key by key, in order (the file layout of OGBench's datasets)."
    return {k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}


# %%
#| export
def _die_with_parent(parent: int):
    "Worker initializer: exit when the parent dies, even by kill -9 (Linux: PR_SET_PDEATHSIG; elsewhere a watcher thread)."
    try:
        import ctypes, signal
        if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) == 0 and os.getppid() == parent: return  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError): pass
    import threading
    def watch():
        while os.getppid() == parent: time.sleep(0.5)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()

def _episodes(cfg: GenConfig, indices, workers: int, progress: bool, desc: str, arrivals: list | None = None):
    "Collect the episodes `indices` in order, in `workers` processes (1: in this process); log arrival times if asked."
    bar = tqdm(total=len(indices), desc=desc, unit='ep', disable=not progress, mininterval=1, dynamic_ncols=True)
    out, steps, t0 = [], 0, time.time()
    def _take(ep):
        nonlocal steps
        out.append(ep); steps += len(ep['actions']); bar.update(1)
        if arrivals is not None: arrivals.append(time.perf_counter())
        bar.set_postfix_str(f'{steps / max(time.time() - t0, 1e-9):.0f} steps/s')
    if workers <= 1:
        for i in indices: _take(collect_episode(cfg, i))
    else:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context('spawn'), initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
            for ep in pool.map(collect_episode, [cfg] * len(indices), indices, chunksize=1): _take(ep)
    bar.close()
    return out


# %%
#| export
NOISY_GEN_KW = {'noise': 0.2, 'p_random_action': 0.1}   # OGBench's noisy datasets: oracle noise ξ ≤ 0.2, 10% random actions

def generate_dataset(name: str, episodes: int, dataset_dir=DEFAULT_DATASET_DIR, seed: int = 0, workers: int = 1,
                     force: bool = False, progress: bool = True, **gen_kw) -> tuple[Path, Path]:
    "Write `<dataset>.npz` (`episodes` episodes) and `<dataset>-val.npz` (episodes // 10) with OGBench's oracles."
    spec = parse_name(name)
    if episodes < 1: raise DatasetError(f'episodes must be >= 1, got {episodes}')
    if spec.kind == 'noisy': gen_kw = NOISY_GEN_KW | gen_kw
    cfg = GenConfig(spec.env, spec.kind, seed, **gen_kw)
    if cfg.max_episode_steps < 2: raise DatasetError(f'max_episode_steps must be >= 2 (an episode needs a step and its terminal), got {cfg.max_episode_steps}')
    train, val = dataset_paths(name, dataset_dir)
    _check_writable(train.parent)                    # before hours of generation, not after
    record = dict(generator='mac.data.generate_dataset', dataset=spec.dataset, episodes=episodes,
                  val_episodes=max(episodes // 10, 1), **{k: v for k, v in vars(cfg).items() if k != 'env'})
    todo = _to_make(train, val, record, force, progress)
    if not any(todo.values()): return train, val
    side = train.with_suffix('.json')
    t0 = time.time()
    idx = (list(range(episodes)) if todo['train'] else []) + (list(range(episodes, episodes + record['val_episodes'])) if todo['val'] else [])
    eps = _episodes(cfg, idx, workers, progress, f'{spec.dataset} ({workers} worker{"s" * (workers > 1)})')
    k = episodes if todo['train'] else 0   # collect_episode(cfg, i) depends only on i: the val file is episodes[episodes:]
    if todo['val']: save_npz(val, merge_episodes(eps[k:]))  # val first: train (the file a loader looks for first) lands last
    if todo['train']: save_npz(train, merge_episodes(eps[:k]))
    steps = sum(len(e['actions']) for e in eps)
    if todo['train']: write_json(side, provenance(wall_time_s=time.time() - t0, workers=workers, steps=steps, **record))
    return train, val


# %% [markdown]
# What is already in the folder decides what is made: nothing is overwritten unless `force` says so, and a file made
# with other settings (or not by `mac_data`) is refused with both files' state in the message.

# %%
#| export
def _to_make(train: Path, val: Path, record: dict, force: bool, progress: bool) -> dict:
    "Which files to make: both; or, beside files made here with the same settings, only a missing one; files made otherwise are refused, untouched."
    side = train.with_suffix('.json')
    todo = {'train': True, 'val': True}
    if (train.exists() or val.exists()) and not force:
        old = _read_json(side)
        same = old is not None and all(old.get(k) == v for k, v in record.items())
        have = [p for p in (train, val) if p.exists()]
        if same and all(_is_valid(p) for p in have):   # made here with these settings: make only what is missing
            todo = {'train': not train.exists(), 'val': not val.exists()}
            if not any(todo.values()):
                if progress: print(f'{train.name} and {val.name} exist, are valid and were made with these settings: skipping')
                return todo
            if progress: print(f'{have[0].name} exists with these settings: making only the missing {(val if train.exists() else train).name}')
        else:
            why = 'was made with other settings' if old is not None else 'was not made by mac_data (downloaded?)'
            bad = [_why_invalid(p) for p in have if not _is_valid(p)]
            raise DatasetError(f'{" and ".join(p.name for p in have)} already in {train.parent} '
                               f'{"is invalid (" + ", ".join(bad) + ")" if bad else why + (f" ({side.name}: {old})" if old else "")}'
                               f'{"" if len(have) == 2 else "; its twin " + (val if train.exists() else train).name + " is missing"}: '
                               f'nothing was changed. Pass force=True (CLI: --force) to replace both, or choose another --dataset-dir')
    return todo


# %% [markdown]
# Three small helpers: a folder that cannot be written fails before the work starts; `_why_invalid` says why a file is
# invalid; `_read_json` reads the settings record (None when it is missing or unreadable).

# %%
#| export
def _check_writable(d: Path):
    "Fail early, with the reason, when datasets cannot be written into `d`."
    if d.exists() and not d.is_dir(): raise DatasetError(f'--dataset-dir {d} is a file, not a folder: choose a folder')
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix='.mac-write-test-'): pass
    except OSError as e: raise DatasetError(f'cannot write datasets into {d} ({e.strerror or e}): choose another --dataset-dir') from None

def _why_invalid(p: Path) -> str:
    try: validate_dataset(p); return f'{p.name}: valid'
    except DatasetError as e: return str(e)

def _read_json(p):
    import json
    try: return json.loads(Path(p).read_text())
    except (OSError, ValueError): return None


# %% [markdown]
# ### The validator
#
# Checks that a file is what OGBench's loader and our sampler expect, and names the file and the problem otherwise. First the file itself: it must exist and
# open as an `.npz`.

# %%
#| export
def _read_npz(path: Path) -> dict:
    "Every array of an .npz file, or a DatasetError that says it is missing or unreadable."
    if not path.exists(): raise DatasetError(f'{path}: no such file')
    try:
        with np.load(path) as f: return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DatasetError(f'{path}: not a readable .npz file (truncated or corrupt?): {e}. Delete it and generate it again.') from e



# %% [markdown]
# Then the arrays: the keys OGBench's loader reads, each with one row per transition and OGBench's dtype (puzzle
# files add `button_states`, int64), and no NaN or infinity.

# %%
#| export
REQUIRED = {'observations': np.float32, 'actions': np.float32, 'terminals': np.bool_, 'qpos': np.float32, 'qvel': np.float32}

def _bad(path, msg): raise DatasetError(f'{path}: {msg}')

def _check_arrays(path: Path, data: dict) -> int:
    "The keys OGBench's files hold, each with one row per transition, its dtype, and only finite floats; returns the rows."
    missing = [k for k in REQUIRED if k not in data]
    if missing: _bad(path, f'missing keys {missing} (has {sorted(data)})')
    N = len(data['terminals'])
    for k, v in data.items():
        if len(v) != N: _bad(path, f'{k!r} has {len(v)} rows but terminals has {N}')
        if k in REQUIRED and v.dtype != REQUIRED[k]: _bad(path, f'{k!r} has dtype {v.dtype}, expected {np.dtype(REQUIRED[k])}')
        if k == 'button_states' and v.dtype != np.int64: _bad(path, f"'button_states' has dtype {v.dtype}, expected int64")
        if v.dtype.kind == 'f' and not np.isfinite(v).all(): _bad(path, f'{k!r} has {int((~np.isfinite(v)).sum())} non-finite values')
    if N == 0: _bad(path, 'is empty')
    return N



# %% [markdown]
# Last, the shapes and the episodes: actions of the env's width inside [−1, 1], a terminal on the last row, no
# episode of one step.

# %%
#| export
def validate_dataset(path, action_dim: int = 5) -> dict:
    "Check keys, dtypes, shapes, episode boundaries and finiteness of an OGBench .npz file; return a summary."
    path = Path(path)
    data = _read_npz(path); N = _check_arrays(path, data)
    if data['observations'].ndim != 2: _bad(path, f"observations should be (N, S), got {data['observations'].shape}")
    if data['actions'].shape[1:] != (action_dim,): _bad(path, f"actions should be (N, {action_dim}), got {data['actions'].shape}")
    if np.abs(data['actions']).max() > 1: _bad(path, 'actions outside [-1, 1]')
    if not data['terminals'][-1]: _bad(path, 'the last step is not a terminal: the file ends mid-episode')
    ends = np.flatnonzero(data['terminals']); lengths = np.diff(np.concatenate([[-1], ends]))
    if lengths.min() < 2: _bad(path, f'episode of length {lengths.min()} at row {ends[lengths.argmin()]}: consecutive terminals')
    return dict(transitions=N, episodes=len(ends), episode_length=(int(lengths.min()), int(lengths.max())),
                obs_dim=data['observations'].shape[1], keys=sorted(data))

def _is_valid(path) -> bool:
    try: validate_dataset(path); return True
    except DatasetError: return False


# %% [markdown]
# Experiments need *a* dataset, not a particular file: `ensure_dataset` uses a valid pair that is already there
# (generated with any settings, or downloaded from OGBench) and generates `episodes` episodes only when none exists.

# %%
#| export
def ensure_dataset(name: str, episodes: int, dataset_dir=DEFAULT_DATASET_DIR, workers: int = 1, progress: bool = True, **kw) -> dict:
    "Use a valid existing train/val pair for `name`, or generate one with `episodes` episodes; return a summary of the train file."
    train, val = dataset_paths(name, dataset_dir)
    s = None
    if train.exists() and val.exists() and _is_valid(val):
        try: s = validate_dataset(train)                  # read once: the check and the summary
        except DatasetError: pass
    if s is None:
        generate_dataset(name, episodes, dataset_dir, workers=workers, progress=progress, **kw); s = validate_dataset(train)
    elif progress: print(f'using the existing {train} ({s["episodes"]} episodes)')
    return dict(file=str(train), made_by=(_read_json(train.with_suffix('.json')) or {}).get('generator', 'unknown (downloaded?)'),
                **{k: v for k, v in s.items() if k != 'keys'})


# %% [markdown]
# Generate a tiny dataset (3 + 1 episodes of 150 steps) into a temporary folder, validate it, and check that
# workers do not change the bytes.

# %%
tmp = Path(tempfile.mkdtemp())
t0 = time.time()
train_path, val_path = generate_dataset('cube-single', 3, tmp, seed=0, max_episode_steps=150, progress=False)
print(f'{time.time() - t0:.1f}s', validate_dataset(train_path), validate_dataset(val_path)['episodes'])
test_eq(validate_dataset(train_path)['episodes'], 3); test_eq(validate_dataset(val_path)['episodes'], 1)
side = json.loads(train_path.with_suffix('.json').read_text())
test_eq((side['seed'], side['episodes'], side['kind']), (0, 3, 'play'))
mtime = train_path.stat().st_mtime_ns
generate_dataset('cube-single', 3, tmp, seed=0, max_episode_steps=150, progress=False)  # valid + same settings: skipped
test_eq(train_path.stat().st_mtime_ns, mtime)
test_fail(lambda: generate_dataset('cube-single', 5, tmp, seed=0, max_episode_steps=150, progress=False), contains='--force')
test_eq(train_path.stat().st_mtime_ns, mtime)  # and nothing already written was lost
info = ensure_dataset('cube-single', 50, tmp, progress=False)              # an existing valid pair is used as it is
test_eq((info['episodes'], info['made_by'], train_path.stat().st_mtime_ns), (3, 'mac.data.generate_dataset', mtime))
with np.load(val_path) as f: val_obs = f['observations']
val_path.unlink()                                                          # a lost -val file: made alone, train untouched
generate_dataset('cube-single', 3, tmp, seed=0, max_episode_steps=150, progress=False)
test_eq(train_path.stat().st_mtime_ns, mtime)
with np.load(val_path) as f: test_eq(f['observations'], val_obs)           # the same episodes as before
val_path.unlink()                                                          # a 2-episode request (a `tiny` run) must not replace it
test_fail(lambda: ensure_dataset('cube-single', 2, tmp, progress=False), contains='nothing was changed')
test_eq((train_path.stat().st_mtime_ns, val_path.exists()), (mtime, False))
generate_dataset('cube-single', 3, tmp, seed=0, max_episode_steps=150, progress=False); mtime_val = val_path.stat().st_mtime_ns

# %% [markdown]
# The validator on broken files: each message names the file and the problem.

# %%
with np.load(train_path) as f: good = {k: f[k] for k in f.files}
def broken(**change):
    p = tmp / 'broken.npz'; d = {**good, **change}; d = {k: v for k, v in d.items() if v is not None}
    with open(p, 'wb') as f: np.savez(f, **d)
    return p
test_fail(lambda: validate_dataset(broken(qvel=None)), contains="missing keys ['qvel']")
test_fail(lambda: validate_dataset(broken(terminals=good['terminals'].astype(np.float32))), contains="'terminals' has dtype float32")
test_fail(lambda: validate_dataset(broken(terminals=np.r_[good['terminals'][:-1], False])), contains='ends mid-episode')
nan_obs = good['observations'].copy(); nan_obs[3, 2] = np.nan
test_fail(lambda: validate_dataset(broken(observations=nan_obs)), contains="'observations' has 1 non-finite")
(tmp / 'trunc.npz').write_bytes(train_path.read_bytes()[:1000])
test_fail(lambda: validate_dataset(tmp / 'trunc.npz'), contains='truncated or corrupt')


# %% [markdown]
# ## Loading through OGBench, single-task rewards
#
# With the files in place, `ogbench.make_env_and_datasets(name, dataset_dir=..., compact_dataset=True)` loads them
# and finds nothing to download. For a single-task name it **relabels rewards** for that task: OGBench counts the
# task's sub-goals satisfied by the *current* state $s_t$ (cube within 4 cm of its target, a button in its target
# state, drawer or window within 4 cm) and sets $r_t = \#\text{satisfied} - K$, so $r_t \in \{-K, \dots, 0\}$ and 0
# means solved. K per environment: cube-single 1, cube-double 2 (one per cube), scene 5 (1 cube + 2 buttons +
# drawer + window), puzzle-3x3 9 and puzzle-4x4 16 (one per button). It also adds `masks` = 0 where the task is
# solved; the official MAC code ignores them (no termination in the data) and so do we by default.
#
# The compact format marks the last *two* rows of each episode as `terminals` and adds `valids` = 0 on the last
# row (it has no next observation); `valids` is what we use to find episode boundaries.

# %%
#| export
def load_ogbench(name: str, dataset_dir=DEFAULT_DATASET_DIR, **env_kw):
    "(env, train, val) from `ogbench.make_env_and_datasets(..., compact_dataset=True)`, failing clearly if files are missing."
    spec = parse_name(name)
    train, val = dataset_paths(name, dataset_dir)
    for p in (train, val):
        if not p.exists():
            raise DatasetError(f'{p} not found. Make it with: mac_data --env {spec.env}{" --kind noisy" if spec.kind == "noisy" else ""} '
                               f'--episodes 1000 --dataset-dir {dataset_dir}  (or download it with ogbench)')
        validate_dataset(p)
    import ogbench
    env, tr, va = ogbench.make_env_and_datasets(spec.full, dataset_dir=os.path.expanduser(str(dataset_dir)), compact_dataset=True, **env_kw)
    if tr['observations'].shape[1:] != va['observations'].shape[1:]:   # a pair from two different environments
        raise DatasetError(f'{train.name} has observations of size {tr["observations"].shape[1]} but {val.name} has {va["observations"].shape[1]}: '
                           f'they are not one dataset; make both again with mac_data --force')
    return env, tr, va


# %%
env, train, val = load_ogbench('cube-single-play-singletask-task2-v0', tmp)
print({k: v.shape for k, v in train.items()})
test_eq(train['observations'].shape, (450, 28)); test_eq(train['valids'].sum(), 450 - 3)
assert set(np.unique(train['rewards'])) <= {-1.0, 0.0}
test_fail(lambda: load_ogbench('cube-double-play-v0', tmp), contains='mac_data --env cube-double')


# %% [markdown]
# What a learner draws from these datasets (normalised observations, action chunks with their chunk rewards, windows
# of consecutive chunks) is [chapter 2a](02a_chunk_batches.ipynb) (`mac.batches`).

# %% [markdown]
# ## The command line
#
# `mac_data --env cube-single --episodes 1000 --workers 2 --seed 0` writes the dataset into OGBench's default
# folder (`~/.ogbench/data`, or `--dataset-dir`); `mac_data --validate FILE` checks a file.

# %%
#| export
@dataclass
class _DataArgs:
    "Generate an OGBench manipulation dataset locally with OGBench's scripted oracles (same recipe and file format as the downloads), or validate files."
    env: str | None = None                  # cube-single … cube-octuple, scene, puzzle-3x3 … puzzle-4x6, or a dataset name (scene-play-v0)
    kind: Literal[KINDS] | None = None      # dataset type (default: from the name, else 'play')
    episodes: int = 1000                    # training episodes of 1001 steps (the val split: 10% more)
    workers: int = 1                        # worker processes (the file does not depend on it)
    seed: int = 0                           # seeds every episode (episode i uses seed + i)
    dataset_dir: str = DEFAULT_DATASET_DIR  # where OGBench looks for datasets
    max_episode_steps: int = 1001           # episode length (OGBench's recipe: 1001)
    force: bool = False                     # replace existing files made with other settings
    validate: tuple[str, ...] = ()          # validate these .npz files instead of generating
    debug: bool = False                     # show the traceback of an error


# %% [markdown]
# The command generates, or with `--validate` only checks files, exiting 1 if one is invalid:

# %%
#| export
def data_cli(argv=None):
    "Command line: generate OGBench manipulation datasets with OGBench's oracles, or validate a file."
    a = tyro.cli(_DataArgs, args=argv, prog='mac_data')
    if a.validate:
        ok = True
        for f in a.validate:
            try: print(f'{f}: OK {validate_dataset(f)}')
            except DatasetError as e: print(f'INVALID {e}', file=sys.stderr); ok = False
        return 0 if ok else 1
    def body():
        if not a.env: raise ValueError(f'--env is required (e.g. --env cube-single; supported: {", ".join(ENVS)}), or pass --validate FILE')
        if a.episodes < 1: raise ValueError(f'--episodes must be >= 1, got {a.episodes}')
        if a.workers < 1: raise ValueError(f'--workers must be >= 1, got {a.workers}')
        spec = parse_name(a.env); name = f'{spec.env}-{a.kind or spec.kind}-v0'
        train, val = generate_dataset(name, a.episodes, a.dataset_dir, a.seed, a.workers, a.force,
                                      max_episode_steps=a.max_episode_steps)
        for p in (train, val): print(f'{p}: {validate_dataset(p)}')
        return 0
    return run_cli('mac_data', body, a.debug)


# %% [markdown]
# ## Speed
#
# `mac_data_bench` prints the figures the issue asks for: oracle env steps per second in one process (and per CPU
# second), W workers against one, and the file size. Results are in the closing note of the issue and in
# `results/data_bench/` (whose older records also hold the batch latency that chapter 2a's `bench_batches` now measures).

# %%
#| export
def bench_data(env: str = 'cube-single', episodes: int = 6, workers: int = 2, max_episode_steps: int = 1001, seed: int = 0) -> dict:
    "Measure generation throughput (1 and `workers` processes, `episodes` each) and file size."
    import tempfile, resource
    out = {}
    cfg = GenConfig(parse_name(env).env, seed=seed, max_episode_steps=max_episode_steps)
    collect_episode(cfg, 10_000)  # build the env outside the timing
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    eps = [collect_episode(cfg, i) for i in range(episodes)]
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    steps = sum(len(e['actions']) for e in eps)
    out['one_process_steps_per_s'] = steps / (t1 - t0)
    out['steps_per_cpu_s'] = steps / ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    for w in sorted({1, workers}):  # steady state: from the w-th arrival on, so process start-up is not counted
        t0, arrivals = time.perf_counter(), []
        eps = _episodes(cfg, range(episodes * w), w, False, '', arrivals)
        out[f'{w}_workers_steps_per_s'] = sum(len(e['actions']) for e in eps[w:]) / (arrivals[-1] - arrivals[w - 1])
        out[f'{w}_workers_wall_s_incl_startup'] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        tr, _ = generate_dataset(env, episodes, Path(d), seed, progress=False, max_episode_steps=max_episode_steps)
        out['mb_per_100k_transitions'] = tr.stat().st_size / 1e6 / (episodes * max_episode_steps / 1e5)
    out['load_avg'] = os.getloadavg()
    return out


# %% [markdown]
# Its command line, `mac_data_bench`:

# %%
#| export
@dataclass
class _DataBenchArgs:
    "Benchmark dataset generation: one process, then `workers` processes (prints figures; not a test)."
    env: str = 'cube-single'   # environment to generate
    episodes: int = 6          # 1001-step episodes per worker
    workers: int = 2           # worker processes of the parallel run
    out: str | None = None     # also write <env>.json and <env>-provenance.json here

def bench_data_cli(argv=None):
    "Command line: `mac_data_bench [--env cube-single] [--episodes 6] [--workers 2] [--out results/data_bench]` (writes <env>.json, <env>-provenance.json)."
    a = tyro.cli(_DataBenchArgs, args=argv, prog='mac_data_bench')
    t0 = time.time()
    res = bench_data(a.env, a.episodes, a.workers)
    w = a.workers
    res[f'scaling_{w}_workers_vs_1'] = res[f'{w}_workers_steps_per_s'] / res['1_workers_steps_per_s']
    for k, v in res.items(): print(f'{k:36s} {v if isinstance(v, tuple) else round(v, 3)}')
    if a.out:
        write_json(Path(a.out) / f'{a.env}.json', res)
        write_json(Path(a.out) / f'{a.env}-provenance.json', provenance(wall_time_s=time.time() - t0, env=a.env, episodes=a.episodes, workers=w))
    return 0


# %% [markdown]
# ## Implementation details
#
# 1. Generation follows OGBench's `generate_manipspace.py` recipe (oracles, noise 0.1 / smoothing 0.5, 1001-step
#    episodes, per-env stacking probabilities, scene's health check, 10% validation episodes, dtypes). Seeding
#    differs: OGBench seeds nothing per episode; we derive every episode's randomness from `(seed, index)` so files do
#    not depend on the number of workers. The same seed therefore does not reproduce OGBench's *downloaded* files
#    byte for byte; the distribution of episodes is the same.
# 2. Noisy datasets default to OGBench's published settings for them (noise 0.2, `p_random_action` 0.1); play
#    datasets to noise 0.1.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
