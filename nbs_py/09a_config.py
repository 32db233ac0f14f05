# %% [markdown]
# # Run configuration
# > One config for a training run: the paper's defaults, named presets, overrides checked key by key, and an exact JSON round trip.

# %%
#| default_exp config

# %%
#| export
from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing
from dataclasses import dataclass, field
from typing import Annotated, Literal

import tyro

from mac.agent import MACConfig
from mac.batches import ChunkReturn
from mac.cache import FLOATS
from mac.core import unhome
from mac.data import DEFAULT_DATASET_DIR

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail


# %% [markdown]
# What a training run is told, in one place: `mac.config` holds the run's configuration, the named presets and the
# checked overrides that chapter 10's trainer, the benchmark (chapter 11) and the sweeps (chapter 12) share. It
# imports no training code.

# %% [markdown]
# ## The configuration
#
# One frozen dataclass; its defaults are the paper's single-task settings (Tables 7-8: 1M steps, batch 256, and the
# agent's `MACConfig`: 512×4, lr 3e-4, γ 0.999, τ 0.005, F 10, N_train 8, N_test 32, H 10, n 10), evaluation as the
# paper (15 episodes every 100k steps). Presets change a few fields: `cpu` (what learns the default task on 2 CPU cores:
# 28k steps, chosen by the measurements of [chapter 10a](10a_main_job.ipynb)) and `tiny` (tests). Keys of the agent's config are written `agent.<field>`.

# %%
#| export
@dataclass(frozen=True)
class TrainConfig:
    env: str = 'cube-single-play-singletask-task2-v0'  # OGBench dataset: single-task, or goal-conditioned *-oraclerep-v0 (chapter 9b)
    steps: int = 1_000_000          # gradient steps
    batch: int = 256                # dataset chunks per update
    seed: int = 0                   # seeds network init, data sampling and all noise
    reward_agg: str = 'sum'         # chunk reward: 'sum' (paper) or 'mean' (official code)
    terminals: bool = False         # end chunks at the task's success, as OGBench's eval env does (paper, official: never)
    pretrain_steps: int = 0         # first steps train the models and policies only, no rollouts (paper, official: 0)
    agent: MACConfig = field(default_factory=MACConfig)  # the agent's hyperparameters (chapter 8)
    eval_every: int = 100_000       # evaluate every this many steps (0: only at the end)
    eval_episodes: int = 15         # episodes per evaluation, per goal when goal-conditioned (paper: 15; 0: never evaluate)
    eval_workers: int = 0           # parallel eval environments (0: one per CPU core)
    replan_every: int = 1           # actions executed per chunk at evaluation (official: 1, re-plan every step; 0: the whole chunk, n)
    final_episodes: int = 50        # episodes of the final evaluation (per goal when goal-conditioned), on seeds no training evaluation uses (0: none)
    log_every: int = 1_000          # steps between log rows (and NaN checks)
    ckpt_every: int = 10_000        # steps between checkpoints
    dataset_dir: str = DEFAULT_DATASET_DIR  # where OGBench's files are (generated here if missing)
    dataset_episodes: int = 1000    # episodes to generate when the dataset is missing (OGBench's size: 1000)
    dataset_path: str = ''          # goal-conditioned only: a train .npz or a folder of OGBench file pairs (the 100M sets); '' = dataset_dir's file
    cache_floats: str = 'float32'   # goal-conditioned only: the on-disk cache's float arrays, 'float32' (OGBench's) or 'float16' (half the memory; chapter 2b)
    device: str = 'auto'            # 'auto' (CUDA if available), 'cpu', 'cuda[:i]'
    compile: bool = False           # torch.compile the losses (same math; pays a one-off compile, then faster steps)
    bf16: bool = False              # the update's forward passes in bfloat16 autocast, float32 weights and Adam (acting stays float32)
    graph_safe: bool = False        # the update's noise and batch indices from the global torch RNG (checkpointed), so `compile` captures the losses as one graph (fullgraph), as CUDA graphs need
    cuda_graph: bool = False        # CUDA only, with graph_safe: the whole step (batch sampling, losses, backward, Adam, EMA) captured once as one CUDA graph and replayed

    @property
    def chunk_return(self) -> ChunkReturn:
        "The run's chunk return (chapter 2a): the agent's n and γ with this config's `reward_agg` and `terminals`."
        return ChunkReturn(self.agent.n, self.agent.gamma, self.reward_agg, self.terminals)

    @property
    def actions_per_plan(self) -> int:
        "Actions executed per chosen chunk at evaluation: `replan_every`, or the whole chunk (n) when it is 0."
        return self.replan_every or self.agent.n


