# %% [markdown]
# # Run configuration
# > One config for a training run: the paper's defaults, named presets, overrides checked key by key, and an exact JSON round trip.

# %%
#| default_exp config

# %%
#| export
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from mac.agent import MACConfig
from mac.batches import ChunkReturn
from mac.data import DEFAULT_DATASET_DIR

# %%
#| hide
import argparse

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
    env: str = 'cube-single-play-singletask-task2-v0'  # OGBench single-task dataset name
    steps: int = 1_000_000          # gradient steps
    batch: int = 256                # dataset chunks per update
    seed: int = 0                   # seeds network init, data sampling and all noise
    reward_agg: str = 'sum'         # chunk reward: 'sum' (paper) or 'mean' (official code)
    terminals: bool = False         # end chunks at the task's success, as OGBench's eval env does (paper, official: never)
    pretrain_steps: int = 0         # first steps train the models and policies only, no rollouts (paper, official: 0)
    agent: MACConfig = field(default_factory=MACConfig)  # the agent's hyperparameters (chapter 8)
    eval_every: int = 100_000       # evaluate every this many steps (0: only at the end)
    eval_episodes: int = 15         # episodes per evaluation (paper: 15; 0: never evaluate)
    eval_workers: int = 0           # parallel eval environments (0: one per CPU core)
    replan_every: int = 1           # actions executed per chunk at evaluation (official: 1, re-plan every step)
    final_episodes: int = 50        # episodes of the final evaluation, on seeds no training evaluation uses (0: none)
    log_every: int = 1_000          # steps between log rows (and NaN checks)
    ckpt_every: int = 10_000        # steps between checkpoints
    dataset_dir: str = DEFAULT_DATASET_DIR  # where OGBench's files are (generated here if missing)
    dataset_episodes: int = 1000    # episodes to generate when the dataset is missing (OGBench's size: 1000)
    device: str = 'auto'            # 'auto' (CUDA if available), 'cpu', 'cuda[:i]'
    compile: bool = False           # torch.compile the losses (same math; pays a one-off compile, then faster steps)

    @property
    def chunk_return(self) -> ChunkReturn:
        "The run's chunk return (chapter 2a): the agent's n and γ with this config's `reward_agg` and `terminals`."
        return ChunkReturn(self.agent.n, self.agent.gamma, self.reward_agg, self.terminals)

PRESETS = {
    'paper': {},
    'cpu': {'steps': 28_000, 'batch': 256, 'reward_agg': 'mean', 'agent.actor_hidden': (256,) * 4, 'agent.value_hidden': (256,) * 4,
            'agent.dynamics_hidden': (256,) * 4, 'agent.rollout_batch': 64, 'agent.gamma': 0.99, 'terminals': True,
            'pretrain_steps': 5_000, 'replan_every': 10, 'eval_every': 2_000, 'log_every': 250, 'ckpt_every': 1_000, 'dataset_episodes': 100},
    'tiny': {'steps': 40, 'batch': 16, 'agent.actor_hidden': (32, 32), 'agent.value_hidden': (32, 32),
             'agent.dynamics_hidden': (32, 32), 'agent.n_train': 4, 'agent.n_test': 4, 'agent.H': 3, 'agent.flow_steps': 3,
             'eval_every': 0, 'eval_episodes': 0, 'final_episodes': 0, 'log_every': 10, 'ckpt_every': 20, 'dataset_episodes': 2},
}


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

_AT_LEAST = dict(steps=1, batch=1, seed=0, pretrain_steps=0, eval_every=0, eval_episodes=0, eval_workers=0, replan_every=1,
                 final_episodes=0, log_every=1, ckpt_every=1, dataset_episodes=1)

def _check_ranges(cfg: TrainConfig):
    "Every range a TrainConfig must respect (MACConfig checks its own), each error naming its key."
    for k, lo in _AT_LEAST.items():
        if getattr(cfg, k) < lo: raise ValueError(f'config key {k!r} must be >= {lo}, got {getattr(cfg, k)}')
    if cfg.reward_agg not in ('sum', 'mean'): raise ValueError(f"config key 'reward_agg' must be 'sum' or 'mean', got {cfg.reward_agg!r}")
    if cfg.replan_every > cfg.agent.n: raise ValueError(f"config key 'replan_every' ({cfg.replan_every}) exceeds the chunk length agent.n = {cfg.agent.n}")
    if cfg.agent.lr <= 0: raise ValueError(f"config key 'agent.lr' must be > 0, got {cfg.agent.lr}")

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

