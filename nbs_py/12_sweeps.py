# %% [markdown]
# # Sweeps on Ray
# > Grids of training runs (the paper's Tables 2, 3, 15 and Figure 3) and sharded dataset generation, on Ray, from this machine to a cluster: skip what is finished, resume what is not, isolate failures, aggregate into the paper's tables and curves.

# %%
#| default_exp sweep

# %%
#| export
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import platform
import sys
import time
import traceback
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from mac.core import provenance, read_csv, run_cli, write_csv, write_json
from mac.data import (DEFAULT_DATASET_DIR, ENVS, NOISY_GEN_KW, DatasetError, GenConfig, merge_episodes, save_npz, collect_episode, ensure_dataset,
                      parse_name, validate_dataset)
from mac.config import PRESETS, ConfigFlags, PresetName, config_to_dict, flag_overrides, make_config
from mac.train import RunFolderBusy, Trainer

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail
from mac.core import EXIT_USAGE
import tempfile, shutil
import warnings; warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')


# %% [markdown]
# ## In the paper
#
# > We employ 25 single-task manipulation tasks from five environments in OG-Bench: cube-{single, double}, scene, and
# > puzzle-{3×3, 4×4}. […] We report the average success rate across 5 tasks for each environment. (Section 5.2)
#
# > The results are averaged over 4 seeds and we report the standard deviations for each tasks. (Appendix B, Table 13)
#
# > We plot the mean and the standard deviation (across 4 seeds) by covering [mean − std, mean + std] area with a
# > lighter color. […] We report the success rate for 15 evaluation episodes across 4 seeds. (Figure 6)
#
# The ablations run on "the default tasks for five reward-based environments" (Tables 3 and 15), MAC(FQL) with the
# α of Table 11, and Figure 3 trains MAC with chunk lengths n ∈ {1, 5, 10, 25}. That is 100 training runs for Table 2
# alone, each 1M updates: work for a cluster, and the reason for this chapter.
#
# | symbol | meaning | code |
# |---|---|---|
# | trial | one training run: (variant, env, task, seed) | `Trial` |
# | variant | a named set of config overrides (MAC, MAC(Gau), n = 5, …) | `Trial.variant`, `GRIDS[...]['variants']` |
# | grid | variants × envs × tasks × seeds | `expand_grid` |
# | shard | one file of a large dataset and its `-val` twin | `generate_shards` |

# %% [markdown]
# ## Ray core, not Ray Tune
#
# A `mac` run already does what Tune's trial runner would add: its run folder holds an exact checkpoint, a lock, logs
# and evaluations, and `Trainer(cfg, run_dir, resume=True)` continues it bit for bit (chapter 10). What a sweep needs
# on top is small: decide per trial whether it is finished, unfinished or failed (from files in its run folder),
# place each unfinished trial on a machine with the CPUs and GPU fraction it declares, and collect the outcomes.
# Ray core does exactly that with one remote function (`ray.remote(run_trial).options(num_cpus=…, num_gpus=…)`)
# and `ray.wait`. Tune would bring a second source of truth (its experiment state and trial directories, restored
# with `Tuner.restore`) that must agree with mac's run folders, plus pandas and pyarrow as dependencies, and its
# schedulers and search algorithms (early stopping, Bayesian search) are not what the paper's protocol asks for: every
# cell of Tables 2, 3 and 15 is a fixed grid run to the end. So the state of a sweep is the files of its run folders
# and nothing else: a sweep can be killed at any moment, run again with the same command, or run from another
# machine pointing at the same folder.

# %% [markdown]
# ## Grids: the paper's protocol as data
#
# A trial is a variant (named overrides), an environment, a task and a seed, on top of a preset. Its run folder is
# `runs/<variant>/<env>-task<k>/seed<s>/` inside the sweep folder, and its *spec* (the JSON of everything that defines
# it) is what later runs compare to decide whether a finished record still describes the trial asked for.

# %%
#| export
@dataclass(frozen=True)
class Trial:
    variant: str              # folder-safe variant name, e.g. 'mac', 'mac-gau', 'n5'
    env: str                  # OGBench environment, e.g. 'cube-double'
    task: int                 # single-task id, 1-5
    seed: int                 # training seed (network init, batches, noise)
    preset: str = 'paper'     # the config preset (chapter 10)
    overrides: tuple = ()     # sorted (key, value) pairs applied on the preset

    @property
    def dataset(self): return f'{self.env}-play-singletask-task{self.task}-v0'
    @property
    def name(self): return f'{self.variant}/{self.env}-task{self.task}/seed{self.seed}'
    def spec(self) -> dict: return json.loads(json.dumps(dataclasses.asdict(self) | {'overrides': dict(self.overrides)}))
    def config(self):
        "The trial's TrainConfig (a ValueError names a bad override)."
        return make_config(self.preset, {**dict(self.overrides), 'env': self.dataset, 'seed': self.seed})

def trial_from_spec(spec: dict) -> Trial:
    return Trial(**{**spec, 'overrides': tuple(sorted(spec.get('overrides', {}).items()))})


# %%
t = Trial('mac', 'cube-double', 2, 1, 'tiny', (('agent.n_train', 2),))
test_eq((t.dataset, t.name), ('cube-double-play-singletask-task2-v0', 'mac/cube-double-task2/seed1'))
test_eq(trial_from_spec(json.loads(json.dumps(t.spec()))), t)                # survives a JSON round trip
test_eq((t.config().agent.n_train, t.config().seed, t.config().env), (2, 1, t.dataset))

# %% [markdown]
# The paper's settings that vary by environment: the *default task* of each environment (OGBench's own: task 2, and
# task 4 for the puzzles; Tables 3 and 15 run on it), MAC(FQL)'s α (Table 11) and puzzle-4x5's N_train = 32 with
# 256-wide networks (Table 8). Everything else is Table 7-8's shared setting, the `paper` preset.

# %%
#| export
TABLE2_ENVS = ('cube-single', 'cube-double', 'scene', 'puzzle-3x3', 'puzzle-4x4')   # Section 5.2's five environments
DEFAULT_TASK = {e: 4 if e in ('puzzle-3x3', 'puzzle-4x4') else 2 for e in ENVS}     # OGBench's `-singletask-v0` task
FQL_ALPHA = {'cube-single': 1.0, 'cube-double': 0.3, 'scene': 1.0, 'puzzle-3x3': 1.0, 'puzzle-4x4': 1.0}  # Table 11
ENV_OVERRIDES = {'puzzle-4x5': {'agent.n_train': 32, 'agent.actor_hidden': (256,) * 4, 'agent.value_hidden': (256,) * 4,
                                'agent.dynamics_hidden': (256,) * 4}}              # Table 8's one exception

def env_overrides(env: str, variant_overrides: dict) -> dict:
    "The paper's per-environment settings for a variant on `env` (Tables 8 and 11)."
    out = dict(ENV_OVERRIDES.get(env, {}))
    if variant_overrides.get('agent.extraction') == 'fql' and env in FQL_ALPHA: out['agent.fql_alpha'] = FQL_ALPHA[env]
    return out


# %% [markdown]
# The named grids. `single` is the grid to narrow by hand (one variant, `--envs/--tasks/--seeds/--set.<key>`).