# %% [markdown]
# The presets. `paper` is the defaults above. `cpu` is what learns the default task on 2 CPU cores: chapter 10's
# implementation details (items 4-6 and 8) say why each of its keys departs from the paper, and chapter 10a measures its
# budget. `gc`, `gc-puzzle-4x5` and `gc-cpu` are the goal-conditioned settings (chapters 9b and 14); `tiny` is for
# tests.

# %%
#| export
PRESETS = {
    'paper': {},
    'cpu': {'steps': 28_000, 'batch': 256, 'reward_agg': 'mean', 'agent.actor_hidden': (256,) * 4, 'agent.value_hidden': (256,) * 4,
            'agent.dynamics_hidden': (256,) * 4, 'agent.rollout_batch': 64, 'agent.gamma': 0.99, 'terminals': True,
            'pretrain_steps': 5_000, 'replan_every': 10, 'eval_every': 2_000, 'log_every': 250, 'ckpt_every': 1_000, 'dataset_episodes': 100},
    'gc': {'env': 'puzzle-3x3-play-oraclerep-v0', 'steps': 2_000_000, 'batch': 1024, 'agent.actor_hidden': (1024,) * 4,
           'agent.value_hidden': (1024,) * 4, 'agent.dynamics_hidden': (1024,) * 4},                  # Tables 6 and 8 (goal-conditioned)
    'gc-puzzle-4x5': {'env': 'puzzle-4x5-play-oraclerep-v0', 'steps': 2_000_000, 'batch': 1024, 'agent.actor_hidden': (256,) * 4,
                      'agent.value_hidden': (256,) * 4, 'agent.dynamics_hidden': (256,) * 4, 'agent.n_train': 32},   # Table 8's exceptions
    'tiny': {'steps': 40, 'batch': 16, 'agent.actor_hidden': (32, 32), 'agent.value_hidden': (32, 32),
             'agent.dynamics_hidden': (32, 32), 'agent.n_train': 4, 'agent.n_test': 4, 'agent.H': 3, 'agent.flow_steps': 3,
             'eval_every': 0, 'eval_episodes': 0, 'final_episodes': 0, 'log_every': 10, 'ckpt_every': 20, 'dataset_episodes': 2},
}
# goal-conditioned at CPU scale: the cpu preset's networks and schedule (its chunk-reward keys do not apply), 5 episodes
# per goal while training, 20 at the end, on a 1M-transition dataset; its runs on puzzle-3x3 are chapter 14's (results/gc_puzzle3x3/)
PRESETS['gc-cpu'] = {k: v for k, v in PRESETS['cpu'].items() if k not in ('reward_agg', 'terminals', 'dataset_episodes')} | {
    'env': 'puzzle-3x3-play-oraclerep-v0', 'eval_episodes': 5, 'final_episodes': 20, 'dataset_episodes': 1000}


# %% [markdown]
# Overrides and presets go through one function that checks every key and converts JSON lists back to tuples, so a
# config survives a round trip through `config.json` exactly.

# %%
#| export
def _fields(cls): return {f.name: f for f in dataclasses.fields(cls)}

