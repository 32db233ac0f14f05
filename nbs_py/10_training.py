# %% [markdown]
# # Training
# > The training run: the loop with progress, logs, evaluation and checkpoints, exact resume, and the `mac_train` command.

# %% [markdown]
# The run's configuration (`TrainConfig`, the presets `paper`, `cpu`, `gc`, `gc-puzzle-4x5`, `gc-cpu` and `tiny`,
# `make_config`) is [chapter 9a](09a_config.ipynb) (`mac.config`): a module of its own, so that tools which only need a
# config, such as the benchmark of chapter 11, do not import the training loop. One `Trainer` runs both settings: a
# single-task dataset name (`…-singletask-task2-v0`) trains the reward-based agent on chapter 2a's batches and evaluates
# it on its task (chapter 9); a goal-conditioned one (`…-oraclerep-v0`) trains the agent with goals on chapter 9b's
# batches and evaluates it on the environment's five goals.

# %%
#| default_exp train

# %%
#| export
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import tyro
from fastcore.basics import patch
from tqdm import tqdm

from mac.agent import MACAgent, bf16
from mac.config import ConfigFlags, PresetName, TrainConfig, config_from_dict, config_to_dict, flag_overrides, make_config
from mac.core import EXIT_DIVERGED, EXIT_USAGE, append_csv, atomic_write, get_device, provenance, run_cli, seed_everything, write_json
from mac.batches import ChunkDataset, ObsNormalizer
from mac.data import DatasetError, dataset_paths, ensure_dataset, load_ogbench, parse_name
from mac.evaluate import env_count, eval_env_name, eval_venv, plot_success
from mac.goals import evaluate_goals, goal_data, goal_eval_venv
from mac.evaluate import evaluate as evaluate_agent   # `evaluate` is also the name of a Trainer method

# %%
#| hide
import csv
from fastcore.test import test_eq, test_close, test_fail
import tempfile, shutil, subprocess, sys
import warnings; warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')


# %% [markdown]
# ## Checkpoints
#
# A checkpoint holds everything needed to continue *exactly*: every network (the target network included), the
# optimiser, the step, every RNG state (the training generator that draws batches and all noise, torch's, NumPy's,
# Python's), the observation-normalisation statistics, and the config. It is written atomically and contains only
# tensors and plain Python values, so `torch.load(..., weights_only=True)` reads it.

# %%
#| export
def _rng_state(gen: torch.Generator) -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return dict(gen=gen.get_state(), torch=torch.get_rng_state(), numpy_keys=torch.as_tensor(keys.astype(np.int64)),
                numpy_rest=[kind, int(pos), int(has_gauss), float(cached)], python=list(random.getstate()),
                cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

def _set_rng_state(gen: torch.Generator, s: dict):
    gen.set_state(s['gen']); torch.set_rng_state(s['torch'])
    kind, pos, has_gauss, cached = s['numpy_rest']
    np.random.set_state((kind, s['numpy_keys'].numpy().astype(np.uint32), pos, has_gauss, cached))
    v, state, gauss = s['python']; random.setstate((v, tuple(state), gauss))
    if s['cuda'] and torch.cuda.is_available(): torch.cuda.set_rng_state_all(s['cuda'])


# %% [markdown]
# Writing one: the run's state, its config as JSON, and its clock (the wall time so far and the step it counts from,
# item 9 below), replaced atomically so that a crash mid-write leaves the previous checkpoint:

# %%
#| export
def save_checkpoint(path, step: int, cfg: TrainConfig, agent: MACAgent, norm: ObsNormalizer, gen: torch.Generator,
                    goal_norm: ObsNormalizer | None = None, *, elapsed: tuple[float, int]):
    """Atomically write everything needed to resume exactly (loadable with weights_only=True); `elapsed` is the run's
    wall time so far and the step it is counted from, so that a resumed run's clock goes on where it stopped."""
    obj = dict(format=1, step=step, elapsed_s=float(elapsed[0]), elapsed_from=int(elapsed[1]), config=json.dumps(config_to_dict(cfg)), env=cfg.env, obs_dim=agent.obs_dim,
               action_dim=agent.action_dim, goal_dim=agent.goal_dim, agent=agent.state_dict(), opt=agent.opt.state_dict(),
               normalizer=norm.state_dict(), rng=_rng_state(gen), **({'goal_normalizer': goal_norm.state_dict()} if goal_norm else {}))
    atomic_write(path, lambda p: torch.save(obj, p))


# %% [markdown]
# Reading one fails with the file's name and what is wrong with it (missing, unreadable, not a `mac` checkpoint), and
# `load_agent` rebuilds a trained agent from it for evaluation or diagnosis, without a `Trainer`:

# %%
#| export
class CheckpointError(ValueError):
    "A checkpoint that is missing, unreadable or does not fit the run."

def load_checkpoint(path, device=None) -> dict:
    "Read a checkpoint (weights_only); fails clearly on a missing or unreadable file."
    path = Path(path)
    if not path.exists(): raise CheckpointError(f'no checkpoint at {path}: nothing to resume (start without --resume)')
    try: ck = torch.load(path, map_location=get_device(device), weights_only=True)
    except Exception as e: raise CheckpointError(f'{path} is not a readable mac checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})') from None
    missing = {'step', 'config', 'obs_dim', 'agent', 'normalizer'} - set(ck if isinstance(ck, dict) else ())
    if missing: raise CheckpointError(f'{path} is not a mac checkpoint (missing {", ".join(sorted(missing))})')
    return ck

def load_agent(path, device='cpu', **agent_overrides):
    """A trained agent, read-only (no Trainer, no run-folder lock): `path` is a run folder or a checkpoint file;
    `agent_overrides` change test-time settings such as `n_test`. Returns (agent, normaliser, config, checkpoint)
    (goal-conditioned runs: the goal normaliser is `ObsNormalizer.from_state_dict(checkpoint['goal_normalizer'])`)."""
    p = Path(path); ck = load_checkpoint(p / 'checkpoint.pt' if p.is_dir() else p, device)
    cfg = config_from_dict(json.loads(ck['config']))
    agent = MACAgent(ck['obs_dim'], ck['action_dim'], dataclasses.replace(cfg.agent, **agent_overrides), device, ck.get('goal_dim', 0))
    agent.load_state_dict(ck['agent'])
    return agent, ObsNormalizer.from_state_dict(ck['normalizer'], device), cfg, ck


# %% [markdown]
# ## The loop
#
# `Trainer` prepares the data (generating the dataset if it is missing), builds the agent and runs the loop: sample a
# chunk batch, `agent.update`, and every `log_every` steps one host synchronisation that checks all losses are finite
# and writes a row of `log.csv` (and TensorBoard, when installed). Evaluations go to `eval.csv` and `success.png`;
# checkpoints to `checkpoint.pt`. A non-finite loss stops the run with the loss's name, *before* anything is saved,
# so the last checkpoint on disk is the last good one.

# %% [markdown]
# A run folder belongs to one training at a time. Checking for `checkpoint.pt` is not enough: two runs started
# together both find none, and until the first checkpoint both write the same log. So the `Trainer` takes an
# exclusive lock on `<run>/.lock` (a `flock`, which the kernel drops when the process exits, so a crashed run leaves a
# file with its last holder's name but no lock) and a second training into the same folder fails at once, naming the
# holder. One process may open the same folder again (a resume after a run, as below).

# %%
#| export
class RunFolderBusy(RuntimeError):
    "Another process is training into this run folder."

_LOCKS: dict = {}   # run folder → [file descriptor, how many Trainers of this process hold it]

def lock_run_dir(run_dir) -> Path:
    "Take the run folder's exclusive lock (re-entrant within a process); `RunFolderBusy` names the other holder."
    d = Path(run_dir).resolve()
    if d in _LOCKS: _LOCKS[d][1] += 1; return d
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / '.lock', os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e: raise ValueError(f'cannot write the run folder {d} ({e.strerror or e}): choose another --out') from None
    try: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors='replace').strip() or 'unknown'; os.close(fd)
        raise RunFolderBusy(f'{d} is in use by another training ({holder}): wait for it to end, or choose another --out') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(dict(pid=os.getpid(), host=os.uname().nodename, since=time.strftime('%Y-%m-%dT%H:%M:%S%z'))).encode(), 0)
    _LOCKS[d] = [fd, 1]
    return d