# %%
#| export
SEEDS = (0, 1, 2, 3)  # "averaged over 4 seeds"
GRIDS = {
    'table2': dict(variants={'mac': {}}, envs=TABLE2_ENVS, tasks='all', seeds=SEEDS,
                   about='Table 2/13: MAC on 5 envs × 5 tasks × 4 seeds'),
    'table3': dict(variants={'mac-gau': {'agent.policy': 'gaussian'}, 'mac-fql': {'agent.extraction': 'fql'}, 'mac': {}},
                   envs=TABLE2_ENVS, tasks='default', seeds=SEEDS, about='Table 3: MAC(Gau), MAC(FQL), MAC on the default tasks'),
    'table15': dict(variants={'mac-no-distill': {'agent.distill': False}, 'mac': {}}, envs=TABLE2_ENVS, tasks='default',
                    seeds=SEEDS, about='Table 15: MAC without distillation (π_ω trained by flow matching) vs MAC'),
    'fig3': dict(variants={f'n{n}': {'agent.n': n} for n in (1, 5, 10, 25)}, envs=('cube-double', 'cube-octuple'),
                 tasks='default', seeds=SEEDS, about='Figure 3: chunk lengths 1, 5, 10, 25 (single-task default tasks)'),
    'single': dict(variants={'mac': {}}, envs=('cube-single',), tasks='default', seeds=(0,), about='one variant; narrow it with flags'),
}


# %% [markdown]
# `expand_grid` turns a grid and its narrowing (the CLI's `--envs`, `--tasks`, `--seeds`, `--variants`, `--steps`,
# `--preset`, and any config key as `--set.<key>`, e.g. `--set.eval-every 1000`) into trials, in a fixed order.
# Overrides apply in the order preset < environment (Tables 8, 11) < variant < `--set.<key>` < `--steps`, and every
# trial's config is built here, so a bad value is reported before anything
# runs (`make_config` names it), as a failed trial that does not stop the others.

# %%
#| export
def expand_grid(grid: str = 'single', envs=None, tasks=None, seeds=None, variants=None, preset: str = 'paper',
                overrides: dict | None = None, steps: int | None = None) -> list[Trial]:
    "The trials of a named grid, narrowed: variants × envs × tasks × seeds, each with its overrides."
    if grid not in GRIDS: raise ValueError(f'unknown grid {grid!r}: choose one of {", ".join(GRIDS)}')
    if preset not in PRESETS: raise ValueError(f'unknown preset {preset!r}: choose one of {", ".join(PRESETS)}')
    g = GRIDS[grid]
    bad = [v for v in variants or () if v not in g['variants']]
    if bad: raise ValueError(f'grid {grid!r} has no variant {", ".join(bad)}: its variants are {", ".join(g["variants"])}')
    bad = [e for e in envs or () if e not in ENVS]
    if bad: raise ValueError(f'unknown environment {", ".join(bad)}: supported are {", ".join(ENVS)}')
    bad = [k for k in tasks or () if k != 'default' and not 1 <= int(k) <= 5]
    if bad: raise ValueError(f'tasks must be 1 … 5 or "default", got {bad}')
    if {'env', 'seed'} & set(overrides or {}):   # Trial.config sets them from the grid: an override would be dropped silently
        raise ValueError("a sweep sets each trial's env and seed from the grid: use --envs/--tasks and --seeds, not --set.env/--set.seed")
    over = dict(overrides or {}) | ({'steps': steps} if steps is not None else {})
    out = []
    for v in variants or g['variants']:
        for e in envs or g['envs']:
            ks = tasks or ([DEFAULT_TASK[e]] if g['tasks'] == 'default' else [1, 2, 3, 4, 5])
            for k in dict.fromkeys(DEFAULT_TASK[e] if k == 'default' else int(k) for k in ks):
                for s in seeds if seeds is not None else g['seeds']:
                    o = env_overrides(e, g['variants'][v]) | g['variants'][v] | over
                    out.append(Trial(v, e, k, int(s), preset, tuple(sorted(o.items()))))
    return out


# %% [markdown]
# The paper's grids have the paper's sizes, MAC(FQL) gets Table 11's α per environment, and narrowing gives a
# CPU-sized subset.

# %%
test_eq(len(expand_grid('table2')), 5 * 5 * 4)
t3 = expand_grid('table3')
test_eq(len(t3), 3 * 5 * 4); test_eq({t.task for t in t3 if t.env.startswith('puzzle')}, {4})
fql = {t.env: dict(t.overrides)['agent.fql_alpha'] for t in t3 if t.variant == 'mac-fql'}
test_eq(fql, FQL_ALPHA)
test_eq({t.config().agent.distill for t in expand_grid('table15', seeds=[0])}, {False, True})
test_eq(sorted({t.config().agent.n for t in expand_grid('fig3', seeds=[0])}), [1, 5, 10, 25])
small = expand_grid('table2', envs=['cube-single'], tasks=[2, 3], seeds=[0, 1], preset='cpu', steps=500, overrides={'eval_every': 250})
test_eq([t.name for t in small], ['mac/cube-single-task2/seed0', 'mac/cube-single-task2/seed1', 'mac/cube-single-task3/seed0', 'mac/cube-single-task3/seed1'])
test_eq((small[0].config().steps, small[0].config().eval_every, small[0].config().agent.actor_hidden), (500, 250, (256,) * 4))
test_eq(expand_grid('table3', envs=['puzzle-3x3'], tasks=['default'], seeds=[0], variants=['mac'])[0].task, 4)
test_fail(lambda: expand_grid('table4'), contains="unknown grid 'table4'")
test_fail(lambda: expand_grid('table3', variants=['mac-ddpm']), contains='its variants are mac-gau, mac-fql, mac')
test_fail(lambda: expand_grid('table2', envs=['cube-sextuple']), contains='supported are cube-single')
test_fail(lambda: expand_grid('table2', tasks=[7]), contains='tasks must be 1 … 5')


# %% [markdown]
# ## One trial, and what its run folder says about it
#
# `run_trial` is the unit of work Ray schedules: it builds the trial's config, makes sure the dataset exists (one
# generation per dataset and machine, under a file lock, since several trials on one node share it), trains with
# chapter 10's `Trainer`, resuming from the checkpoint when there is one, writes the run's `provenance.json` as
# `mac_train` does, and records the outcome in `trial.json`. The trial's own errors (a bad override, a NaN loss, a
# dataset problem) are caught and recorded with their message, so one trial cannot stop the others. Another process
# training the same folder (`RunFolderBusy`) is reported but not recorded: that folder's record belongs to the other
# process.

# %%
#| export
@contextmanager
def _file_lock(path: Path):
    "An exclusive flock on `path` for the `with` block (dropped by the kernel if the process dies)."
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try: yield
        finally: fcntl.flock(f, fcntl.LOCK_UN)

def trial_dir(out, trial: Trial) -> Path: return Path(out) / 'runs' / trial.name

def _read_json(p):
    try: return json.loads(Path(p).read_text())
    except (OSError, ValueError): return None


# %%
#| export
def run_trial(spec: dict, out: str, cpus: float = 1, command: str | None = None, progress: bool = False) -> dict:
    "Train one trial in its run folder (resuming from its checkpoint) and record the outcome in trial.json; the trial's errors are returned, not raised."
    import torch, warnings
    warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')   # float32 Box notices, once per env
    trial, t0 = trial_from_spec(spec), time.time()
    d = trial_dir(out, trial); torch.set_num_threads(max(1, int(cpus)))
    rec = dict(trial=trial.name, spec=spec, host=platform.node(), pid=os.getpid(), started_at=time.strftime('%Y-%m-%dT%H:%M:%S%z'))
    try:
        cfg = trial.config()
        cfg = dataclasses.replace(cfg, eval_workers=cfg.eval_workers or max(1, int(cpus)))  # this trial's CPUs, not the node's
        with _file_lock(Path(os.path.expanduser(cfg.dataset_dir)) / f'.{trial.dataset}.lock'):
            ensure_dataset(trial.dataset, cfg.dataset_episodes, cfg.dataset_dir, workers=max(1, int(cpus)), progress=progress)
        rec['resumed_from'] = None
        if (d / 'checkpoint.pt').exists(): rec['resumed_from'] = int(torch.load(d / 'checkpoint.pt', weights_only=True)['step'])
        tr = Trainer(cfg, d, resume=rec['resumed_from'] is not None, progress=progress)
        try:
            res = tr.run()
            write_json(d / 'provenance.json', provenance(seed=cfg.seed, **res['time'], device=tr.device, command=command,
                                                       preset=trial.preset, trial=spec, config=config_to_dict(cfg), final=res))
        finally: tr.close()
        rec |= dict(status='done', step=tr.step, eval=res['eval'], final=res['final'], losses=res['losses'])
    except RunFolderBusy as e: return rec | dict(status='busy', error=str(e), wall_s=round(time.time() - t0, 2))
    except Exception as e:
        rec |= dict(status='failed', error=f'{type(e).__name__}: {" ".join(str(e).split())}', traceback=traceback.format_exc()[-4000:])
    rec['wall_s'] = round(time.time() - t0, 2)
    write_json(d / 'trial.json', rec)
    return rec