def _coerce(cls, name, value, key):
    "`value` as the type of the field's default, or a ValueError that names the key and what it expects."
    f = _fields(cls)[name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    def bad(want): raise ValueError(f'config key {key!r}: {value!r} is not {want}')
    isnum = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
    if isinstance(default, bool):
        if isinstance(value, bool): return value
        if isinstance(value, str) and value.lower() in ('true', 'false', '1', '0', 'yes', 'no'): return value.lower() in ('true', '1', 'yes')
        bad('true or false')
    if isinstance(default, (int, float)):
        if isinstance(value, str):
            try: value = float(value)
            except ValueError: bad('a number')
        if not isnum(value): bad('a number')
        if isinstance(default, float): return float(value)
        if float(value) != int(value): bad('a whole number')   # steps=25.5 would never reach its last checkpoint
        return int(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            try: value = tuple(int(x) for x in value.split(','))
            except ValueError: bad('a list of layer sizes such as 256,256,256,256')
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in value):
            bad('a list of layer sizes such as 256,256,256,256')
        return tuple(value)
    if isinstance(default, str) and not isinstance(value, str): bad('a string')
    return value


# %% [markdown]
# Ranges are checked on the whole config, so that every config `make_config` makes (from presets, overrides, or a
# `config.json` read back) meets the same rules:

# %%
#| export
_AT_LEAST = dict(steps=1, batch=1, seed=0, pretrain_steps=0, eval_every=0, eval_episodes=0, eval_workers=0, replan_every=0,
                 final_episodes=0, log_every=1, ckpt_every=1, dataset_episodes=1)

def _check_ranges(cfg: TrainConfig):
    "Every range a TrainConfig must respect (MACConfig checks its own), each error naming its key."
    for k, lo in _AT_LEAST.items():
        if getattr(cfg, k) < lo: raise ValueError(f'config key {k!r} must be >= {lo}, got {getattr(cfg, k)}')
    if cfg.reward_agg not in ('sum', 'mean'): raise ValueError(f"config key 'reward_agg' must be 'sum' or 'mean', got {cfg.reward_agg!r}")
    if cfg.cache_floats not in FLOATS: raise ValueError(f"config key 'cache_floats' must be one of {', '.join(map(repr, FLOATS))}, got {cfg.cache_floats!r}")
    if cfg.replan_every > cfg.agent.n: raise ValueError(f"config key 'replan_every' ({cfg.replan_every}) exceeds the chunk length agent.n = {cfg.agent.n}")
    if cfg.agent.lr <= 0: raise ValueError(f"config key 'agent.lr' must be > 0, got {cfg.agent.lr}")


# %% [markdown]
# `make_config` joins a preset and overrides, key by key; `config_to_dict` and `config_from_dict` are its JSON round
# trip:

# %%
#| export
def make_config(preset: str = 'paper', overrides: dict | None = None) -> TrainConfig:
    "A TrainConfig from a preset plus overrides ({'steps': 10, 'agent.n_train': 4, …}); unknown keys are an error."
    if preset not in PRESETS: raise ValueError(f'unknown preset {preset!r}: choose one of {", ".join(PRESETS)}')
    top, agent = {}, {}
    for k, v in {**PRESETS[preset], **(overrides or {})}.items():
        cls, name, dst = (MACConfig, k[6:], agent) if k.startswith('agent.') else (TrainConfig, k, top)
        if name not in _fields(cls) or (cls is TrainConfig and name == 'agent'):
            valid = [f for f in _fields(TrainConfig) if f != 'agent'] + [f'agent.{f}' for f in _fields(MACConfig)]
            raise ValueError(f'unknown config key {k!r}; valid keys: {", ".join(valid)}')
        dst[name] = _coerce(cls, name, v, k)
    try: agent_cfg = MACConfig(**agent)
    except ValueError as e: raise ValueError(f'config key agent.{str(e).removeprefix("MACConfig.")}') from None
    cfg = TrainConfig(**top, agent=agent_cfg)
    _check_ranges(cfg)
    return cfg

def config_to_dict(cfg: TrainConfig) -> dict:
    "The config as JSON data; data paths under the home directory written with `~` (records name no home; `~` expands on use)."
    d = json.loads(json.dumps(dataclasses.asdict(cfg)))
    return d | {k: unhome(d[k]) for k in ('dataset_dir', 'dataset_path') if isinstance(d.get(k), str)}

def config_from_dict(d: dict) -> TrainConfig:
    "Inverse of `config_to_dict` (as read back from JSON)."
    d = dict(d); agent = d.pop('agent', {})
    return make_config('paper', {**d, **{f'agent.{k}': v for k, v in agent.items()}})


# %%
test_eq(TrainConfig().agent, MACConfig()); test_eq((TrainConfig().steps, TrainConfig().batch), (1_000_000, 256))
c = make_config('cpu', {'agent.n_train': 4, 'seed': '3'})
test_eq((c.agent.n_train, c.seed, c.agent.actor_hidden), (4, 3, (256,) * 4))
test_eq(config_from_dict(json.loads(json.dumps(config_to_dict(c)))), c)           # JSON round trip, tuples included
from pathlib import Path
test_eq(config_to_dict(make_config('cpu', {'dataset_path': f'{Path.home()}/data/big'}))['dataset_path'], '~/data/big')   # no home in records
test_eq((c.actions_per_plan, make_config('cpu', {'replan_every': 0, 'agent.n': 5}).actions_per_plan), (10, 5))   # 0: the whole chunk
test_fail(lambda: make_config('cpu', {'agent.widht': 3}), contains="unknown config key 'agent.widht'; valid keys: env, steps")
test_fail(lambda: make_config('fast'), contains="unknown preset 'fast'")
for bad, says in [({'batch': 0}, "'batch' must be >= 1"), ({'ckpt_every': 0}, "'ckpt_every' must be >= 1"), ({'log_every': 0}, "'log_every' must be >= 1"),
                  ({'steps': 25.5}, "'steps': 25.5 is not a whole number"), ({'steps': 'many'}, "'steps': 'many' is not a number"),
                  ({'agent.actor_hidden': 'abc'}, "'agent.actor_hidden': 'abc' is not a list of layer sizes"),
                  ({'terminals': 'maybe'}, "'terminals': 'maybe' is not true or false"), ({'agent.n': 0}, 'agent.n must be >= 1'),
                  ({'replan_every': 20}, "exceeds the chunk length agent.n = 10"), ({'reward_agg': 'max'}, "'reward_agg' must be 'sum' or 'mean'"),
                  ({'cache_floats': 'bfloat16'}, "'cache_floats' must be one of 'float32', 'float16'")]:
    test_fail(lambda: make_config('cpu', bad), contains=says)
test_eq(make_config('cpu', {'steps': '2e4', 'agent.lr': 1, 'terminals': 'false'}).steps, 20_000)

# %% [markdown]
# On the command line every config key is a typed flag: `mac_train --preset cpu --steps 2000 --agent.n-train 16
# --agent.actor-hidden 256 256 --terminals False`. The flags are made here from the two dataclasses by
# [tyro](https://brentyi.github.io/tyro/) (the typed-CLI library every `mac_*` command uses), so a new config field
# is a new flag with its end-of-line comment as its help, and no second list of keys exists to fall out of date. Each
# flag is optional: left out, the preset's value stands (the help lists the paper's value and every preset's that
# differs), so a preset and the flags compose as `make_config(preset, overrides)` does. tyro converts the types
# (`1e-4`, `True`, a list of layer sizes) and rejects a malformed or unknown flag before anything runs, naming it; `make_config` then checks the ranges as above. Why tyro rather than the standard
# library's `argparse`: the flags, their types and their help come from the dataclasses themselves, which is the
# point of having one config; with `argparse` each key would be written a second time, or read back from strings by
# a hand-written parser, as this project did before.

# %%
#| export
PresetName = Literal[tuple(PRESETS)]   # the presets, as a type: a command line offers them as choices

def _notes(cls) -> dict:
    "Each field's end-of-line comment in `cls`'s source: the one description of a config key, reused as its --help."
    try: src = inspect.getsource(cls)
    except (OSError, TypeError): return {}   # a class defined in a notebook cell has no source file: flags without notes
    return {m[1]: m[2].strip() for m in re.finditer(r'^\s+(\w+)\s*:[^=\n]*=.*?#\s*(.+)$', src, re.M)}



# %% [markdown]
# One optional flag per plain field, typed by the field's annotation; its help is the field's comment, the paper
# preset's value and the value of every preset that sets the key. The agent's fields come under `agent.`, as in the
# overrides.

# %%
#| export
def _flags_class(cls, prefix: str, name: str, extra=()):
    "A frozen dataclass with one optional flag per plain field of `cls` (None: keep the preset's value)."
    notes, fields, hints = _notes(cls), [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        d = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(d): continue
        typ = hints[f.name]                              # the field's annotation (a bare `tuple` is a list of layer sizes)
        typ = tuple[int, ...] if typ is tuple else typ
        presets = '; '.join(f'{p} {PRESETS[p].get(prefix + f.name, d)!r}' for p in PRESETS if p == 'paper' or prefix + f.name in PRESETS[p])
        arg = tyro.conf.arg(help=f'{notes.get(f.name, "")} [{presets}]', help_behavior_hint="(default: the preset's)")
        fields.append((f.name, Annotated[typ | None, arg], field(default=None)))
    out = dataclasses.make_dataclass(name, [*fields, *extra], frozen=True); out.__module__ = __name__
    return out

AgentFlags = _flags_class(MACConfig, 'agent.', 'AgentFlags')
ConfigFlags = _flags_class(TrainConfig, '', 'ConfigFlags', [('agent', AgentFlags, field(default_factory=AgentFlags))])
ConfigFlags.__doc__ = "Every config key as an optional typed flag (None: the preset's value); `flag_overrides` reads it."


# %% [markdown]
# And back: the flags a command line set, as the overrides `make_config` takes.

# %%
#| export
def flag_overrides(flags) -> dict:
    "The keys set on the command line, as `make_config` overrides: {'steps': 2000, 'agent.n_train': 16}."
    d = dataclasses.asdict(flags); agent = d.pop('agent')
    return {k: v for k, v in d.items() if v is not None} | {f'agent.{k}': v for k, v in agent.items() if v is not None}



# %%
_flags = lambda *argv: flag_overrides(tyro.cli(ConfigFlags, args=list(argv)))
test_eq(_flags('--agent.n-train', '16', '--agent.lr', '1e-4', '--terminals', 'True', '--agent.actor-hidden', '64', '64', '--env', 'scene-play-singletask-task1-v0'),
        {'env': 'scene-play-singletask-task1-v0', 'terminals': True, 'agent.n_train': 16, 'agent.lr': 1e-4, 'agent.actor_hidden': (64, 64)})
test_eq(_flags(), {})
test_eq(make_config('tiny', _flags('--agent.actor-hidden', '8', '8', '--steps', '7')).agent.actor_hidden, (8, 8))
# one flag per config key and one key per flag: the flags are made from the dataclasses, never listed twice
test_eq(set(_fields(ConfigFlags)) - {'agent'}, set(_fields(TrainConfig)) - {'agent'}); test_eq(set(_fields(AgentFlags)), set(_fields(MACConfig)))
import mac.config   # the exported module, whose classes have a source file to read the notes from
test_eq(mac.config._notes(mac.config.TrainConfig)['steps'], 'gradient steps')
test_eq(mac.config._notes(MACConfig)['n_test'], 'rejection-sampling candidates when acting')

# %%
#| hide
import nbdev; nbdev.nbdev_export()