def unlock_run_dir(run_dir):
    "Release one hold of the run folder's lock; the last release drops it (the `.lock` file stays, unlocked)."
    d = Path(run_dir).resolve()
    if d not in _LOCKS: return
    _LOCKS[d][1] -= 1
    if _LOCKS[d][1] == 0: fcntl.flock(_LOCKS[d][0], fcntl.LOCK_UN); os.close(_LOCKS.pop(d)[0])


# %% [markdown]
# The whole step as one CUDA graph (`cuda_graph`, CUDA only). On a GPU a MAC update is a few hundred small kernels,
# and launching them costs more than running them (chapter 11 measures it). A CUDA graph records the kernels of one step
# once and replays them with one launch. It records addresses, not Python, so the step must have static shapes, no
# host synchronisation, and random numbers from a generator the graph knows: the training step draws its batch indices
# and every noise draw from the global RNG (`graph_safe`), whose seed and offset each replay reads and advances, so each
# replay draws fresh numbers, the same ones an eager step would draw from the same RNG state. The first calls run eagerly on a side stream
# (autograd, cuBLAS and Adam allocate their state there, as PyTorch's whole-network capture recipe asks); gradients
# are set to `None` before the capture, so backward allocates them from the graph's own memory; Adam is
# `capturable` on CUDA (chapter 8), so its step counter lives on the device too.
#
# Several independent runs (K agents, e.g. seeds) can share one graph: given a list of step functions, `CudaGraphStep`
# forks one stream per function inside the capture, so the graph holds K parallel branches that the GPU may run side by
# side, filling the multiprocessors that one small step leaves idle. Each branch is that run's own step, so it computes
# what the run alone would. A branch may draw from its run's own `torch.Generator` once the generator is registered with
# the graph (`generators`): the graph then reads and advances that generator's state on every replay. (The one-branch
# graph was checked on an H100 against eager, exactly; the K-branch graph and its registered generators have not run on
# a GPU yet: `tools/gpu_check.sh`, stage `many`, and the GPU-only tests in tests/test_train.py check them.)

# %%
#| export
class CudaGraphStep:
    """`fn()` (static shapes, no host sync, noise from the global RNG or from `generators`) as one CUDA graph: `warmup`
    eager calls on a side stream, then one capture, then replays. Every call is one real step; it returns fn's outputs,
    which the next call overwrites. A list of functions (independent runs: K agents) becomes one graph with one
    parallel branch per function, each on its own stream, and the call returns the list of their outputs."""
    def __init__(self, fn, warmup: int = 3, before_capture=None, generators=()):
        if warmup < 1: raise ValueError(f'warmup must be >= 1 (got {warmup}): Adam and autograd create their state in the first eager calls, not in the graph')
        self.fns, self.many = (list(fn), True) if isinstance(fn, (list, tuple)) else ([fn], False)
        self.warmup, self.before_capture, self.generators = warmup, before_capture, [g for g in generators if g is not None]
        self.calls, self.graph, self.out, self.streams = 0, None, None, [torch.cuda.Stream() for _ in self.fns]

    def _branches(self):
        "Each function on its own stream, forked from and joined back into the current one (a capture records the fork)."
        main, outs = torch.cuda.current_stream(), []
        for s, fn in zip(self.streams, self.fns):
            s.wait_stream(main)
            with torch.cuda.stream(s): outs.append(fn())
        for s in self.streams: main.wait_stream(s)
        return outs

    def __call__(self):
        self.calls += 1
        if self.graph is not None: self.graph.replay(); return self.out
        if self.calls <= self.warmup: outs = self._branches(); return outs if self.many else outs[0]
        if self.before_capture: self.before_capture()
        torch.cuda.synchronize(); graph = torch.cuda.CUDAGraph()
        for g in self.generators: graph.register_generator_state(g)   # a run's own torch.Generator, replayable too
        with torch.cuda.graph(graph):                                 # recorded, not run
            self.out = self._branches() if self.many else self.fns[0]()
        self.graph = graph; graph.replay(); return self.out


# %% [markdown]
# The `Trainer` below holds one run. Three names come first: the error a non-finite loss raises, the keys a resume may
# change (evaluation and bookkeeping only; anything else would make the resumed run a different run), and the first env
# seed of the final evaluation, which the training evaluations' seeds must stay below.

# %%
#| export
class NonFiniteLoss(RuntimeError):
    "A loss became NaN or infinite; the message names it and where the last good checkpoint is."

_RESUMABLE = {'steps', 'eval_every', 'eval_episodes', 'eval_workers', 'log_every', 'ckpt_every', 'device', 'dataset_dir', 'compile', 'cuda_graph',
              'final_episodes', 'replan_every'}   # evaluation and bookkeeping only: a resume may change them
FINAL_EVAL_SEED = 1_000_000_000   # the final evaluation's env seeds start here; training evaluations use seed + step + i below it


# %% [markdown]
# The `Trainer` takes its folder's lock before it looks at the folder, and gives it back when it is closed, when it
# fails to set up, or when it is garbage-collected.

# %%
#| export
class Trainer:
    "One training run in `run_dir`: data, agent, loop, logs, evaluations and checkpoints."
    def __init__(self, cfg: TrainConfig, run_dir, resume: bool = False, progress: bool = True):
        self.dir, self.progress, self.device = Path(run_dir), progress, get_device(cfg.device)
        self.ckpt_path = self.dir / 'checkpoint.pt'
        lock_run_dir(self.dir); self._closed = False   # before looking at the folder: the check below and the run's writes are then ours alone
        try: self._setup(cfg, resume)
        except BaseException: self._closed = True; unlock_run_dir(self.dir); raise

    def close(self):
        "Close the evaluation envs and release the run folder (also when the Trainer is garbage-collected, and at exit: the kernel drops a dead process's lock)."
        try: self._close_envs()
        finally:
            if not getattr(self, '_closed', True): self._closed = True; unlock_run_dir(self.dir)

    def _close_envs(self):
        "Close the evaluation env processes; workers that already died (Ctrl-C reaches them too) are terminated instead."
        v, self._venv = getattr(self, '_venv', None), None
        if v is None: return
        try: v.close()
        except Exception: v.close(terminate=True)

    def __del__(self):
        try: self.close()
        except Exception: pass   # at interpreter exit the module may be gone; the kernel drops the lock anyway


# %% [markdown]
# Setting up is four steps, each a method below: read the checkpoint when resuming, refuse settings that cannot work,
# load the data, build the agent.

# %%
#| export
@patch
def _setup(self: Trainer, cfg, resume):
    "Check the run against its folder and config, then load the data and build (or restore) the agent."
    spec = parse_name(cfg.env)
    if not (spec.singletask or spec.oraclerep):
        raise DatasetError(f'{cfg.env!r}: MAC trains on single-task datasets ({spec.env}-play-singletask-task2-v0) or goal-conditioned '
                           f'ones with oracle goals ({spec.env}-play-oraclerep-v0)')
    self.goal_conditioned = spec.oraclerep
    ck = self._saved_run(cfg) if resume else None
    if not resume and self.ckpt_path.exists():
        raise FileExistsError(f'{self.dir} already holds a run (checkpoint.pt): pass --resume to continue it, or choose another --out')
    self._check_config(cfg); self.cfg = cfg
    self._load_data(cfg, spec, ck)
    self._build(cfg, ck)


# %% [markdown]
# A resume must be the same run: the same env, and the same config except for `_RESUMABLE`'s keys.

# %%
#| export
@patch
def _saved_run(self: Trainer, cfg) -> dict:
    "The checkpoint to resume from, refused when it is of another env or its config differs from `cfg` outside `_RESUMABLE`."
    ck = load_checkpoint(self.ckpt_path, self.device)
    saved = config_from_dict(json.loads(ck['config']))
    if saved.env != cfg.env: raise ValueError(f'the checkpoint in {self.dir} is from {saved.env}, not {cfg.env}: resume with --env {saved.env}')
    diff = [k for k, v in config_to_dict(cfg).items() if k not in _RESUMABLE and config_to_dict(saved)[k] != v]
    if diff: raise ValueError(f'cannot resume with a different {", ".join(diff)} (saved: {", ".join(f"{k}={config_to_dict(saved)[k]}" for k in diff)})')
    return ck


# %% [markdown]
# Settings that cannot work fail here, before the dataset is read or generated and before `config.json` is written.