# %% [markdown]
# Whether a trial still has work is read from its folder alone: **done** when `trial.json` says so *for the same
# spec*; **failed** when it recorded an error for the same spec (the same trial would fail the same way: seeds are
# fixed; `--retry-failed` runs it again); **resume** when a checkpoint exists; **new** otherwise. A record for another
# spec (say more `--steps`) does not count: the trial resumes from its checkpoint, and `Trainer` refuses, with its
# own message, a change that cannot be resumed.

# %%
#| export
def trial_state(out, trial: Trial) -> str:
    "'done', 'failed', 'resume' (a checkpoint exists) or 'new', read from the trial's run folder."
    d = trial_dir(out, trial); rec = _read_json(d / 'trial.json') or {}
    if rec.get('spec') == trial.spec() and rec.get('status') in ('done', 'failed'): return rec['status']
    return 'resume' if (d / 'checkpoint.pt').exists() else 'new'


# %% [markdown]
# A tiny trial in this process (no Ray): it runs, its folder then says `done`; a trial with a bad override fails with
# `make_config`'s message and nothing raised; asking for more steps resumes the finished run from its checkpoint.

# %%
tmp = Path(tempfile.mkdtemp()); data_dir = tmp / 'data'
from mac.data import generate_dataset
generate_dataset('cube-single', 2, data_dir, seed=0, max_episode_steps=60, progress=False)   # 2 + 1 short episodes
base = {'dataset_dir': str(data_dir), 'device': 'cpu', 'steps': 20}
good = expand_grid('single', seeds=[0], preset='tiny', overrides=base)[0]
test_eq(trial_state(tmp / 'sw', good), 'new')
rec = run_trial(good.spec(), str(tmp / 'sw'))
test_eq((rec['status'], rec['step'], rec['resumed_from']), ('done', 20, None))
test_eq(trial_state(tmp / 'sw', good), 'done')
bad = expand_grid('single', seeds=[1], preset='tiny', overrides=base | {'agent.widht': 3})[0]
rec = run_trial(bad.spec(), str(tmp / 'sw'))
test_eq(rec['status'], 'failed'); assert "unknown config key 'agent.widht'" in rec['error'], rec['error']
test_eq(trial_state(tmp / 'sw', bad), 'failed')
longer = expand_grid('single', seeds=[0], preset='tiny', overrides=base | {'steps': 40})[0]
test_eq(trial_state(tmp / 'sw', longer), 'resume')                       # another spec, same folder: resume it
rec = run_trial(longer.spec(), str(tmp / 'sw'))
test_eq((rec['status'], rec['step'], rec['resumed_from']), ('done', 40, 20))

# %% [markdown]
# ## The sweep on Ray
#
# `run_sweep` reads every trial's state, submits the unfinished ones as Ray tasks declaring their resources
# (`num_cpus`, and a GPU fraction: four MAC runs at the `cpu` preset share one GPU well), and records each outcome as
# it arrives. Locally (no `--address`) Ray starts on this machine with its cores; with `--address` it joins a
# cluster, whose nodes must see the sweep folder and the dataset folder at the same paths (a shared filesystem) and
# have `mac` installed. A task whose worker dies (a node lost, memory) is retried by Ray up to twice, and each retry
# resumes from the last checkpoint; if it still cannot finish it is reported `lost` and the next run of the sweep
# takes it up again. Ctrl-C, or killing the sweep, stops the tasks; the next run skips the finished trials and
# resumes the rest from their checkpoints. The real runs are in `tests/test_sweep.py` (they start and stop a local
# Ray); this notebook stays Ray-free.

# %% [markdown]
# **Killed without warning.** `tools/sweep_kill_demo.py` shows what `kill -9` of the sweep's driver costs: one
# `tiny` trial of 600 steps with a checkpoint every 100, the driver killed once the trial's log reaches step 250, the
# same command run again, and the same trial run uninterrupted elsewhere. The trial runs in a Ray worker, not in the
# driver, so it does not stop at once: Ray's raylet notices the dead driver and kills its workers, and until then the
# trial goes on training and checkpointing. The restart resumes from the last checkpoint the trial wrote, so what is
# lost is at most the steps after that checkpoint; the final weights equal the uninterrupted run's to the bit (CPU,
# same seed). The committed record (`results/sweep_kill/`, with provenance):

# %%
#| echo: false
K = Path('../results/sweep_kill/summary.json')
if K.exists():
    k = json.loads(K.read_text())
    print(f"driver killed when the log was at step {k['logged_step_at_kill']} (last checkpoint: {k['checkpoint_step_at_kill']}); the trial lived "
          f"{k['trial_process_outlived_driver_s']} s longer, logging to step {k['logged_step_when_folder_free']} (checkpoint {k['checkpoint_step_when_folder_free']})\n"
          f"restart resumed from step {k['resumed_from']}: {k['steps_lost']} steps done twice (checkpoint every {k['ckpt_every']}); final weights equal "
          f"the uninterrupted run's: {k['final_weights_equal_uninterrupted']}\nRay helpers left after the kill: {', '.join(k['ray_processes_when_folder_free']) or 'none'}, "
          f"all gone {k['ray_processes_gone_after_s']} s after it")
else: print('not run yet: python tools/sweep_kill_demo.py')


# %%
#| export
def _ray():
    try: import ray
    except ImportError: raise RuntimeError("mac_sweep needs Ray: pip install -e '.[ray]' (or pip install ray)") from None
    return ray

def _ray_session(address=None):
    "Ray, started here (locally, or joining `address`) unless this process already runs it; True when we started it."
    ray = _ray()
    if ray.is_initialized(): return ray, False
    ray.init(address=address, include_dashboard=False, logging_level='WARNING')
    return ray, True

def _plan(out, trials, retry_failed: bool) -> tuple[dict, dict]:
    "The trials to run (state 'new', 'resume', or 'failed' when retried) and every trial's state."
    states = {t: trial_state(out, t) for t in trials}
    return {t: s for t, s in states.items() if s in ('new', 'resume') or (retry_failed and s == 'failed')}, states


# %%
#| export
def _run_on_ray(todo: list[Trial], out: Path, cpus: float, gpus: float, address, command: str, say) -> dict:
    "Submit each trial as a Ray task declaring its resources; collect outcomes as they arrive (a dead worker: 'lost')."
    ray, started = _ray_session(address); outcomes = {}
    try:
        task = ray.remote(run_trial).options(num_cpus=cpus, num_gpus=gpus, max_retries=2, retry_exceptions=False)
        refs = {task.remote(t.spec(), str(out), cpus, command): t for t in todo}
        while refs:
            [ref], _ = ray.wait(list(refs), num_returns=1)
            t = refs.pop(ref)
            try: rec = ray.get(ref)
            except ray.exceptions.RayError as e:   # the worker or node died (after Ray's retries): run again next time
                rec = dict(trial=t.name, spec=t.spec(), status='lost', error=f'{type(e).__name__}: {" ".join(str(e).split())[:500]}')
                write_json(trial_dir(out, t) / 'trial.json', rec)
            outcomes[t.name] = rec
            say(f'[{len(outcomes)}/{len(todo)}] {t.name}: {_describe(rec)}')
    finally:
        if started: ray.shutdown()
    return outcomes


