# %% [markdown]
# # Evaluation on OGBench
# > Run a trained agent in OGBench's single-task environments, in parallel, with one batched policy call per step; success rates, videos and plots.

# %%
#| default_exp evaluate

# %%
#| export
from __future__ import annotations

import csv
import functools
import math
import os
import time

os.environ.setdefault('MUJOCO_GL', 'egl')

import numpy as np
import torch

from mac.core import atomic_write
from mac.batches import ObsNormalizer
from mac.data import parse_name

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail
from pathlib import Path
import warnings; warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')
import tempfile
from mac.agent import MACAgent, MACConfig


# %% [markdown]
# ## The protocol
#
# As the paper, and as the official code ([`main.py:41`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/main.py#L41) sets 15 episodes, [`main.py:225-239`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/main.py#L225-L239) runs
# them on a single-task env, and [`evaluation.py:108-109`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/evaluation.py#L108-L109) with [`evaluation.py:132-140`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/evaluation.py#L132-L140) end an episode
# on termination or truncation and average the last step's `info` over episodes): for a single-task environment such as
# `cube-single-singletask-task2-v0`, run 15 episodes; an episode's success is the **final** step's `info['success']`;
# the task's success rate is their mean. Episodes end at the task's time limit (cube-single 200 steps, cube-double
# 500, scene 750, puzzle 500) or on success (single-task envs terminate at the goal).
#
# **Acting.** Observations are normalised with the training statistics, the agent returns a chunk of n actions, and by
# default only its **first** action is executed before re-planning at the next step (official
# `action_chunking_test = 1`). `replan_every = k` executes the first k actions open-loop instead (k = n: whole
# chunks). Every reported number says which was used.
#
# **ogbench ≥ 1.2.0** computes single-task success on the state *before* the action (`success_timing='pre'`); we
# record the ogbench version with every result.

# %% [markdown]
# ## Parallel episodes
#
# Episodes run in `gymnasium`'s `AsyncVectorEnv`, one process per worker (default: one per CPU core), so physics
# runs in parallel; the policy is called once per step on the stacked observations of all environments. With W
# workers, the E episodes run in ⌈E / W⌉ rounds. An environment that has finished keeps receiving (ignored) actions
# until its round ends.

# %%
#| export
def _make_env(name: str, **kw):
    "An OGBench single-task environment (importing ogbench registers them; also runs in worker processes)."
    import warnings; warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')
    import gymnasium, ogbench  # noqa: F401
    return gymnasium.make(name, **kw)

def eval_env_name(name: str) -> str:
    "The environment id of a dataset or env name: cube-single-play-singletask-task2-v0 → cube-single-singletask-task2-v0."
    spec = parse_name(name)
    if not spec.singletask: raise ValueError(f'{name!r} is not a single-task name: evaluation needs e.g. {spec.env}-play-singletask-task2-v0')
    return f'{spec.env}-singletask' + (f'-task{spec.task}' if spec.task else '') + '-v0'


# %%
test_eq(eval_env_name('cube-single-play-singletask-task2-v0'), 'cube-single-singletask-task2-v0')
test_eq(eval_env_name('scene-play-singletask-v0'), 'scene-singletask-v0')
test_fail(lambda: eval_env_name('cube-single-play-v0'), contains='not a single-task name')


# %%
#| export
def env_count(episodes: int, workers: int | None = None) -> int:
    "How many env copies `vector_env` makes for `episodes`: min(episodes, workers or cores)."
    return max(1, min(episodes, workers or os.cpu_count() or 1))

def vector_env(env_name: str, episodes: int, workers: int | None = None, **env_kwargs):
    "`env_count` copies of an env, in worker processes when more than one: each round runs one episode in each."
    import gymnasium
    W = env_count(episodes, workers)
    fns = [functools.partial(_make_env, env_name, **env_kwargs) for _ in range(W)]
    return gymnasium.vector.AsyncVectorEnv(fns, context='spawn') if W > 1 else gymnasium.vector.SyncVectorEnv(fns)


# %% [markdown]
# `run_episodes` plays one round of W episodes at a time, one per env copy, each from its own seed; every `replan_every`
# steps it asks `act_fn` for the next chunks of all W envs in one batched call, and an episode's success is the
# `success` flag of its last step.