# %%
#| export
@patch
def _check_config(self: Trainer, cfg):
    "Refuse settings that cannot work: evaluation seeds reaching the final evaluation's, a CUDA graph without its conditions, goal-only keys."
    if cfg.eval_episodes and cfg.seed + cfg.steps + cfg.eval_episodes > FINAL_EVAL_SEED:
        raise ValueError(f'seed + steps must stay below {FINAL_EVAL_SEED:,}: training evaluations (seeds seed + step + i) would reach the final evaluation\'s')
    if cfg.cuda_graph:
        why = ('it needs graph_safe=True too (pass --graph-safe True: the training graph draws batches and noise from the global RNG)'
               if not cfg.graph_safe else _why_no_graph(self.device, cfg.compile, self.goal_conditioned))
        if why: raise ValueError(f'cuda_graph: {why}')
        torch.cuda.set_device(self.device)   # the graph's streams and capture use the current device
    for k, plain in (('dataset_path', ''), ('cache_floats', 'float32')):
        if getattr(cfg, k) != plain and not self.goal_conditioned:
            raise ValueError(f"config key {k!r} is for goal-conditioned runs (*-oraclerep-v0); {cfg.env} reads dataset_dir's file as it is")


# %% [markdown]
# Single-task data is one OGBench file held in memory (chapters 2 and 2a); goal-conditioned data is the on-disk cache of
# chapter 2b, read by chapter 9b's sampler. On a resume the normalisers come from the checkpoint, not from the data, so
# that the resumed agent sees its inputs scaled as before.

# %%
#| export
@patch
def _load_data(self: Trainer, cfg, spec, ck):
    "The chunk batches and normalisers (restored from `ck` on a resume); a missing dataset is generated first."
    self.dataset_info = (dict(file=str(Path(cfg.dataset_path).expanduser())) if cfg.dataset_path else
                         ensure_dataset(spec.dataset, cfg.dataset_episodes, cfg.dataset_dir, workers=os.cpu_count() or 1, progress=self.progress))
    if self.goal_conditioned: self._goal_data(cfg, spec, ck)
    else:
        _, train, val = load_ogbench(cfg.env, cfg.dataset_dir)
        self.norm = ObsNormalizer.from_state_dict(ck['normalizer'], self.device) if ck else ObsNormalizer.from_data(val['observations'], device=self.device)
        self.data, self.goal_norm = ChunkDataset.from_ogbench(train, self.norm, ret=cfg.chunk_return, device=self.device), None
    if ck and ck['obs_dim'] != self.data.obs_dim:
        raise CheckpointError(f'the checkpoint expects observations of size {ck["obs_dim"]}, the dataset has {self.data.obs_dim}: '
                              f'resume on the dataset the run was trained on')


# %% [markdown]
# Goal-conditioned runs read their files through chapter 2b's cache (built once, beside them) and chapter 9b's sampler;
# on a resume both normalisers (observations and goals) come from the checkpoint.

# %%
#| export
@patch
def _goal_data(self: Trainer, cfg, spec, ck):
    "Goal-conditioned batches (chapter 9b) over the train file (or `dataset_path`'s files), cached once beside them; normalisers from the first -val twin."
    src = Path(cfg.dataset_path).expanduser() if cfg.dataset_path else dataset_paths(spec.dataset, cfg.dataset_dir)[0]
    norms = (ObsNormalizer.from_state_dict(ck['normalizer'], self.device), ObsNormalizer.from_state_dict(ck['goal_normalizer'], self.device)) if ck else None
    self.data = goal_data(spec.env, src, cfg.agent.n, cfg.agent.gamma, device=self.device,
                          norms=norms, progress=self.progress, floats=cfg.cache_floats)
    self.norm, self.goal_norm = self.data.obs_norm, self.data.goal_norm
    if self.progress and (cfg.terminals or cfg.reward_agg != 'sum' or cfg.pretrain_steps):   # pretrain_steps does apply; say so
        tqdm.write(f"goal-conditioned: the chunk reward is success − 1 (chapter 9b), so reward_agg={cfg.reward_agg!r} and "
                   f"terminals={cfg.terminals} are not used{f'; pretrain_steps={cfg.pretrain_steps} is' if cfg.pretrain_steps else ''}")


# %% [markdown]
# The agent is built from the seeded RNG, then, on a resume, overwritten by the checkpoint, generator state included:
# that is what makes a resume exact.

# %%
#| export
@patch
def _build(self: Trainer, cfg, ck):
    "The agent and its generator; on a resume, the checkpoint's weights, optimiser, RNG, step and clock."
    seed_everything(cfg.seed)
    self.agent = MACAgent(self.data.obs_dim, self.data.action_dim, cfg.agent, self.device, getattr(self.data, 'goal_dim', 0))
    self.gen = torch.Generator(self.device).manual_seed(cfg.seed)
    self._losses = torch.compile(self.agent.losses, fullgraph=cfg.graph_safe) if cfg.compile else None  # compiled on the first step
    if cfg.bf16: self._losses = bf16(self._losses or self.agent.losses)
    if cfg.compile: self._compiled_ok = None   # None: not tried yet; then True (compiled) or False (fell back to eager)
    self.step, self._ckpt_step, self._graphs, self._venv = 0, None, {}, None
    if ck:
        self.agent.load_state_dict(ck['agent']); self.agent.opt.load_state_dict(ck['opt'])
        _set_rng_state(self.gen, ck['rng']); self.step = self._ckpt_step = ck['step']
    # the run's clock: wall time of training and evaluation summed over its processes up to the checkpoint; a checkpoint
    # older than this record has no time, and the clock counts from its step
    self.resumed_from = ck['step'] if ck else None
    self._elapsed0, self._elapsed_from = (float(ck['elapsed_s']), int(ck['elapsed_from'])) if ck and 'elapsed_s' in ck else (0.0, ck['step'] if ck else 0)
    self.dir.mkdir(parents=True, exist_ok=True)
    write_json(self.dir / 'config.json', config_to_dict(cfg))


# %% [markdown]
# One update: the batch goes to `agent.update` (chapter 8); for the first `pretrain_steps` steps the value and critic
# get no gradient. With `compile`, the losses are compiled on the first update; if that fails (no C compiler, say), the
# run says why and carries on eagerly.

# %%
#| export
def _update(self: Trainer, batch) -> dict:
    "One agent update, with the compiled losses when `compile` is on; if compiling fails (no C compiler, say), warn and go on eagerly."
    values = self.step >= self.cfg.pretrain_steps          # the first pretrain_steps train models and policies only
    gen = None if self.cfg.graph_safe else self.gen       # graph_safe: noise from the global RNG (a torch.Generator breaks the graph)
    if getattr(self, '_compiled_ok', False) is not None: return self.agent.update(batch, gen, self._losses, values)
    try: out = self.agent.update(batch, gen, self._losses, values); self._compiled_ok = True; return out
    except Exception as e:
        tqdm.write(f'torch.compile failed ({type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ""}); training eagerly instead')
        self._losses, self._compiled_ok = (bf16(self.agent.losses) if self.cfg.bf16 else None), False   # decided once: later errors are errors
        return self.agent.update(batch, gen, self._losses, values)


# %% [markdown]
# A step draws a batch and updates. With `cuda_graph` both are inside the graph, one graph per phase (pretraining, then
# full updates), made on first use.

# %%
#| export
def _why_no_graph(device, compiled: bool, goal_conditioned: bool) -> str | None:
    "Why a training step cannot be one CUDA graph here, or None."
    return ('it replaces compile: pass one of them' if compiled else
            'goal-conditioned batches come from the on-disk cache, outside the graph: leave it off' if goal_conditioned else
            f'it needs a CUDA device, and this run is on {device} (pass --device cuda, or leave it off)' if device.type != 'cuda' else None)

def _phase_graph(graphs: dict, values: bool, make_fns, agents, generators=()):
    "One step of the current phase (pretraining: values False; full updates: True), from that phase's graph, made on first use."
    if values not in graphs:
        if values: graphs.pop(False, None)                 # the pretraining graph (and its memory) is done with
        graphs[values] = CudaGraphStep(make_fns(values), before_capture=lambda: [a.opt.zero_grad(set_to_none=True) for a in agents],
                                       generators=generators)
    return graphs[values]()