# %%
#| export
def run_sweep(trials: list[Trial], out, cpus_per_trial: float = 2, gpus_per_trial: float = 0, address: str | None = None,
              retry_failed: bool = False, metric: str = 'eval', progress: bool = True, command: str | None = None) -> dict:
    "Run the unfinished trials as Ray tasks (skip finished ones, resume from checkpoints, isolate failures), then aggregate."
    out = Path(out).resolve(); say = print if progress else (lambda *a, **k: None)
    command = command or ' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    todo, states = _plan(out, trials, retry_failed)
    n = {s: sum(v == s for v in states.values()) for s in ('done', 'resume', 'new', 'failed')}
    say(f'{len(trials)} trials: {n["done"]} done (skipped), {n["resume"]} to resume, {n["new"]} new, {n["failed"]} failed before'
        + ('' if retry_failed or not n['failed'] else ' (skipped; --retry-failed runs them again)'))
    write_json(out / 'sweep.json', dict(command=command, trials=[t.spec() for t in trials], cpus_per_trial=cpus_per_trial,
                                        gpus_per_trial=gpus_per_trial, address=address))
    outcomes = _run_on_ray(todo, out, cpus_per_trial, gpus_per_trial, address, command, say) if todo else {}
    summary = write_results(out, trials, metric)
    failed = {t.name: (_read_json(trial_dir(out, t) / 'trial.json') or {}).get('error') for t in trials if states[t] == 'failed' and t not in todo}
    failed |= {k: r.get('error') for k, r in outcomes.items() if r['status'] != 'done'}
    return dict(ran=len(todo), skipped=len(trials) - len(todo), outcomes=outcomes, failed=failed, summary=summary)

def _describe(rec: dict) -> str:
    if rec['status'] != 'done': return f"{rec['status'].upper()}: {rec.get('error')}"
    ev = rec.get('final') or rec.get('eval')
    return f"done at step {rec['step']}" + (f", success {ev['success']:.0%}" if ev else '') + f" ({rec['wall_s'] / 60:.1f} min)"


# %% [markdown]
# ## Aggregation: Table 2, Figure 6, and where every number comes from
#
# Each trial contributes its success rate: by default the last training evaluation (the paper's protocol: 15
# episodes at the final step, `eval.csv`), or with `metric='final'` the final evaluation on fresh seeds
# (`final_eval.json`, chapter 10). Only finished trials count. Then, as in Tables 2 and 13:
#
# 1. per (variant, env, task): mean ± std over seeds;
# 2. per (variant, env): each seed's average over the env's tasks, then mean ± std over seeds. That is how Table 13's
#    "overall" rows come out: cube-double's tasks are 82, 50, 55, 28, 50 (std across tasks ≈ 17), its overall row
#    53 ± 4, so the ± is across seeds, not tasks. Only seeds that finished every task enter this row.
#
# Standard deviations are the population's (ddof = 0; the paper does not say). Every cell lists its runs (run folder,
# `provenance.json`, commit, the value each contributed) in `table.json`.

# %%
#| export
def collect(out, trials: list[Trial], metric: str = 'eval') -> list[dict]:
    "One row per trial: its state, success (metric 'eval': last eval.csv row; 'final': final_eval.json), curve and provenance."
    if metric not in ('eval', 'final'): raise ValueError(f"metric must be 'eval' or 'final', got {metric!r}")
    out, rows = Path(out), []
    for t in trials:
        d = trial_dir(out, t); rec = _read_json(d / 'trial.json') or {}
        status = rec.get('status', 'pending') if rec.get('spec') == t.spec() else ('resume' if (d / 'checkpoint.pt').exists() else 'pending')
        curve = {int(r['step']): float(r['success']) for r in read_csv(d / 'eval.csv')}
        fin, prov = _read_json(d / 'final_eval.json'), _read_json(d / 'provenance.json') or {}
        src = (fin['success'], fin['step']) if metric == 'final' and fin else (curve[max(curve)], max(curve)) if metric == 'eval' and curve else (None, None)
        rows.append(dict(trial=t.name, variant=t.variant, env=t.env, task=t.task, seed=t.seed, status=status,
                         success=src[0] if status == 'done' else None, step=src[1], run=str(d.relative_to(out)),
                         commit=prov.get('commit'), mac_source_sha256=prov.get('mac_source_sha256'), error=rec.get('error'), curve=curve))
    return rows


# %%
#| export
def _cell(variant, env, task, values, runs) -> dict:
    v = np.asarray(values, dtype=float)
    return dict(variant=variant, env=env, task=task, mean=float(v.mean()), std=float(v.std()), n=len(v),
                runs=[dict(run=r['run'], provenance=f"{r['run']}/provenance.json", commit=r['commit'], seed=r['seed'],
                           task=r['task'], success=r['success']) for r in runs])

def table_cells(rows: list[dict]) -> list[dict]:
    "Table 2/13 cells: mean ± std over seeds per (variant, env, task), and per (variant, env) with several tasks over seeds of each seed's task average."
    g = defaultdict(dict)   # (variant, env, task) → {seed: row}
    for r in rows:
        if r['status'] == 'done' and r['success'] is not None: g[(r['variant'], r['env'], r['task'])][r['seed']] = r
    cells = [_cell(v, e, k, [r['success'] for r in by.values()], list(by.values())) for (v, e, k), by in g.items()]
    for v, e in dict.fromkeys((v, e) for v, e, _ in g):
        tasks = [k for vv, ee, k in g if (vv, ee) == (v, e)]
        seeds = sorted(set.intersection(*(set(g[(v, e, k)]) for k in tasks)))
        if len(tasks) > 1 and seeds:   # overall_s = mean_k success[k, s]; report mean_s ± std_s
            cells.append(_cell(v, e, 'overall', [np.mean([g[(v, e, k)][s]['success'] for k in tasks]) for s in seeds],
                               [g[(v, e, k)][s] for k in tasks for s in seeds]) | dict(tasks=len(tasks)))
    return cells


# %% [markdown]
# Checked against a hand computation on made-up run folders: two tasks, three seeds, a pending trial that must not
# count, and a seed that finished one task only (it enters its task's cell, not the env's average).

# %%
def fake_run(out, t, curve, status='done', prov=True):
    d = trial_dir(out, t); d.mkdir(parents=True, exist_ok=True)
    write_csv(d / 'eval.csv', [dict(step=s, success=v) for s, v in curve.items()])
    write_json(d / 'trial.json', dict(spec=t.spec(), status=status))
    if prov: write_json(d / 'provenance.json', dict(commit='abc123', mac_source_sha256='f00'))

agg = tmp / 'agg'; trials = expand_grid('table2', envs=['cube-single'], tasks=[1, 2], seeds=[0, 1, 2], preset='tiny')
S = {(1, 0): [.2, .6], (1, 1): [.4, .8], (1, 2): [.0, 1.], (2, 0): [.0, .2], (2, 1): [.2, .4]}   # (task, seed) → success at steps 10, 20
for t in trials:
    if (t.task, t.seed) in S: fake_run(agg, t, dict(zip((10, 20), S[t.task, t.seed])))