# %%
#| export
def run_episodes(act_fn, env_name: str, episodes: int = 15, workers: int | None = None, seed: int = 0,
                 replan_every: int = 1, action_dim: int = 5, progress: bool = False, options: dict | None = None,
                 env_kwargs: dict | None = None, with_goals: bool = False, venv=None) -> dict:
    """Run `episodes` episodes of `act_fn(obs (W, S) np) → chunks (W, n·d) np` in parallel envs; per-episode success and length.
    `options` go to every reset (e.g. `{'task_id': 3}`); `with_goals`: the reset's `info['goal']` (W, G) is passed as `act_fn(obs, goals)`;
    `venv`: an open `vector_env` to reuse (left open), instead of making one for these episodes."""
    if replan_every < 1: raise ValueError(f'replan_every must be >= 1, got {replan_every}')
    if venv is not None and env_kwargs: raise ValueError(f'env_kwargs {env_kwargs} would be ignored: the envs of `venv` are made already (pass them to vector_env)')
    own = venv is None
    if own: venv = vector_env(env_name, episodes, workers, **(env_kwargs or {}))
    W = venv.num_envs
    succ, lengths, t0 = [], [], time.time()
    try:
        for r in range(-(-episodes // W)):
            k = min(W, episodes - r * W)                                     # episodes in this round
            obs, info = venv.reset(seed=[seed + r * W + i for i in range(W)], options=options)
            goals = info['goal'] if with_goals else None                      # goal-conditioned: one goal per episode
            done, step = np.zeros(W, bool), 0
            ep_succ, ep_len, queue = np.zeros(W), np.zeros(W, int), None
            while not done[:k].all():
                if step % replan_every == 0:                                  # re-plan: one batched call for all envs
                    queue = np.asarray(act_fn(obs) if goals is None else act_fn(obs, goals)).reshape(W, -1, action_dim)
                    if queue.shape[1] < replan_every: raise ValueError(f'replan_every={replan_every} exceeds the chunk length {queue.shape[1]}')
                obs, _, term, trunc, info = venv.step(np.clip(queue[:, step % replan_every], -1, 1))
                step += 1
                ended = (term | trunc) & ~done
                ep_succ[ended] = np.asarray(info['success'])[ended]         # the final step's success
                ep_len[ended] = step; done |= ended
            succ += ep_succ[:k].tolist(); lengths += ep_len[:k].tolist()
            if progress: print(f'  round {r + 1}: success so far {np.mean(succ):.2f} ({len(succ)}/{episodes} episodes)')
    finally:
        if own: venv.close()
    return dict(success=float(np.mean(succ)), successes=succ, lengths=lengths, episodes=episodes, workers=W,
                replan_every=replan_every, wall_s=round(time.time() - t0, 2))


# %% [markdown]
# A scripted check with no learning: an agent that always outputs zeros (the arm holds still) never solves
# cube-single task 2, episodes last the full 200 steps, and open-loop execution asks for a new chunk only every k steps.

# %%
calls = []
def still(obs): calls.append(len(obs)); return np.zeros((len(obs), 2 * 5))
res = run_episodes(still, 'cube-single-singletask-task2-v0', episodes=3, workers=2, replan_every=2)
test_eq((res['success'], res['lengths'], res['workers']), (0.0, [200, 200, 200], 2))
test_eq(len(calls), 2 * 100)      # two rounds × 200 steps / 2 steps per chunk
test_eq(set(calls), {2})          # one batched call for both envs
test_fail(lambda: run_episodes(still, 'cube-single-singletask-task2-v0', 1, replan_every=0), contains='replan_every must be >= 1')


# %% [markdown]
# The success path needs an agent that succeeds. OGBench's own scripted cube oracle solves task 2 once it is told where
# the cube must go (the single-task environment keeps the goal observation in `info['goal']`; the cube's position is
# observation entries 19-21, scaled as chapter 2 showed). Its actions, replayed open-loop through `run_episodes` on the
# same environment seeds, must succeed in exactly as many steps: this checks the seeding of each episode, the episode's
# end at the goal, and that success is read at the final step.

# %%
def oracle_episode(seed: int):
    "OGBench's cube oracle on task 2: its actions and whether it succeeded."
    from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    env = _make_env('cube-single-singletask-task2-v0'); ob, info = env.reset(seed=seed); goal = info['goal']
    told = lambda info: info | {'privileged/target_block': 0, 'privileged/target_block_pos': goal[19:22] / 10 + np.array([0.425, 0, 0]),
                                'privileged/target_block_yaw': info['privileged/block_0_yaw']}
    oracle = CubeMarkovOracle(env=env.unwrapped, min_norm=0.4); oracle.reset(ob, told(info))
    actions, done = [], False
    while not done:
        actions.append(np.clip(oracle.select_action(ob, told(info)), -1, 1))
        ob, _, term, trunc, info = env.step(actions[-1]); done = term or trunc
    env.close()
    return np.array(actions), bool(info['success'])

plans = [oracle_episode(s) for s in (7, 8)]
test_eq([ok for _, ok in plans], [True, True])
queue = [a for acts, _ in plans for a in acts]                  # one env (workers=1): episode 7, then episode 8
res = run_episodes(lambda obs: queue.pop(0)[None], 'cube-single-singletask-task2-v0', episodes=2, workers=1, seed=7)
test_eq((res['success'], res['lengths'], len(queue)), (1.0, [len(a) for a, _ in plans], 0))


# %% [markdown]
# ## Evaluating an agent
#
# `evaluate` wraps an agent (chapter 8) and its observation normaliser (chapter 2a): numpy observations → normalised
# tensors on the agent's device → `agent.act` (N_test candidates, argmax Q) → numpy chunks. The noise generator is
# seeded so an evaluation is reproducible.

# %%
#| export
def eval_venv(env_name: str, episodes: int, workers: int | None = None):
    "The parallel envs `evaluate` runs `env_name`'s episodes in; keep one open to reuse across evaluations (`venv=`)."
    return vector_env(eval_env_name(env_name), episodes, workers)

def evaluate(agent, normalizer: ObsNormalizer, env_name: str, episodes: int = 15, workers: int | None = None,
             seed: int = 0, replan_every: int = 1, progress: bool = False, venv=None, noise_seed: int | None = None) -> dict:
    """OGBench single-task evaluation of a MAC agent: success rate over `episodes` (final-step success), start states from env
    seeds `seed, seed + 1, …`, policy noise from `noise_seed` (default `seed`).
    `venv`: an open `eval_venv` of the same size to run them in (the episodes are the same: every round resets with its seeds)."""
    from importlib import metadata
    dev = agent.device
    g = torch.Generator(dev).manual_seed(seed if noise_seed is None else noise_seed)
    def act(obs):
        with torch.no_grad():
            return agent.act(normalizer(torch.as_tensor(obs, dtype=torch.float32, device=dev)), g).cpu().numpy()
    res = run_episodes(act, eval_env_name(env_name), episodes, workers, seed, replan_every, agent.action_dim, progress, venv=venv)
    return res | dict(env=eval_env_name(env_name), ogbench=metadata.version('ogbench'),
                      protocol=f"final-step info['success'], {episodes} episodes, re-plan every {replan_every} step(s)")


# %%
agent = MACAgent(28, 5, MACConfig(actor_hidden=(16,), value_hidden=(16,), dynamics_hidden=(16,)), device='cpu')
norm = ObsNormalizer(torch.zeros(28), torch.ones(28))
res = evaluate(agent, norm, 'cube-single-play-singletask-task2-v0', episodes=2, workers=2)
test_eq((res['episodes'], len(res['successes']), res['protocol']), (2, 2, "final-step info['success'], 2 episodes, re-plan every 1 step(s)"))
# One set of env processes can serve several evaluations (`venv=`): each sees the episodes fresh envs would show.
def observed(venv=None):
    log = []
    act = lambda obs: (log.append(np.array(obs)), np.tanh(np.asarray(obs)[:, :5].repeat(10, 1)))[1]   # a fixed policy that remembers what it saw
    run_episodes(act, 'cube-single-singletask-task2-v0', 3, 2, seed=5, replan_every=10, venv=venv,
                 env_kwargs=None if venv else dict(max_episode_steps=30))
    return np.concatenate(log)
fresh = observed()
venv = vector_env('cube-single-singletask-task2-v0', 3, 2, max_episode_steps=30)
try: again = [observed(venv) for _ in range(2)]
finally: venv.close()
for o in again: assert np.array_equal(o, fresh)
# Start states and policy noise have their own seeds: `noise_seed` reaches the generator every action is drawn with.
seen, act0 = [], agent.act
agent.act = lambda obs, g: (seen.append(g.initial_seed()), act0(obs, g))[1]
v = vector_env('cube-single-singletask-task2-v0', 1, 1, max_episode_steps=3)
try:
    evaluate(agent, norm, 'cube-single-play-singletask-task2-v0', 1, 1, seed=3, venv=v)
    evaluate(agent, norm, 'cube-single-play-singletask-task2-v0', 1, 1, seed=3, venv=v, noise_seed=7)
finally: v.close(); agent.act = act0
test_eq(sorted(set(seen)), [3, 7])
print({k: res[k] for k in ('success', 'lengths', 'protocol', 'wall_s')})


# %% [markdown]
# ## How sure is a success rate?
#
# k successes in n episodes estimate the success probability p, and with 15 or 50 episodes the estimate is rough.
# Every table here gives a 95% **Wilson score interval**: the set of p for which k/n lies within z = 1.96 standard
# errors of p, the standard error taken at p itself,
#
# |k/n − p| ≤ z √(p(1 − p)/n).
#
# Squaring gives a quadratic in p whose two roots are the interval's ends,
# p = (k/n + z²/2n ± z √(k/n (1 − k/n)/n + z²/4n²)) / (1 + z²/n). Unlike k/n ± z √(k/n(1 − k/n)/n), it stays inside
# [0, 1] and is not a single point at 0 or 15 successes out of 15.

# %%
#| export
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    "95% Wilson score interval (z = 1.96) of a success probability from k successes in n episodes."
    if n <= 0 or not 0 <= k <= n: raise ValueError(f'wilson needs 0 <= k <= n and n > 0, got k={k}, n={n}')
    p, den = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / den, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


# %%
# Independent check: scan p on a fine grid and keep the p that satisfy the defining inequality.
grid = np.linspace(0, 1, 200_001)
for k, n in [(0, 15), (7, 15), (15, 15), (40, 50), (106, 150)]:
    inside = grid[np.abs(k / n - grid) <= 1.96 * np.sqrt(grid * (1 - grid) / n)]
    test_close(wilson(k, n), (inside.min(), inside.max()), eps=1e-4)
test_close(wilson(0, 15)[1], 0.2039, eps=1e-4)          # 0 of 15 does not rule out a 20% agent
test_fail(lambda: wilson(3, 0), contains='n > 0')


# %% [markdown]
# ## Videos and plots
#
# A video of one episode (headless MuJoCo rendering, ~0.1 s a frame on a CPU), saved as an animated GIF with Pillow
# (a matplotlib dependency, so no extra install); and a plot of success against training steps from the
# training log (chapter 10 writes `eval.csv`).

# %%
#| export
def record_video(act_fn, env_name: str, path, seed: int = 0, max_steps: int | None = None, every: int = 2, size: int = 200) -> dict:
    "Render one episode (every `every`-th frame) to an animated GIF at `path`; returns its success and length."
    from PIL import Image
    env = _make_env(env_name, render_mode='rgb_array', width=size, height=size)
    obs, _ = env.reset(seed=seed); frames, t, info, done = [], 0, {}, False
    limit = max_steps or env.spec.max_episode_steps
    while not done and t < limit:
        if t % every == 0: frames.append(Image.fromarray(env.render()))
        obs, _, term, trunc, info = env.step(np.clip(np.asarray(act_fn(obs[None]))[0, :env.action_space.shape[0]], -1, 1))
        done, t = term or trunc, t + 1
    env.close()
    atomic_write(path, lambda p: frames[0].save(p, format='GIF', save_all=True, append_images=frames[1:], duration=40 * every, loop=0))
    return dict(success=float(info.get('success', 0.0)), length=t, frames=len(frames))

def plot_success(eval_csv, path=None, title: str = 'Success rate during training'):
    "Success rate against gradient steps from an eval.csv (columns step, success); saved to `path` if given."
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(open(eval_csv)))
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot([int(r['step']) for r in rows], [100 * float(r['success']) for r in rows], 'o-')
    ax.set(xlabel='gradient steps', ylabel='success (%)', ylim=(-3, 103), title=title); fig.tight_layout()
    if path: atomic_write(path, lambda p: fig.savefig(p, format='png'))
    return fig


# %%
with tempfile.TemporaryDirectory() as d:
    v = record_video(still, 'cube-single-singletask-task2-v0', Path(d) / 'ep.gif', max_steps=6, every=2, size=64)
    test_eq((v['length'], v['frames']), (6, 3)); assert (Path(d) / 'ep.gif').read_bytes()[:3] == b'GIF'
    real = Path('../results/cpu_variants/preset_seed1/eval.csv')       # a committed run of chapter 10 (cpu preset, seed 1)
    fig = plot_success(real, Path(d) / 's.png', title='cpu preset, seed 1 (results/cpu_variants/preset_seed1)')
    test_eq(list(fig.axes[0].lines[0].get_ydata()), [100 * float(r['success']) for r in csv.DictReader(open(real))])

# %% [markdown]
# ## Implementation details
#
# 1. Success is the final step's `info['success']` (official `evaluation.py`), 15 episodes per task by default.
# 2. Re-planning every step with the chunk's first action is the default (official `action_chunking_test = 1`); the
#    paper does not say which it used.
# 3. Episodes are seeded `seed, seed + 1, …` through the vector env's reset; the policy noise has its own generator.
# 4. No evaluation at step 0 and the official code's extra (uncounted) video episode is optional here (`record_video`).

# %%
#| hide
import nbdev; nbdev.nbdev_export()