def _step(self: Trainer) -> dict:
    "One training step: a batch, then `_update`. graph_safe: the batch from the global RNG too; cuda_graph: both replayed from one graph per phase."
    cfg = self.cfg
    if not cfg.cuda_graph: return _update(self, self.data.sample(cfg.batch, None if cfg.graph_safe else self.gen))
    return _phase_graph(self._graphs, self.step >= cfg.pretrain_steps,
                        lambda v: lambda: self.agent.update(self.data.sample(cfg.batch), None, self._losses, v), [self.agent])


# %% [markdown]
# The loop itself is three lines: start, step until `cfg.steps`, finish. A run stopped by an error or Ctrl-C closes what
# it opened and leaves the last checkpoint as it was. At the start, `log.csv` and `eval.csv` lose any rows past the
# checkpoint (an earlier process may have logged steps that the resumed run will now take again).

# %%
#| export
def _tensorboard(run_dir):
    try:
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(str(run_dir / 'tb'))
    except Exception: return None  # tensorboard not installed: CSV only

@patch
def run(self: Trainer) -> dict:
    "Train to `cfg.steps`, logging, evaluating and checkpointing; returns the last logged losses and evaluation."
    self._start()
    try:
        while self.step < self.cfg.steps: self._after_step(_step(self))
    except BaseException: self._abort(); raise
    return self._finish()

@patch
def _abort(self: Trainer):
    "A run stopped by an error or Ctrl-C: close its bar, TensorBoard writer and evaluation envs (the checkpoint on disk stays the last good one)."
    self._bar.close()
    if self._tb: self._tb.close()
    self._close_envs()

@patch
def _start(self: Trainer):
    "Before the first step of `run` (or of `train_many`): logs and final evaluation truncated to the checkpoint, the progress bar, the clock."
    for name in ('log.csv', 'eval.csv'): append_csv(self.dir / name, keep_until=self.step)  # resumed: forget rows after the checkpoint
    fin = self.dir / 'final_eval.json'      # and a final evaluation past it (an earlier run's in this folder, made by other weights)
    if fin.exists() and json.loads(fin.read_text()).get('step', 0) > self.step: fin.unlink()
    self._tb, self._bad, self._last, self._last_eval = _tensorboard(self.dir), {}, {}, None
    self._t0, self._s0 = time.time(), self.step            # this process's clock; `elapsed` adds the run's earlier time
    self._bar = tqdm(total=self.cfg.steps, initial=self.step, desc='MAC', disable=not self.progress, mininterval=2, dynamic_ncols=True)
    if self.cfg.compile and self.progress: tqdm.write('compiling the losses with torch.compile (once per process; about a minute on a CPU)')


# %% [markdown]
# After each step: the NaN check and the log row. The check keeps a running flag per loss on the device and reads it
# once per log interval, so the loop has one host synchronisation per `log_every` steps, not one per step.

# %%
#| export
@patch
def _after_step(self: Trainer, out: dict):
    "After one update with outputs `out`: NaN bookkeeping and the log row, then the evaluation and checkpoint when they are due."
    self._record(out); self._evaluate_due(); self._save_due()

@patch
def _record(self: Trainer, out: dict):
    "Count the step; NaN bookkeeping (one host sync per log interval) and the log row when due."
    cfg, bad = self.cfg, self._bad
    for k, v in out.items(): bad[k] = bad[k] | ~torch.isfinite(v) if k in bad else ~torch.isfinite(v)  # on the device: no sync
    self.step += 1; self._bar.update(1)
    end = self.step == cfg.steps
    if self.step % cfg.log_every == 0 or self.step % cfg.ckpt_every == 0 or end:
        if torch.stack(list(bad.values())).any():          # one host sync per log interval
            names = [k for k, b in bad.items() if b]
            good = (f'{self.ckpt_path} (step {self._ckpt_step}) is the last good checkpoint' if self._ckpt_step is not None
                    else 'no checkpoint was written before it')
            raise NonFiniteLoss(f'loss {", ".join(names)} became NaN/inf before step {self.step}; nothing was saved after it: {good}. '
                                f'--resume would repeat the same steps: check the data, or start a fresh run (another --out) with a lower '
                                f'learning rate, e.g. --agent.lr {cfg.agent.lr / 3:.1e}')
        last = self._last = {k: v.item() for k, v in out.items()}
        sps = (self.step - self._s0) / max(time.time() - self._t0, 1e-9)
        append_csv(self.dir / 'log.csv', dict(step=self.step, time_s=round(self.elapsed(), 1), steps_per_s=round(sps, 2),
                                               **{k: round(v, 6) for k, v in last.items()}))
        if self._tb:
            for k, v in last.items(): self._tb.add_scalar(f'loss/{k}', v, self.step)
        v = last.get('v_mean', float('nan'))           # no value yet during the model/policy-only pretraining steps
        self._bar.set_postfix_str(f"{sps:.1f} it/s flow {last.get('flow', last.get('bc', 0)):.3f} dyn {last['dynamics']:.2e} V {'-' if v != v else f'{v:.1f}'}")


# %% [markdown]
# Evaluations fall due every `eval_every` steps and checkpoints every `ckpt_every`, both also at the last step.

# %%
#| export
@patch
def _evaluate_due(self: Trainer):
    cfg, end = self.cfg, self.step == self.cfg.steps
    if cfg.eval_episodes and ((cfg.eval_every and self.step % cfg.eval_every == 0) or end):
        self._last_eval = self.evaluate()
        if self._tb: self._tb.add_scalar('eval/success', self._last_eval['success'], self.step)

@patch
def _save_due(self: Trainer):
    cfg = self.cfg
    if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
        save_checkpoint(self.ckpt_path, self.step, cfg, self.agent, self.norm, self.gen, self.goal_norm, elapsed=(self.elapsed(), self._elapsed_from))
        self._ckpt_step = self.step


# %% [markdown]
# The run's clock: training and evaluation time summed over the processes of a run (item 9 below), and the run's end,
# where a complete run gets its final evaluation.

# %%
#| export
WALL_TIME_COVERS = 'training and evaluation, summed over the processes of the run up to its last checkpoint and this one; not setup (data, cache)'

@patch
def elapsed(self: Trainer) -> float:
    "The run's wall time in seconds since step `_elapsed_from` (0 unless it resumed from an older checkpoint), over all its processes."
    return self._elapsed0 + (time.time() - self._t0 if hasattr(self, '_t0') else 0.0)

@patch
def _finish(self: Trainer) -> dict:
    "After the last step: the final evaluation (if the run is complete); the evaluation envs are closed."
    self._bar.close()
    final = self.final_evaluate() if self.cfg.final_episodes and self.step == self.cfg.steps else None
    self._close_envs()                                      # the evaluation env processes are done with
    if self._tb: self._tb.close()
    t = self.elapsed()
    if final and self.step == self._s0: t = final.get('run_wall_time_s', t)   # nothing trained here: the time its final evaluation recorded
    return dict(losses=self._last, eval=self._last_eval, final=final, time=dict(wall_time_s=round(t, 1), wall_time_from_step=self._elapsed_from,
                resumed_from_step=self.resumed_from, wall_time_covers=WALL_TIME_COVERS))


# %% [markdown]
# An evaluation plays the current agent in parallel envs (chapter 9, or chapter 9b's five goals), reusing the env
# processes from one evaluation to the next.

# %%
#| export
@patch
def _evaluate_agent(self: Trainer, episodes: int, seed: int) -> dict:
    """The current agent in its environment: single-task (chapter 9), or `episodes` on each of the five goals (chapter 9b).
    The env processes stay open from one evaluation to the next (starting them took about 10 s of each evaluation on a
    16-core GPU machine); a set of another size replaces them, so each evaluation runs in the envs a fresh set would have."""
    cfg, workers = self.cfg, self.cfg.eval_workers or None
    if self._venv is None or self._venv.num_envs != env_count(episodes, workers):
        self._close_envs()                                     # one set at a time (the final evaluation's may be larger)
        self._venv = (goal_eval_venv if self.goal_conditioned else eval_venv)(cfg.env, episodes, workers)
    if self.goal_conditioned:
        return evaluate_goals(self.agent, self.norm, self.goal_norm, cfg.env, episodes, workers, seed, cfg.actions_per_plan, venv=self._venv)
    return evaluate_agent(self.agent, self.norm, cfg.env, episodes, workers, seed=seed, replan_every=cfg.actions_per_plan, venv=self._venv)


# %% [markdown]
# `evaluate` logs each in-training evaluation to `eval.csv` and redraws `success.png`; `final_evaluate` scores the final
# checkpoint on its own env seeds, from `FINAL_EVAL_SEED` on, and keeps the result, so a second call reads it back.