fake_run(agg, expand_grid('table2', envs=['cube-single'], tasks=[2], seeds=[2], preset='tiny')[0], {10: 1., 20: 1.}, status='failed')
rows = collect(agg, trials)
cells = {(c['task']): c for c in table_cells(rows)}
test_close(cells[1]['mean'], np.mean([.6, .8, 1.])); test_close(cells[1]['std'], np.std([.6, .8, 1.]))
test_eq((cells[2]['n'], cells['overall']['n'], cells['overall']['tasks']), (2, 2, 2))           # the failed seed 2 is out
test_close(cells['overall']['mean'], np.mean([(.6 + .2) / 2, (.8 + .4) / 2]))                   # seeds 0 and 1: both tasks
test_close(cells['overall']['std'], np.std([(.6 + .2) / 2, (.8 + .4) / 2]))
test_eq(sorted(r['run'] for r in cells['overall']['runs']), sorted(f'runs/mac/cube-single-task{k}/seed{s}' for k in (1, 2) for s in (0, 1)))
test_eq(cells[1]['runs'][0]['provenance'], 'runs/mac/cube-single-task1/seed0/provenance.json')


# %% [markdown]
# Learning curves (Figure 6): per (variant, env), each seed's success averaged over the env's tasks at each
# evaluation step, then mean ± std over seeds.

# %%
#| export
def learning_curves(rows: list[dict]) -> list[dict]:
    "Figure 6: per (variant, env, step), mean ± std over seeds of the success averaged over the env's tasks."
    per = defaultdict(lambda: defaultdict(dict))   # (variant, env) → seed → task → {step: success}
    for r in rows:
        if r['status'] == 'done' and r['curve']: per[(r['variant'], r['env'])][r['seed']][r['task']] = r['curve']
    out = []
    for (v, e), seeds in per.items():
        avg = {s: {st: np.mean([c[st] for c in ts.values()]) for st in set.intersection(*(set(c) for c in ts.values()))}
               for s, ts in seeds.items()}                        # seed → step → mean over tasks
        for st in sorted(set().union(*avg.values())):
            vals = [a[st] for a in avg.values() if st in a]
            out.append(dict(variant=v, env=e, step=st, mean=float(np.mean(vals)), std=float(np.std(vals)), seeds=len(vals)))
    return out


# %%
curves = {(c['step']): c for c in learning_curves(rows)}
test_close(curves[20]['mean'], np.mean([(.6 + .2) / 2, (.8 + .4) / 2, 1.]))   # seed 2 finished task 1 only: its own average
test_eq((curves[10]['seeds'], sorted(curves)), (3, [10, 20]))


# %% [markdown]
# `write_results` writes what a reader of the sweep needs: `results.csv` (one row per trial, with its state, error
# and commit), `table.md` (the paper's layout: rows env and task, with an "overall" row per env when it has several
# tasks; columns the variants; success in %), `table.csv` and `table.json` (each cell with its runs and their
# provenance files), `curves.csv` and `curves.png`.

# %%
#| export
def format_table(cells: list[dict], variants: list[str], envs: list[str]) -> str:
    "Markdown table in the paper's layout: success in %, mean ± std over seeds."
    by = {(c['variant'], c['env'], c['task']): c for c in cells}
    lines = ['| env | task | ' + ' | '.join(variants) + ' |', '|---|---|' + '---|' * len(variants)]
    for e in envs:
        tasks = sorted({c['task'] for c in cells if c['env'] == e and c['task'] != 'overall'})
        for k in tasks + (['overall'] if len(tasks) > 1 else []):
            cell = lambda v: (f"{100 * by[v, e, k]['mean']:.0f} ± {100 * by[v, e, k]['std']:.0f}" if (v, e, k) in by else '–')
            lines.append(f'| {e} | {k if k == "overall" else f"task{k}"} | ' + ' | '.join(cell(v) for v in variants) + ' |')
    return '\n'.join(lines) + '\n'

def plot_curves(curves: list[dict], path):
    "Figure 6 style: one panel per env, a line per variant, shaded mean ± std over seeds."
    from matplotlib.figure import Figure   # no pyplot: no backend switch, safe in Ray workers and notebooks
    envs = list(dict.fromkeys(c['env'] for c in curves))
    fig = Figure(figsize=(3.2 * max(len(envs), 1), 2.8), dpi=100); axs = fig.subplots(1, max(len(envs), 1), squeeze=False)
    for ax, e in zip(axs[0], envs):
        for v in dict.fromkeys(c['variant'] for c in curves if c['env'] == e):
            cs = [c for c in curves if (c['env'], c['variant']) == (e, v)]
            x, m, s = (np.array([c[k] for c in cs], dtype=float) for k in ('step', 'mean', 'std'))
            ax.plot(x, 100 * m, label=v); ax.fill_between(x, 100 * (m - s), 100 * (m + s), alpha=0.25)
        ax.set(title=e, xlabel='gradient steps', ylabel='success (%)', ylim=(-3, 103)); ax.legend(fontsize=7)
    fig.suptitle('Success during training, mean ± std over seeds'); fig.tight_layout(); fig.savefig(path)


# %%
#| export
def write_results(out, trials: list[Trial], metric: str = 'eval') -> dict:
    "Aggregate a sweep folder: results.csv, table.{md,csv,json}, curves.{csv,png}; returns the cells and curves."
    out = Path(out); rows = collect(out, trials, metric)
    cells, curves = table_cells(rows), learning_curves(rows)
    variants, envs = list(dict.fromkeys(t.variant for t in trials)), list(dict.fromkeys(t.env for t in trials))
    write_csv(out / 'results.csv', [{k: v for k, v in r.items() if k != 'curve'} for r in rows])
    if cells:
        write_csv(out / 'table.csv', [{k: v for k, v in c.items() if k != 'runs'} for c in cells])
        md = format_table(cells, variants, envs)
        (out / 'table.md').write_text(f'Success (%), mean ± std over seeds ({metric} metric); runs behind every cell: table.json\n\n{md}')
    write_json(out / 'table.json', dict(metric=metric, cells=cells, provenance=provenance(command=None)))
    if curves: write_csv(out / 'curves.csv', curves); plot_curves(curves, out / 'curves.png')
    return dict(rows=rows, cells=cells, curves=curves, table=format_table(cells, variants, envs) if cells else '')


# %%
res = write_results(agg, trials)
print(res['table'])
assert (agg / 'curves.png').exists() and 'cube-single | overall | 50 ± 10' in res['table'], res['table']
test_eq(json.loads((agg / 'table.json').read_text())['cells'][0]['runs'][0]['commit'], 'abc123')
test_eq([r['status'] for r in read_csv(agg / 'results.csv')].count('failed'), 1)

# %%
from IPython.display import Image; Image(agg / 'curves.png')


# %% [markdown]
# ## Large datasets as many files, on Ray
#
# OGBench's large datasets (e.g. `cube-double-play-100m-v0/`) are 100 files `cube-double-play-v0-000.npz` …
# `-099.npz` of 1000 trajectories, each with its `-000-val.npz` twin. `generate_shards` makes such a folder with one
# Ray task per file. Episode `j` of file `i` is chapter 2's `collect_episode(cfg, i·(E + V) + j)` (E training and V =
# E // 10 validation episodes per file): it depends on the seed and its index only, so the files do not depend on
# the number of workers or machines, and file 0 is exactly `generate_dataset`'s single-file dataset with the same
# seed. Files are written atomically (validation twin first), so a killed run leaves whole files or none; a rerun
# skips every file pair that validates with the expected episode counts and regenerates the rest. A `manifest.json`
# records the settings, and a rerun with other settings is refused (nothing changed) unless `force`.