def config_to_dict(cfg: TrainConfig) -> dict: return json.loads(json.dumps(dataclasses.asdict(cfg)))

def config_from_dict(d: dict) -> TrainConfig:
    "Inverse of `config_to_dict` (as read back from JSON)."
    d = dict(d); agent = d.pop('agent', {})
    return make_config('paper', {**d, **{f'agent.{k}': v for k, v in agent.items()}})


# %%
test_eq(TrainConfig().agent, MACConfig()); test_eq((TrainConfig().steps, TrainConfig().batch), (1_000_000, 256))
c = make_config('cpu', {'agent.n_train': 4, 'seed': '3'})
test_eq((c.agent.n_train, c.seed, c.agent.actor_hidden), (4, 3, (256,) * 4))
test_eq(config_from_dict(json.loads(json.dumps(config_to_dict(c)))), c)           # JSON round trip, tuples included
test_fail(lambda: make_config('cpu', {'agent.widht': 3}), contains="unknown config key 'agent.widht'; valid keys: env, steps")
test_fail(lambda: make_config('fast'), contains="unknown preset 'fast'")
for bad, says in [({'batch': 0}, "'batch' must be >= 1"), ({'ckpt_every': 0}, "'ckpt_every' must be >= 1"), ({'log_every': 0}, "'log_every' must be >= 1"),
                  ({'steps': 25.5}, "'steps': 25.5 is not a whole number"), ({'steps': 'many'}, "'steps': 'many' is not a number"),
                  ({'agent.actor_hidden': 'abc'}, "'agent.actor_hidden': 'abc' is not a list of layer sizes"),
                  ({'terminals': 'maybe'}, "'terminals': 'maybe' is not true or false"), ({'agent.n': 0}, 'agent.n must be >= 1'),
                  ({'replan_every': 20}, "exceeds the chunk length agent.n = 10"), ({'reward_agg': 'max'}, "'reward_agg' must be 'sum' or 'mean'")]:
    test_fail(lambda: make_config('cpu', bad), contains=says)
test_eq(make_config('cpu', {'steps': '2e4', 'agent.lr': 1, 'terminals': 'false'}).steps, 20_000)


# %% [markdown]
# On the command line (`mac_train --set key=value`, `mac_sweep`), overrides arrive as strings. `parse_sets` reads
# each value as JSON when it parses (`3`, `1e-4`, `true`, `[256,256]`) and as a string otherwise, with `256,256` read
# as a tuple of layer sizes; `make_config` then checks and converts it as above.

# %%
#| export
def parse_sets(items, ap) -> dict:
    "--set key=value pairs; values are JSON when they parse (3, 1e-4, true, [256,256]), else strings; '256,256' is a tuple."
    out = {}
    for it in items or []:
        if '=' not in it: ap.error(f'--set expects key=value, got {it!r}')
        k, v = it.split('=', 1)
        try: out[k] = json.loads(v)
        except json.JSONDecodeError: out[k] = tuple(int(x) for x in v.split(',')) if v.replace(',', '').isdigit() else v
    return out



# %%
ap = argparse.ArgumentParser(prog='demo')
test_eq(parse_sets(['agent.n_train=16', 'agent.lr=1e-4', 'terminals=true', 'agent.actor_hidden=64,64', 'env=scene-play-singletask-task1-v0'], ap),
        {'agent.n_train': 16, 'agent.lr': 1e-4, 'terminals': True, 'agent.actor_hidden': (64, 64), 'env': 'scene-play-singletask-task1-v0'})
test_eq(make_config('tiny', parse_sets(['agent.actor_hidden=[8,8]'], ap)).agent.actor_hidden, (8, 8))
test_eq(parse_sets(None, ap), {})

# %%
#| hide
import nbdev; nbdev.nbdev_export()