# %%
#| export
@patch
def evaluate(self: Trainer) -> dict:
    "Evaluate the current agent (cfg.eval_episodes episodes) and log it to eval.csv / success.png."
    cfg = self.cfg
    res = self._evaluate_agent(cfg.eval_episodes, cfg.seed + self.step)
    append_csv(self.dir / 'eval.csv', dict(step=self.step, success=res['success'], episodes=res['episodes'], replan_every=res['replan_every'],
                                            eval_wall_s=res['wall_s'], **{f'task{k}': s for k, s in res.get('per_task', {}).items()}),
               keep_until=self.step - 1)  # re-evaluating a step replaces its row
    plot_success(self.dir / 'eval.csv', self.dir / 'success.png', title=f'MAC on {res["env"] if self.goal_conditioned else eval_env_name(cfg.env)}')
    if self.progress: tqdm.write(f'step {self.step}: success {res["success"]:.0%} over {res["episodes"]} episodes ({res["wall_s"]:.0f}s)')
    return res

@patch
def final_evaluate(self: Trainer) -> dict:
    "The final checkpoint's evaluation: `final_episodes` episodes on env seeds from FINAL_EVAL_SEED, in `final_eval.json` (kept on re-runs)."
    cfg, path = self.cfg, self.dir / 'final_eval.json'
    key = dict(step=self.step, episodes=cfg.final_episodes, seed=FINAL_EVAL_SEED, replan_every=cfg.actions_per_plan)
    old = json.loads(path.read_text()) if path.exists() else {}
    if all(old.get(k) == v for k, v in key.items()): return old
    res = self._evaluate_agent(cfg.final_episodes, FINAL_EVAL_SEED)
    out = key | {k: res[k] for k in ('success', 'successes', 'protocol', 'wall_s', 'per_task') if k in res} | dict(run_wall_time_s=round(self.elapsed(), 1))
    write_json(path, out)
    if self.progress: tqdm.write(f'final evaluation at step {self.step}: success {res["success"]:.0%} over {res["episodes"]} episodes (seeds {FINAL_EVAL_SEED:,}+)')
    return out


# %% [markdown]
# Which env seeds a run's evaluations used, so that a later diagnosis can be made to draw fresh ones.

# %%
#| export
def eval_seeds(cfg: TrainConfig) -> set[int]:
    "Every env seed a run's own evaluations use: seed + step + i at each evaluation while training (every eval_every steps, and the last step), FINAL_EVAL_SEED + i at the end."
    steps = {*range(cfg.eval_every, cfg.steps + 1, cfg.eval_every), cfg.steps} if cfg.eval_every else {cfg.steps}
    used = {cfg.seed + k + i for k in steps for i in range(cfg.eval_episodes)}
    return used | set(range(FINAL_EVAL_SEED, FINAL_EVAL_SEED + cfg.final_episodes))

def check_fresh_seeds(cfg: TrainConfig, seed: int, episodes: int):
    "Refuse env seeds seed … seed + episodes - 1 when the run's own evaluations used one of them: a diagnosis draws fresh episodes."
    if clash := set(range(seed, seed + episodes)) & eval_seeds(cfg):
        raise ValueError(f"env seeds {seed}..{seed + episodes - 1} include {min(clash)}, which the run's own evaluations used: pass another seed")


# %% [markdown]
# ## Checks: a tiny run, exact resume, bad input
#
# A tiny run on a 2-episode generated dataset. Then the resume contract: a run stopped at step k and resumed reaches,
# at step k + m, exactly the weights of an uninterrupted run (CPU, same seed).

# %%
tmp = Path(tempfile.mkdtemp()); data_dir = tmp / 'data'
cfg = make_config('tiny', {'dataset_dir': str(data_dir), 'device': 'cpu'})
tr = Trainer(cfg, tmp / 'full', progress=False); out = tr.run()
assert all(np.isfinite(v) for v in out['losses'].values()), out
test_eq([int(r['step']) for r in csv.DictReader(open(tmp / 'full' / 'log.csv'))], [10, 20, 30, 40])
ck = torch.load(tmp / 'full' / 'checkpoint.pt', weights_only=True)
test_eq((ck['step'], ck['env'], ck['obs_dim']), (40, cfg.env, 28))
test_eq(config_from_dict(json.loads((tmp / 'full' / 'config.json').read_text())), cfg)

# %%
half = dataclasses.replace(cfg, steps=20)
Trainer(half, tmp / 'resumed', progress=False).run()                       # "killed" after its step-20 checkpoint
Trainer(cfg, tmp / 'resumed', resume=True, progress=False).run()           # continue to 40
a = torch.load(tmp / 'full' / 'checkpoint.pt', weights_only=True)
b = torch.load(tmp / 'resumed' / 'checkpoint.pt', weights_only=True)
assert all(torch.equal(a['agent'][k], b['agent'][k]) for k in a['agent']), 'resumed weights differ'
assert torch.equal(a['rng']['gen'], b['rng']['gen'])
rows = list(csv.DictReader(open(tmp / 'resumed' / 'log.csv')))
test_eq([int(r['step']) for r in rows], [10, 20, 30, 40])
# the run's clock goes on across a resume: log times never fall back, the checkpoint holds it, a checkpoint that says 1000 s went first counts
t = [float(r['time_s']) for r in rows]; assert t == sorted(t), t
test_eq((b['elapsed_from'], b['elapsed_s'] > 0, b['elapsed_s'] >= t[-1] - 0.05), (0, True, True))   # the log rounds to 0.1 s
ck = torch.load(tmp / 'full' / 'checkpoint.pt', weights_only=True)
for name, clock in (('clocked', dict(elapsed_s=1000.0, elapsed_from=0)), ('old', {})):   # old: written before the clock existed
    (tmp / name).mkdir(); torch.save({k: v for k, v in ck.items() if k not in ('elapsed_s', 'elapsed_from')} | clock, tmp / name / 'checkpoint.pt')
    r = Trainer(dataclasses.replace(cfg, steps=50), tmp / name, resume=True, progress=False).run()['time']
    t = [float(row['time_s']) for row in csv.DictReader(open(tmp / name / 'log.csv'))]
    if clock: test_eq((r['wall_time_from_step'], r['wall_time_s'] >= 1000, min(t) >= 1000,
                       torch.load(tmp / name / 'checkpoint.pt', weights_only=True)['elapsed_s'] >= 1000), (0, True, True, True))
    else: test_eq((r['wall_time_from_step'], r['wall_time_s'] < 1000, r['resumed_from_step']), (40, True, 40))   # counted from its step
# `load_agent`: the trained agent from a run folder or its checkpoint file, with a test-time override
ag, nm, c2, _ = load_agent(tmp / 'full', n_test=3)
assert all(torch.equal(v, a['agent'][k]) for k, v in ag.state_dict().items())
test_eq((ag.cfg.n_test, c2, load_agent(tmp / 'full' / 'checkpoint.pt')[0].cfg.n_test), (3, cfg, cfg.agent.n_test))

# %%
# A diagnosis (chapters 10a, 14) plays its own episodes: env seeds that the run's evaluations used are refused, the final
# evaluation's (from FINAL_EVAL_SEED) and the training ones (seed + step + i, here every 1000 steps and at the last step, 2500)
c = dataclasses.replace(cfg, seed=3, eval_every=1000, steps=2500, eval_episodes=3, final_episodes=4)
test_eq(eval_seeds(c), {1003, 1004, 1005, 2003, 2004, 2005, 2503, 2504, 2505} | set(range(FINAL_EVAL_SEED, FINAL_EVAL_SEED + 4)))
test_fail(lambda: check_fresh_seeds(c, 1000, 5), contains='include 1003')
test_fail(lambda: check_fresh_seeds(c, FINAL_EVAL_SEED + 3, 2), contains="the run's own evaluations used")
check_fresh_seeds(c, 1006, 997); check_fresh_seeds(c, FINAL_EVAL_SEED + 4, 10)   # 1006-2002 and past the final ones: fresh