# %%
#| export
def shard_indices(i: int, episodes: int) -> tuple[range, range]:
    "The episode indices of file i's training and validation parts: consecutive blocks of E + V, V = max(E // 10, 1)."
    V = max(episodes // 10, 1); b = i * (episodes + V)
    return range(b, b + episodes), range(b + episodes, b + episodes + V)

def shard_folder(name: str, files: int, episodes: int, max_episode_steps: int, dataset_dir=DEFAULT_DATASET_DIR) -> Path:
    "OGBench's naming: <env>-<kind>-<size>-v0, the size in transitions (100 files × 1000 × 1001 steps: '100m')."
    spec, n = parse_name(name), files * episodes * max_episode_steps
    size = f'{round(n / 1e9)}b' if n >= 1e9 else f'{round(n / 1e6)}m' if n >= 1e6 else f'{max(round(n / 1e3), 1)}k'
    return Path(os.path.expanduser(str(dataset_dir))) / f'{spec.env}-{spec.kind}-{size}-v0'

def shard_paths(folder: Path, name: str, i: int) -> tuple[Path, Path]:
    stem = parse_name(name).dataset
    return folder / f'{stem}-{i:03d}.npz', folder / f'{stem}-{i:03d}-val.npz'


# %%
test_eq([list(r) for r in shard_indices(0, 20)], [list(range(20)), [20, 21]])
test_eq(shard_indices(3, 1000)[1], range(3 * 1100 + 1000, 3 * 1100 + 1100))
test_eq(shard_folder('cube-double', 100, 1000, 1001, '/d'), Path('/d/cube-double-play-100m-v0'))
test_eq(shard_paths(Path('/d/x'), 'cube-double', 7), (Path('/d/x/cube-double-play-v0-007.npz'), Path('/d/x/cube-double-play-v0-007-val.npz')))


# %%
#| export
def _shard_ok(path: Path, episodes: int) -> bool:
    try: return validate_dataset(path)['episodes'] == episodes
    except DatasetError: return False

def generate_shard(cfg: GenConfig, i: int, episodes: int, folder: str, name: str) -> dict:
    "File i (and its -val twin) of a sharded dataset; skipped when both validate with the expected episode counts."
    train, val = shard_paths(Path(folder), name, i); tr, va = shard_indices(i, episodes)
    if _shard_ok(train, len(tr)) and _shard_ok(val, len(va)): return dict(file=i, skipped=True)
    t0 = time.time(); eps = [collect_episode(cfg, j) for j in (*tr, *va)]
    save_npz(val, merge_episodes(eps[len(tr):])); save_npz(train, merge_episodes(eps[:len(tr)]))   # train, the file a loader looks for, last
    return dict(file=i, skipped=False, steps=sum(len(e['actions']) for e in eps), wall_s=round(time.time() - t0, 2))


# %% [markdown]
# `generate_shards` writes the manifest, then runs `generate_shard` for every file: as Ray tasks (one CPU each) by
# default, or in this process with `use_ray=False` (the reference the tests compare the Ray result with).

# %%
#| export
def generate_shards(name: str, files: int, episodes: int, dataset_dir=DEFAULT_DATASET_DIR, seed: int = 0, max_episode_steps: int = 1001,
                    folder=None, force: bool = False, use_ray: bool = True, address: str | None = None, progress: bool = True, **gen_kw) -> Path:
    "A dataset as `files` files of `episodes` episodes (+ -val twins), one Ray task per file; resumable and worker-independent."
    spec = parse_name(name)
    if files < 1 or episodes < 1: raise DatasetError(f'files and episodes must be >= 1, got {files} and {episodes}')
    if spec.kind == 'noisy': gen_kw = NOISY_GEN_KW | gen_kw   # chapter 2's noisy recipe
    cfg = GenConfig(spec.env, spec.kind, seed, max_episode_steps, **gen_kw)
    folder = Path(folder) if folder else shard_folder(name, files, episodes, max_episode_steps, dataset_dir)
    manifest = dict(generator='mac.sweep.generate_shards', dataset=spec.dataset, episodes_per_file=episodes,
                    val_episodes_per_file=max(episodes // 10, 1), **{k: v for k, v in vars(cfg).items() if k != 'env'})
    old = _read_json(folder / 'manifest.json')
    if old and not force and any(old.get(k) != v for k, v in manifest.items()):
        raise DatasetError(f'{folder} holds a dataset made with other settings ({old}): nothing was changed. '
                           f'Pass force=True (CLI: --force) to regenerate its files, or choose another folder')
    write_json(folder / 'manifest.json', manifest | dict(files=max(files, (old or {}).get('files', 0) if not force else files)))
    say, t0 = (print if progress else (lambda *a, **k: None)), time.time()
    if force:
        for i in range(files):
            for p in shard_paths(folder, name, i): p.unlink(missing_ok=True)
    if not use_ray: done = [generate_shard(cfg, i, episodes, str(folder), name) for i in range(files)]
    else:
        ray, started = _ray_session(address)
        try:
            task = ray.remote(generate_shard).options(num_cpus=1, max_retries=2)
            refs, done = [task.remote(cfg, i, episodes, str(folder), name) for i in range(files)], []
            while refs:
                ready, refs = ray.wait(refs, num_returns=1); done.append(ray.get(ready[0]))
                say(f"[{len(done)}/{files}] file {done[-1]['file']:03d}: " + ('valid, skipped' if done[-1]['skipped'] else f"{done[-1]['steps']} steps in {done[-1]['wall_s']:.0f}s"))
        finally:
            if started: ray.shutdown()
    made = [d for d in done if not d['skipped']]
    say(f'{folder}: {files} files, {len(made)} generated, {files - len(made)} already valid ({time.time() - t0:.0f}s)')
    return folder


# %% [markdown]
# Two tiny files in this process: file 0 equals the single-file dataset of chapter 2 with the same seed, a rerun
# skips valid files, and a truncated file (a "partial" one) is regenerated, to the same bytes.

# %%
shards = generate_shards('cube-single', 2, 2, data_dir, seed=0, max_episode_steps=40, use_ray=False, progress=False)
test_eq(shards, data_dir / 'cube-single-play-1k-v0')                                 # 2 × 2 × 40 transitions, rounded up to 1k
ref_train, ref_val = generate_dataset('cube-single', 2, tmp / 'single', seed=0, max_episode_steps=40, progress=False)
f0, v0 = shard_paths(shards, 'cube-single', 0)
for a, b in ((f0, ref_train), (v0, ref_val)):
    with np.load(a) as x, np.load(b) as y: assert all(np.array_equal(x[k], y[k]) for k in y.files) and set(x.files) == set(y.files)
f1, _ = shard_paths(shards, 'cube-single', 1)
test_eq((validate_dataset(f1)['episodes'], validate_dataset(shard_paths(shards, 'cube-single', 1)[1])['episodes']), (2, 1))
with np.load(f1) as x: f1_actions = x['actions']
m0 = f0.stat().st_mtime_ns; f1.write_bytes(f1.read_bytes()[:500])                    # a partial file
generate_shards('cube-single', 2, 2, data_dir, seed=0, max_episode_steps=40, use_ray=False, progress=False)
test_eq(f0.stat().st_mtime_ns, m0)                                                    # the valid file was skipped
with np.load(f1) as x: test_eq(x['actions'], f1_actions)                            # the partial one made again, the same
test_fail(lambda: generate_shards('cube-single', 2, 2, data_dir, seed=1, max_episode_steps=40, use_ray=False, progress=False),
          contains='made with other settings')

# %% [markdown]
# ## The command line
#
# ```bash
# mac_sweep --grid table2 --out sweeps/table2                       # the paper's Table 2: 100 runs (a cluster's work)
# mac_sweep --grid table2 --envs cube-single --tasks 2 --seeds 0 1 --preset cpu --steps 2000 --out sweeps/t2-cpu
# mac_sweep --grid table3 --address auto --cpus-per-trial 4 --gpus-per-trial 0.25    # on a running Ray cluster
# mac_sweep --grid fig3 --list                                      # the trials and their state, nothing run
# mac_sweep --generate cube-double --files 100 --episodes 1000      # ~/.ogbench/data/cube-double-play-100m-v0/
# ```
#
# Run it again with the same command after a crash or Ctrl-C: finished trials are skipped, the others resume from
# their checkpoints. The exit code is 0 when every trial finished and 1 when some failed (each named with its error).
# The table, curves and `sweep.json` in `--out` describe the trials of the command that ran last, so give each grid a
# folder of its own (and aggregate a finished grid with its command plus `--aggregate`, e.g. `--metric final`).

# %%
#| export
GridName = Literal[tuple(GRIDS)]
_GRID_HELP = '; '.join(f'{k}: {g["about"]}' for k, g in GRIDS.items())

@dataclass
class _SweepArgs:
    "Sweeps of MAC training runs, and sharded dataset generation, on Ray (local by default, --address for a cluster). Rerun the same command to resume."
    grid: Annotated[GridName, tyro.conf.arg(help=_GRID_HELP)] = 'single'
    envs: tuple[str, ...] | None = None       # narrow the grid to these environments
    tasks: tuple[str, ...] | None = None      # task ids 1-5, or 'default'
    seeds: tuple[int, ...] | None = None      # narrow the grid to these seeds
    variants: tuple[str, ...] | None = None   # narrow to these of the grid's variants
    preset: PresetName = 'paper'              # every trial's preset
    steps: int | None = None                  # every trial's steps (default: the preset's)
    set: Annotated[ConfigFlags, tyro.conf.arg(name='set')] = field(default_factory=ConfigFlags)   # any config key in every trial, e.g. --set.eval-every 1000
    out: str | None = None                    # sweep folder (default sweeps/<grid>)
    address: str | None = None                # Ray cluster to join (e.g. 'auto'); default: start Ray on this machine
    cpus_per_trial: float = 2                 # CPUs each trial declares (and its torch threads)
    gpus_per_trial: float = 0                 # a fraction shares a GPU, e.g. 0.25
    retry_failed: bool = False                # run trials that failed before again
    metric: Literal['eval', 'final'] = 'eval' # 'eval': last training evaluation (paper); 'final': final_eval.json
    list: bool = False                        # print the trials and their state; run nothing
    aggregate: bool = False                   # only aggregate what is in --out
    generate: str | None = None               # generate a sharded dataset of this env instead of training (e.g. cube-double)
    files: int = 100                          # files of the sharded dataset
    episodes: int = 1000                      # episodes per file
    max_episode_steps: int = 1001             # episode length of the generated data
    seed: int = 0                             # generation seed (files do not depend on the number of workers)
    dataset_dir: str = DEFAULT_DATASET_DIR    # where --generate writes (training trials: --set.dataset-dir)
    force: bool = False                       # regenerate files made with other settings
    bench: bool = False                       # print the sweep-overhead and generation-rate figures (minutes); with --out, also write them there with provenance
    debug: bool = False                       # show the traceback of an error


# %% [markdown]
# The command turns its flags into trials (`sweep_trials` does only that, for tools that need a sweep's trial list),
# then benchmarks, generates data, lists, aggregates or runs, as the flags say:

# %%
#| export
def _trials_of(a: _SweepArgs) -> tuple[list[Trial], Path]:
    return expand_grid(a.grid, a.envs, a.tasks, a.seeds, a.variants, a.preset, flag_overrides(a.set), a.steps), Path(a.out or f'sweeps/{a.grid}')

def sweep_trials(argv: list[str]) -> tuple[list[Trial], Path]:
    "The trials and the sweep folder of the command line `mac_sweep *argv`, without running anything."
    return _trials_of(tyro.cli(_SweepArgs, args=argv, prog='mac_sweep'))

def sweep_cli(argv=None):
    "Command line: `mac_sweep --grid table2 …` runs a grid of trainings on Ray; `mac_sweep --generate ENV …` makes a sharded dataset."
    a = tyro.cli(_SweepArgs, args=argv, prog='mac_sweep')
    def body():
        if a.bench:
            t0 = time.time(); r = bench_sweep()
            if a.out: write_json(Path(a.out) / 'bench.json', r); write_json(Path(a.out) / 'provenance.json', provenance(wall_time_s=time.time() - t0))
            for k, v in r.items(): print(f'{k:30s} {round(v, 3) if isinstance(v, float) else v}')
            if a.out: print(f'wrote {a.out}/bench.json, provenance.json')
            return 0
        if a.generate:
            generate_shards(a.generate, a.files, a.episodes, a.dataset_dir, a.seed, a.max_episode_steps, force=a.force, address=a.address)
            return 0
        trials, out = _trials_of(a)
        if a.list:
            for t in trials: print(f'{trial_state(out, t):7s} {t.name}')
            return 0
        if a.aggregate: print(write_results(out, trials, a.metric)['table']); return 0
        r = run_sweep(trials, out, a.cpus_per_trial, a.gpus_per_trial, a.address, a.retry_failed, a.metric)
        print(r['summary']['table'] or 'no finished trial yet'); print(f'wrote {out}/table.md, table.json, curves.png, results.csv')
        for name, err in r['failed'].items(): print(f'FAILED {name}: {err}', file=sys.stderr)
        return 1 if r['failed'] else 0
    return run_cli('mac_sweep', body, a.debug)


# %%
test_eq(sweep_cli(['--grid', 'table2', '--envs', 'cube-sextuple', '--list']), EXIT_USAGE)
test_eq(sweep_cli(['--set.seed', '3', '--list']), EXIT_USAGE)   # the grid owns each trial's seed and env
test_eq(sweep_cli(['--grid', 'table3', '--envs', 'scene', '--seeds', '0', '--list', '--out', str(tmp / 'none')]), 0)
# `sweep_trials` names what a command line would run, so later chapters can read a sweep by the command that made it
ts, out = sweep_trials(['--grid', 'fig3', '--variants', 'n5', '--envs', 'cube-single', '--tasks', '2', '--seeds', '0', '1',
                        '--preset', 'cpu', '--set.replan-every', '0'])
test_eq(([t.name for t in ts], out), (['n5/cube-single-task2/seed0', 'n5/cube-single-task2/seed1'], Path('sweeps/fig3')))
test_eq(ts[0].spec()['overrides'], {'agent.n': 5, 'replan_every': 0})

# %% [markdown]
# ## Speed: what the sweep costs
#
# The goals are a sweep overhead within 10% of the same trials run back to back, and a generation rate of at
# least 0.9 × (single-process rate) × cores. `bench_sweep` (`mac_sweep --bench`) measures both and prints them, never
# asserts them:
#
# - **Overhead.** K trials one after another in one process against the same trials through `run_sweep` on a local
#   Ray (one trial at a time, so the difference is Ray's scheduling and the trial's start in a worker; Ray's own
#   start-up, paid once per sweep, is reported apart). The trials have the `cpu` preset's networks and batch, cut to
#   200 steps (half model pretraining, half with rollouts) and no evaluation: the shape of what a sweep runs here.
# - **Generation.** Environment steps per second of one process against `generate_shards` on all cores (two files of
#   20 episodes per core, with their `-val` twins, worker start-up and file checks included), interleaved three times;
#   medians, because this machine's speed drifts by ±10% over minutes.
#
# The figures below are the committed run on this 2-core machine with nothing else running
# (`results/sweep_bench/`, whose README lists every run of the benchmark, including the three made while it was being
# fixed). Two lessons from those runs. With the `tiny` preset's 32-unit networks at 2 threads each step is a few
# microseconds of arithmetic between thread barriers, so Ray's own processes on the same 2 cores (about a tenth of a
# core when idle) slowed training by 40-60% inside the workers: that figure measures contention on two cores, not Ray.
# And with 3 episodes per file, starting a worker (importing MuJoCo, building the env) dominates: 0.68 of the goal,
# against 0.95-1.06 with 20 episodes per file (OGBench's files hold 1000).

# %%
#| echo: false
_b = json.loads(Path('../results/sweep_bench/bench.json').read_text())
print(f"sweep of {_b['trials']} trials × {_b['steps_per_trial']} steps ({_b['preset']} networks): back to back {_b['serial_s']:.0f} s, "
      f"on Ray {_b['sweep_s']:.0f} s → overhead {_b['sweep_overhead']:.1%} ({_b['overhead_s_per_trial']:.1f} s per trial; "
      f"Ray's start-up {_b['ray_start_s']:.0f} s once per sweep)")
print(f"generation: one process {_b['steps_per_s_one_process']:.0f} steps/s, {_b['files']} files on {_b['cores']} cores "
      f"{_b['steps_per_s_sharded']:.0f} steps/s ({_b['steps_per_s_per_core']:.0f} per core) → {_b['generation_vs_goal']:.2f} × the goal "
      f"(0.9 × one × cores); medians of {_b['repeats']}, load average {_b['load_avg'][0]}")
print(f"at {_b['steps_per_s_per_core']:.0f} steps per core-second: 100M transitions ≈ {1e8 / _b['steps_per_s_per_core'] / 3600:.0f} core-hours, "
      f"1B ≈ {1e9 / _b['steps_per_s_per_core'] / 3600:.0f}")


# %% [markdown]
# Against the goals: the sweep's cost is a constant per trial, not a fraction of it, so the 10% goal holds at its
# border for these 16-second trials (6.2% and 10.0% in the two runs with the `cpu` networks) and by two orders of
# magnitude for real ones (the main job's 28,000 steps take 47 minutes). Sharded generation reaches the goal of
# 0.9 × one process × cores; the per-core rate is what sizes a cluster for OGBench's 100M- and 1B-transition datasets.

# %%
#| export
def bench_sweep(trials: int = 4, steps: int = 200, preset: str = 'cpu', files: int | None = None, episodes: int = 20, max_episode_steps: int = 1001,
                repeats: int = 3, workdir=None) -> dict:
    "Sweep overhead against back-to-back trials, and sharded generation rate against one process × cores (printed by --bench)."
    import tempfile
    from mac.data import generate_dataset
    root, cores = Path(workdir or tempfile.mkdtemp(prefix='mac-sweep-bench-')), os.cpu_count()
    files = files or 2 * cores
    generate_dataset('cube-single', 2, root / 'data', max_episode_steps=200, progress=False)
    # the preset's networks and batch (a sweep's real trials), cut to `steps`: half model pretraining, half with rollouts; no evaluation
    over = dict(dataset_dir=str(root / 'data'), device='cpu', steps=steps, pretrain_steps=steps // 2, ckpt_every=max(steps // 2, 1),
                log_every=max(steps // 4, 1), eval_every=0, eval_episodes=0, final_episodes=0, dataset_episodes=2)
    ts = expand_grid('single', seeds=list(range(trials)), preset=preset, overrides=over)
    t0 = time.perf_counter()
    for t in ts: run_trial(t.spec(), str(root / 'serial'), cpus=cores)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter(); ray, started = _ray_session(); ray_start = time.perf_counter() - t0   # reported apart: paid once per sweep
    try:
        t0 = time.perf_counter(); run_sweep(ts, root / 'ray', cpus_per_trial=cores, progress=False); swept = time.perf_counter() - t0
        cfg = GenConfig('cube-single', max_episode_steps=max_episode_steps); collect_episode(cfg, 10_000)   # env built outside the timing
        ones, manys = [], []
        for r in range(repeats):   # interleaved (one process, then all cores), medians: this machine's speed drifts
            t0 = time.perf_counter(); [collect_episode(cfg, j) for j in range(3)]; ones.append(3 * max_episode_steps / (time.perf_counter() - t0))
            t0 = time.perf_counter(); generate_shards('cube-single', files, episodes, folder=root / f'shards{r}', max_episode_steps=max_episode_steps, progress=False)
            manys.append(files * (episodes + max(episodes // 10, 1)) * max_episode_steps / (time.perf_counter() - t0))
        one, many = float(np.median(ones)), float(np.median(manys))
    finally:
        if started: ray.shutdown()
    return dict(trials=trials, preset=preset, steps_per_trial=steps, serial_s=serial, ray_start_s=ray_start, sweep_s=swept, sweep_overhead=swept / serial - 1,
                overhead_s_per_trial=(swept - serial) / trials, files=files, episodes_per_file=episodes, repeats=repeats,
                steps_per_s_one_process=one, steps_per_s_sharded=many, steps_per_s_per_core=many / cores, cores=cores,
                generation_vs_goal=many / (0.9 * one * cores), steps_per_s_one_process_each=[round(x, 1) for x in ones],
                steps_per_s_sharded_each=[round(x, 1) for x in manys],
                load_avg=[round(x, 2) for x in os.getloadavg()])


# %% [markdown]
# ## Implementation details
#
# 1. Ray core tasks, not Ray Tune (see above): a trial's run folder is the only state, so the sweep's resume is
#    chapter 10's exact resume, and a sweep folder can be re-run, listed or aggregated from any machine that sees it.
# 2. Finished means `trial.json` says `done` for the same spec; changing anything in a trial (say `--steps`) makes it
#    unfinished, and it resumes from its checkpoint when chapter 10 allows the change (steps, evaluation settings),
#    or fails with chapter 10's message when not (say a different batch size). Failed trials are not re-run by
#    default: their seeds are fixed, so they would fail the same way; `--retry-failed` re-runs them.
# 3. A worker that dies is retried by Ray twice (each retry resumes from the checkpoint); a trial still lost is
#    recorded as `lost` and taken up by the next run. Concurrent sweeps over one folder cannot train the same trial
#    twice: chapter 10's run-folder lock refuses the second, which is reported `busy` and leaves the record alone.
#    A trial cannot be paused: a worker stopped with SIGSTOP for a few minutes is taken for dead (seen on 2026-11-29:
#    Ray killed two stopped trials after 6.5 minutes and retried them; a retry resumes from the checkpoint). To free the cores for
#    a while, stop the sweep (Ctrl-C or kill) and run the same command again later.
# 4. The dataset of a trial is made (if missing) under a file lock per dataset and machine, so trials sharing a node
#    generate it once; on a cluster the dataset folder should be shared, or each node generates its own copy (the
#    same bytes: generation is seeded per episode).
# 5. `eval_workers` of 0 ("one per core") becomes the trial's CPUs, so parallel trials do not each spawn a process
#    per core of the node.
# 6. Table cells: mean ± population std over seeds; env rows: mean ± std over seeds of each seed's task average
#    (inferred from Table 13, where the overall ± is far below the spread across tasks). Only seeds that finished
#    every task of the env enter its average; the cell's `n` says how many.
# 7. Figure 3 in the paper uses the goal-conditioned cube-double and cube-octuple datasets; `mac` trains single-task
#    agents, so the `fig3` grid runs their single-task default tasks (task 2).
# 8. Sharded datasets: episode j of file i is `collect_episode(cfg, i·(E + V) + j)`, so file 0 is the single-file
#    dataset of chapter 2 and no file depends on how many there are or who made them. The noisy-dataset defaults
#    (noise 0.2, random actions 0.1) are repeated from chapter 2's `generate_dataset`, which keeps them inline.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