# %% [markdown]
# Several runs in one process (`train_many`): seeds or tasks of one budget, stepped together, each in its own folder
# with its own logs, evaluations, checkpoints and resume, each computing exactly what `Trainer.run` computes for it
# alone (its own seed, its own `torch.Generator`). On a CPU that is only bookkeeping: the runs step one after another.
# On a GPU one small MAC step leaves most of the chip idle, and separate processes take turns on it rather than share
# it; `train_many` makes the K steps one CUDA graph with K parallel branches (`CudaGraphStep` above, with the
# runs' generators registered), so their kernels can run side by side. Below, two runs stepped together end with the
# weights of the same two runs trained alone, also when stopped at a checkpoint and resumed together.

# %% [markdown]
# Before it opens a folder, `train_many` refuses what cannot be stepped together: a config without its own folder, two
# runs in one folder, different step counts, pretraining or batch sizes (the runs share one loop), and the single-run
# CUDA-graph flags (the K runs' graph is `graph=True`).

# %%
#| export
def _check_many(cfgs: list, run_dirs: list):
    "The configs and folders `train_many` can step together, or a ValueError that says what differs."
    if not cfgs or len(cfgs) != len(run_dirs): raise ValueError(f'train_many needs one run folder per config (got {len(cfgs)} configs, {len(run_dirs)} folders)')
    if len({Path(d).resolve() for d in run_dirs}) < len(run_dirs): raise ValueError(f'train_many needs a different folder for every run: {[str(d) for d in run_dirs]}')
    for k in ('steps', 'pretrain_steps', 'batch'):
        if len({getattr(c, k) for c in cfgs}) > 1:
            raise ValueError(f'train_many steps its runs together: every config needs the same {k} (got {sorted({str(getattr(c, k)) for c in cfgs})})')
    if any(c.graph_safe or c.cuda_graph for c in cfgs):
        raise ValueError('train_many draws each run\'s batches and noise from the run\'s own generator: leave graph_safe and cuda_graph off '
                         '(its graph is `graph=True`)')



# %% [markdown]
# Then each run's `Trainer` (it takes the folder's lock and, on a resume, reads the checkpoint). They are appended one
# by one to the caller's list, so that a failure half-way still lets the caller close those already open. The runs
# must share a device and, when resumed, a step.

# %%
#| export
def _open_many(cfgs: list, run_dirs: list, resume: bool, progress: bool, trainers: list):
    "Append one Trainer per run to `trainers` (the caller closes them, also after a failure here); one device, one step."
    for i, (c, d) in enumerate(zip(cfgs, run_dirs)): trainers.append(Trainer(c, d, resume, progress and i == 0))   # one bar: they move together
    if len({str(t.device) for t in trainers}) > 1: raise ValueError(f'train_many needs every run on one device (got {sorted({str(t.device) for t in trainers})})')
    if len({t.step for t in trainers}) > 1:
        raise ValueError(f'the runs resume from different steps ({", ".join(str(t.step) for t in trainers)}): resume each alone '
                         f'(mac_train --resume --out <its folder> --steps <the largest of these>) first, then together')



# %% [markdown]
# Whether the K steps run as one CUDA graph: by default wherever `_why_no_graph` finds no reason against it (a CUDA
# device, nothing compiled, no goals); asked for where there is a reason, it is an error that gives the reason.

# %%
#| export
def _many_graph(trainers: list, graph: bool | None) -> bool:
    "Step the runs as one CUDA graph? `graph=None`: wherever possible; True where impossible: a ValueError that says why."
    dev = trainers[0].device
    why = _why_no_graph(dev, any(t.cfg.compile for t in trainers), any(t.goal_conditioned for t in trainers))
    graph = why is None if graph is None else graph
    if graph:
        if why: raise ValueError(f'train_many(graph=True): {why}')
        torch.cuda.set_device(dev)
    return graph



# %%
#| export
def train_many(cfgs: list, run_dirs: list, resume: bool = False, progress: bool = False, graph: bool | None = None) -> list[dict]:
    """Train K runs (configs differing in seed, task, ...) in one process, stepped together; each keeps its own folder and
    computes what `Trainer(cfg, dir).run()` computes. `graph`: their steps as one CUDA graph of K branches (default: on
    CUDA, unless compiled or goal-conditioned). Logs, then evaluations, then checkpoints are done for all runs in turn,
    so an interruption leaves their checkpoints at one step."""
    _check_many(cfgs, run_dirs)
    trainers = []
    try:
        _open_many(cfgs, run_dirs, resume, progress, trainers)
        graph = _many_graph(trainers, graph)
        for t in trainers: t._start()
        graphs, steps, pre = {}, cfgs[0].steps, cfgs[0].pretrain_steps
        try:
            while trainers[0].step < steps:
                outs = (_phase_graph(graphs, trainers[0].step >= pre,
                                     lambda v: [lambda t=t: t.agent.update(t.data.sample(t.cfg.batch, t.gen), t.gen, t._losses, v) for t in trainers],
                                     [t.agent for t in trainers], [t.gen for t in trainers]) if graph else [_step(t) for t in trainers])
                for t, o in zip(trainers, outs): t._record(o)
                for t in trainers: t._evaluate_due()
                for t in trainers: t._save_due()
        except BaseException:
            for t in trainers: t._abort()
            raise
        return [t._finish() for t in trainers]
    finally:
        for t in trainers:
            try: t.close()
            except Exception: pass   # one run's failing close must not keep the others' folders locked


# %%
two = [cfg, dataclasses.replace(cfg, seed=1)]
Trainer(two[1], tmp / 'alone1', progress=False).run()                                      # seed 1 alone (seed 0 alone: tmp/full)
train_many([dataclasses.replace(c, steps=20) for c in two], [tmp / 'many0', tmp / 'many1'])   # stopped together at step 20 ...
res = train_many(two, [tmp / 'many0', tmp / 'many1'], resume=True)                          # ... and resumed together to 40
for alone, many in (('full', 'many0'), ('alone1', 'many1')):
    a, b = (torch.load(tmp / r / 'checkpoint.pt', weights_only=True)['agent'] for r in (alone, many))
    assert all(torch.equal(a[k], b[k]) for k in a), (alone, many)
    la, lm = ([{k: v for k, v in r.items() if k not in ('time_s', 'steps_per_s')} for r in csv.DictReader(open(tmp / d / 'log.csv'))] for d in (alone, many))
    test_eq(lm, la)                                                                        # the same losses, logged at the same steps
test_eq([r['time']['resumed_from_step'] for r in res], [20, 20])                            # each run's clock knows it resumed
test_fail(lambda: train_many(two, [tmp / 'x0', tmp / 'x1'], graph=True), contains='needs a CUDA device')
test_fail(lambda: train_many([cfg, dataclasses.replace(cfg, steps=30)], [tmp / 'y0', tmp / 'y1']), contains='same steps')

# %% [markdown]
# `pretrain_steps` and `terminals` (see the presets' notes below): during the first `pretrain_steps` the value and
# critic receive no gradient (no rollouts are made), then every loss is back; with `terminals` the success net
# learns from real success labels.

# %%
pre = Trainer(dataclasses.replace(cfg, pretrain_steps=20, terminals=True), tmp / 'pre', progress=False)
v0 = {k: v.clone() for k, v in pre.agent.value.state_dict().items()}
pre.cfg = dataclasses.replace(pre.cfg, steps=20); pre.run()
assert all(torch.equal(v0[k], v) for k, v in pre.agent.value.state_dict().items())   # value untouched while pretraining
pre.cfg = dataclasses.replace(pre.cfg, steps=40); pre.run()
assert not all(torch.equal(v0[k], v) for k, v in pre.agent.value.state_dict().items())
rows = list(csv.DictReader(open(tmp / 'pre' / 'log.csv')))
test_eq([bool(r['value']) for r in rows], [False, False, True, True])             # value losses logged once they train

# %% [markdown]
# `bf16` runs the update's forward passes in bfloat16 (chapter 8's `bf16`): the same run, numerically different.

# %%
lo = Trainer(dataclasses.replace(cfg, bf16=True), tmp / 'bf16', progress=False); out16 = lo.run()
assert all(np.isfinite(v) for v in out16['losses'].values())
full = torch.load(tmp / 'full' / 'checkpoint.pt', weights_only=True)['agent']
assert any(not torch.equal(full[k], v) for k, v in lo.agent.state_dict().items())      # not the float32 run's weights

# %% [markdown]
# The same `Trainer` runs goal-conditioned MAC (chapters 8 and 9b) when the dataset name ends in `-oraclerep-v0`:
# the play data are generated as for single tasks (OGBench's single-task datasets are the same files, relabelled), cached
# once beside the train file, and sampled with Table 6's goal mixes; the agent gets the goal size; the checkpoint keeps
# the goal normaliser; and the resume contract holds the same way.

# %%
gcfg = make_config('tiny', {'env': 'puzzle-3x3-play-oraclerep-v0', 'dataset_dir': str(data_dir), 'device': 'cpu'})
Trainer(gcfg, tmp / 'gc', progress=False).run()
Trainer(dataclasses.replace(gcfg, steps=20), tmp / 'gc-resumed', progress=False).run()
Trainer(gcfg, tmp / 'gc-resumed', resume=True, progress=False).run()
a, b = (torch.load(tmp / d / 'checkpoint.pt', weights_only=True) for d in ('gc', 'gc-resumed'))
assert all(torch.equal(a['agent'][k], b['agent'][k]) for k in a['agent']), 'resumed weights differ'
test_eq((a['obs_dim'], a['goal_dim']), (55, 9))                             # puzzle-3x3: 55 numbers of state, 9 buttons of goal
ag, _, _, ck = load_agent(tmp / 'gc'); test_eq(ag.goal_dim, 9)
gn = ObsNormalizer.from_state_dict(ck['goal_normalizer'])
test_eq(ag.act(torch.zeros(2, 55), goal=gn(torch.ones(2, 9))).shape, (2, gcfg.agent.n * 5))

# %% [markdown]
# Bad input: resuming with another environment or other hyperparameters, starting over an existing run, and a loss
# that turns NaN (a learning rate of 1e30) all stop with a message that says what to do, and the last good
# checkpoint survives.

# %%
test_fail(lambda: Trainer(dataclasses.replace(cfg, env='cube-single-play-singletask-task3-v0'), tmp / 'full', resume=True, progress=False),
          contains='is from cube-single-play-singletask-task2-v0')
test_fail(lambda: Trainer(dataclasses.replace(cfg, batch=8), tmp / 'full', resume=True, progress=False), contains='cannot resume with a different batch')
test_fail(lambda: Trainer(cfg, tmp / 'full', progress=False), contains='pass --resume')
test_fail(lambda: Trainer(dataclasses.replace(cfg, cuda_graph=True, graph_safe=True), tmp / 'graph', progress=False), contains='needs a CUDA device')
test_fail(lambda: Trainer(dataclasses.replace(cfg, cuda_graph=True), tmp / 'graph', progress=False), contains='--graph-safe True')
test_fail(lambda: Trainer(dataclasses.replace(cfg, cuda_graph=True, graph_safe=True, compile=True), tmp / 'graph', progress=False), contains='replaces compile')
holder = subprocess.Popen([sys.executable, '-c', f'from mac.train import lock_run_dir; lock_run_dir({str(tmp / "busy")!r}); print(1, flush=True); import time; time.sleep(60)'],
                          stdout=subprocess.PIPE, text=True)
holder.stdout.readline()                                                    # the other process now holds the folder
test_fail(lambda: Trainer(cfg, tmp / 'busy', progress=False), contains=f"in use by another training ({{\"pid\": {holder.pid}")
holder.kill(); holder.wait()                                                # killed: the kernel drops its lock
Trainer(cfg, tmp / 'busy', progress=False).close()                          # and the folder is free again
t = Trainer(cfg, tmp / 'busy', progress=False); test_eq((tmp / 'busy').resolve() in _LOCKS, True)
del t; test_eq((tmp / 'busy').resolve() in _LOCKS, False)                    # a dropped Trainer releases its folder
test_fail(lambda: Trainer(cfg, tmp / 'nothing', resume=True, progress=False), contains='nothing to resume')
test_fail(lambda: Trainer(make_config('tiny', {'env': 'cube-single-play-v0'}), tmp / 'x', progress=False), contains='oraclerep-v0')
boom = Trainer(make_config('tiny', {'dataset_dir': str(data_dir), 'device': 'cpu', 'steps': 60}), tmp / 'nan', progress=False)
clean_update = boom.agent.update
def poisoned(batch, gen, *args):  # the dynamics loss turns NaN after step 25
    out = clean_update(batch, gen, *args)
    if boom.step >= 25: out['dynamics'] = out['dynamics'] * float('nan')
    return out
boom.agent.update = poisoned
test_fail(boom.run, contains='loss dynamics became NaN/inf before step 30')
test_eq(torch.load(tmp / 'nan' / 'checkpoint.pt', weights_only=True)['step'], 20)   # the last good checkpoint survives
test_fail(boom.run, contains='checkpoint.pt (step 20) is the last good checkpoint')          # and the message says which one


# %% [markdown]
# ### Faults and bad input: what was tried and what happens
#
# Every case below was tried against the commands (the issue "Nothing lost, nothing cryptic" lists how it was found);
# each has a test in `tests/test_faults.py`, `tests/test_data.py` or `tests/test_train.py` that failed before the fix.
# A known error is one line on stderr with exit code 2 (the user's input), 3 (training diverged) or 4 (the system:
# disk, permissions); `--debug` shows the traceback.
#
# | what | what happens | exit |
# |---|---|---|
# | `-val.npz` (or the train file) missing beside a valid twin | the missing one is made alone when the sidecar says the same settings; otherwise refused, nothing changed (`--force` replaces both) | 0 / 2 |
# | two trainings into one `--out` | the second fails at once, naming the holder (pid, host, start); a killed holder leaves no lock | 2 |
# | a loss turns NaN | stops before saving; says which checkpoint is the last good one, or that none was written; advises a fresh run with a lower `agent.lr` (a resume would repeat the same steps) | 3 |
# | `--batch 0`, `--ckpt-every 0`, `--log-every 0`, `--agent.n 0`, `--agent.policy gausian` | refused where the config is made, naming the key and what it expects | 2 |
# | `--steps 25.5`, `--agent.lr fast`, `--agent.actor-hidden abc`, `--terminals maybe`, an unknown flag | refused by the command line (tyro), naming the flag, before anything is written | 2 |
# | unreadable, foreign or forged checkpoint (other observation size) | refused before anything uses it | 2 |
# | `--out` that cannot be a folder | refused before any work | 2 |
# | train and `-val` files of different environments | refused, naming both sizes | 2 |
# | truncated or corrupt dataset | the validator's own reason, nothing changed | 2 |
# | `--dataset-dir` a file or unwritable; `--max-episode-steps 1` | refused before the first episode | 2 |
# | `kill -9` of `mac_data --workers 2` | the workers exit with their parent (PR_SET_PDEATHSIG; a watcher thread elsewhere) | — |
# | `mac_bench --configs tiny nosuch` | refused before any timing | 2 |
# | `kill -9` during training, then `--resume` | every tensor equal to an uninterrupted run (the exact-resume check above) | 0 |

# %% [markdown]
# ## The command line
#
# `mac_train --env cube-single-play-singletask-task2-v0 --preset cpu --steps 20000 --seed 0 --out runs/cube2`
# (add `--resume` to continue a stopped run). Every config key of chapter 9a is a typed flag, `--agent.n-train 16
# --eval-every 2000`, whose default is the preset's value; `mac_train --help` lists them with every preset's value.

# %%
#| export
@dataclass
class _TrainArgs:
    "Train MAC (Algorithm 1) on an OGBench single-task dataset; the dataset is generated with OGBench's oracles if missing. Every config key is a flag (default: the preset's value)."
    preset: PresetName = 'paper'   # 'paper' (Tables 7-8), 'cpu' (the main job on 2 CPU cores), 'gc' and 'gc-puzzle-4x5' (Tables 6, 8: goal-conditioned), 'gc-cpu' (goal-conditioned on a CPU) or 'tiny' (tests)
    out: str | None = None         # run folder (default runs/<env>-<preset>-s<seed>)
    resume: bool = False           # continue the run in --out from its checkpoint
    seeds: tuple[int, ...] = ()    # several seeds in one process, stepped together (train_many; one CUDA graph on a GPU), into <out>/s<seed>
    debug: bool = False            # show the traceback of an error
    config: Annotated[ConfigFlags, tyro.conf.arg(name='')] = field(default_factory=ConfigFlags)   # the config keys, as --steps, --agent.n

def _train_seeds(a, cfg) -> int:
    "`mac_train --seeds 0 1 2`: the seeds in one process (`train_many`), each in <out>/s<seed> with its own provenance record."
    if len(set(a.seeds)) != len(a.seeds): raise ValueError(f'--seeds repeats a seed: {a.seeds}')
    if 'seed' in flag_overrides(a.config): raise ValueError('pass --seed and --seeds alone, not both: --seeds 0 1 2 trains each of them')
    out = Path(a.out or f'runs/{cfg.env}-{a.preset}-seeds{"-".join(map(str, a.seeds))}')
    cfgs, dirs = [dataclasses.replace(cfg, seed=s) for s in a.seeds], [out / f's{s}' for s in a.seeds]
    print(f'mac_train: {cfg.env}, preset {a.preset}, {cfg.steps} steps, seeds {", ".join(map(str, a.seeds))} in one process → {out}/s<seed>/')
    res = train_many(cfgs, dirs, a.resume, progress=True)
    for c, d, r in zip(cfgs, dirs, res):
        write_json(d / 'provenance.json', provenance(seed=c.seed, **r['time'], device=get_device(c.device), preset=a.preset,
                   config=config_to_dict(c), final=r, trained_with=f'seeds {", ".join(map(str, a.seeds))} in one process (train_many)'))
        if r['final']: print(f"seed {c.seed}: final evaluation {r['final']['success']:.0%} ({r['final']['protocol']})")
    return 0

def train_cli(argv=None):
    "Command line: train MAC on an OGBench single-task dataset (`mac_train --preset cpu --seed 1 --agent.n-train 16`)."
    a = tyro.cli(_TrainArgs, args=argv, prog='mac_train')
    def body():
        cfg = make_config(a.preset, flag_overrides(a.config))
        get_device(cfg.device)
        if a.seeds: return _train_seeds(a, cfg)
        out = Path(a.out or f'runs/{cfg.env}-{a.preset}-s{cfg.seed}')
        print(f'mac_train: {cfg.env}, preset {a.preset}, {cfg.steps} steps, seed {cfg.seed} → {out}/')
        tr = Trainer(cfg, out, resume=a.resume); res = tr.run()
        write_json(out / 'provenance.json', provenance(seed=cfg.seed, **res['time'], device=get_device(cfg.device),
                   preset=a.preset, config=config_to_dict(cfg), final=res))
        tr.close()
        if res['eval']: print(f"last training evaluation: {res['eval']['success']:.0%} ({res['eval']['protocol']})")
        if res['final']: print(f"final evaluation: {res['final']['success']:.0%} ({res['final']['protocol']}, env seeds from {FINAL_EVAL_SEED:,})")
        return 0
    return run_cli('mac_train', body, a.debug, ((NonFiniteLoss, EXIT_DIVERGED), (RunFolderBusy, EXIT_USAGE)))

# %% [markdown]
# What the trainer above is for, the main job (`make main`), with `diagnose` for a run that falls short and the
# study that chose the `cpu` preset, is [chapter 10a](10a_main_job.ipynb) (`mac.main_job`).

# %% [markdown]
# ## Implementation details
#
# 1. One generator drives batches and every noise draw of the update, which, with the optimiser state and the
#    weights, is what makes a resume exact; torch's, NumPy's and Python's global states are saved as well.
# 2. NaN/inf checks cost one host synchronisation per `log_every` steps: the update itself never synchronises.
# 3. Evaluations use seeds `seed + step` for their episodes, so successive evaluations see different initial states.
# 4. The `cpu` preset, chosen by the measurements of chapter 10a: 28k steps (5k steps of model/policy pretraining,
#    then 23k full updates; at 14k, 3 of 5 seeds reached 50% on 50 fresh episodes, at 28k at least 4 of 5 did),
#    every network 256×4, rollouts from 64 of the 256 batch states, a 100-episode dataset, the official code's *mean*
#    chunk reward, γ = 0.99 instead of 0.999, `terminals`, and at evaluation it executes each chosen chunk whole (item 8); n, H, N, F, τ, lr and the batch are the paper's. Measured on 2 cores (`bench_agent`): 0.13 s per full
#    update, against 0.28 s with rollouts from all 256 states and 0.82 s at the paper's 512×4.
#    Why the mean: a pilot with the paper's sum (8k steps, 18.9 min, `results/quickstart_pilot_sum/`) reached 1/15
#    successes with values still around −400 on their way to ~−1000: Adam at lr 3e-4 needs over 10k steps just to
#    reach that scale; the mean divides every value by n = 10 and leaves the argmax unchanged. Why γ = 0.99: with
#    0.999 the values after 11k steps were still drifting towards their fixed point (−45 of −100, `v_mean` in
#    `results/cpu_variants/paper_faithful_main_job/run/log.csv`); 0.99 shortens the horizon to ~100 steps, which the
#    task needs, and its mean value reaches −9.2 (fixed point −10.4) by step 2750 (`results/cpu_variants/gamma099/`).
# 5. `terminals` (default off, as the paper and the official code): OGBench's single-task environments end an episode
#    at the goal, but the paper trains "without termination", so its value must learn that the policy *stays* at
#    the goal. With `terminals=True` a chunk that reaches the goal ends (chunk reward up to that step, mask 0) and the
#    success net learns those masks, so rollouts stop there: the MDP the evaluation runs. The value then singles out
#    the goal: at 11k steps V = −0.14 on states one chunk before success against −4.76 on average
#    (`results/cpu_variants/terminals-11k-diagnosis.json`).
# 6. `pretrain_steps` (default 0, as the paper): the first steps train the models and policies only, at about a
#    quarter of the cost of a full update (no rollouts: 17.9 against 4.5 steps/s over the first 1000 steps, one
#    thread each), so the value starts learning from a model that is already usable.
# 7. `compile` (default off): `torch.compile` of the losses, with an eager fallback (and a warning) where compiling
#    fails, e.g. on a machine without a C compiler; tests/test_train.py checks that it compiles and that it trains
#    to the same losses and weights as eager, up to float rounding. The update draws its noise from the run's
#    `torch.Generator`, which `torch.compile` cannot capture: each use breaks the graph. `graph_safe` draws it, and the
#    batch indices, from the global torch RNG instead (seeded, and saved in checkpoints, so resume stays exact) and compiles with
#    `fullgraph=True`: one graph, which CUDA graphs (`mode='reduce-overhead'`) need. tests/test_train.py checks that it
#    compiles as one graph, that it trains as its eager twin does when inductor draws random numbers as eager does
#    (`fallback_random`; by default compiled noise is drawn differently, equally random), and that a resumed
#    `graph_safe` run ends with the weights of an uninterrupted one (since the batch indices moved to the global RNG
#    too, a `graph_safe` checkpoint written before that change resumes with other batches).
#    `cuda_graph` (CUDA only, with `graph_safe`) goes further: the whole step, batch sampling and Adam included, is
#    one CUDA graph (`CudaGraphStep` above). It is the `graph_safe` eager step replayed, so the two draw the same numbers;
#    chapter 11's `cuda_graph_agreement` measures how closely their losses and weights agree on a GPU
#    (`tools/gpu_check.sh`), and the figures are in `results/gpu/`. Goal-conditioned runs cannot use it: their batches
#    come from the on-disk cache (chapter 9b), on the host. `mac_train --seeds 0 1 2` trains several seeds in one
#    process (`train_many`, above): on a GPU their steps form one graph of parallel branches, each run drawing from its
#    own generator, so each equals its run alone without `graph_safe`; how much faster K runs go than one is for
#    `mac_bench --many 1 8` to measure on a GPU (`tools/gpu_check.sh`, stage `many`; not yet run).
# 8. `replan_every` (default 1, the official code's `action_chunking_test = 1`; the paper does not say): the `cpu`
#    preset executes each chosen chunk whole (10), which the CPU study (chapter 10a) measured against re-planning every step
#    on the same trained agents (`results/cpu_study/`). `replan_every = 0` means "the whole chunk, whatever n is", so
#    a sweep over chunk lengths (chapter 12's `fig3` grid) keeps that rule for every n.
# 9. The run's clock: `log.csv`'s `time_s` and the provenance record's `wall_time_s` are the run's wall time of
#    training and evaluation summed over its processes: each checkpoint carries the time so far (`elapsed_s`), and a
#    resumed process goes on from it. Not counted: setup (loading or generating the data, building a cache) and the
#    work a killed process did after its last checkpoint, which the resumed one repeats; counted: time a process was
#    paused (SIGSTOP) while it held the run. A checkpoint written before the clock existed has no time: the clock then
#    counts from its step (`wall_time_from_step` in the record; `time_s` restarts in the log at that step).
