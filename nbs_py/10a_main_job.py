# %% [markdown]
# # The main job
# > `make main` end to end, `diagnose` for a run that falls short, and what a CPU budget buys: the study behind the `cpu` preset.

# %%
#| default_exp main_job

# %%
#| export
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from mac.config import config_to_dict, make_config
from mac.core import EXIT_DIVERGED, EXIT_USAGE, atomic_write, provenance, read_csv, run_cli, write_json
from mac.batches import ChunkDataset
from mac.data import load_ogbench, parse_name
from mac.evaluate import _make_env, eval_env_name
from mac.evaluate import evaluate as evaluate_agent
from mac.train import FINAL_EVAL_SEED, NonFiniteLoss, RunFolderBusy, Trainer, check_fresh_seeds, load_agent

# %%
#| hide
import dataclasses, shutil, tempfile
import warnings; warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')
from fastcore.test import test_eq, test_close, test_fail
import matplotlib.pyplot as plt
from mac.train import load_checkpoint

# %% [markdown]
# The trainer of [chapter 10](10_training.ipynb) put to work: the main job that README's `make main` runs, the
# `diagnose` tool that says with numbers why a run falls short, and the measurements behind the `cpu` preset of
# [chapter 9a](09a_config.ipynb).
#
# The checks below need two finished runs; the `tiny` preset makes them in seconds on a 2-episode dataset.

# %%
tmp = Path(tempfile.mkdtemp()); data_dir = tmp / 'data'
cfg = make_config('tiny', {'dataset_dir': str(data_dir), 'device': 'cpu', 'replan_every': 0})       # whole chunks, as the `cpu` preset
Trainer(cfg, tmp / 'full', progress=False).run()                                                    # a finished tiny run
Trainer(dataclasses.replace(cfg, pretrain_steps=20, terminals=True), tmp / 'pre', progress=False).run()   # with a success net


# %% [markdown]
# ## When a run falls short: `diagnose`
#
# A run that does not succeed should say why, with numbers. `diagnose` loads a run's checkpoint and measures: success
# of the behaviour policy alone (N_test = 1) against rejection sampling (N_test = 32), on fresh evaluation seeds;
# whether the value function has learned anything state-dependent (its correlation with the dataset's discounted
# returns, and its mean on states one chunk away from solving the task against its mean on all states); and how much
# the critic's Q varies across the 32 candidates. With `terminals`, it also rolls the agent out *in its own model*
# from the evaluation's start states for an episode's length and reports how often the success net says the task
# was solved: set against the real success rate, that measures how far the model flatters the policy.
# The main job adds it to its summary when the success rate is below 50%.

# %%
#| export
def diagnose(run_dir, episodes: int = 15, seed: int = 1000, device='cpu') -> dict:
    "Numbers on what limits a run: behaviour vs rejection success, value vs Monte-Carlo returns and near success, Q spread."
    ag, norm, cfg, ck = load_agent(run_dir, device, n_test=1)                 # the behaviour policy alone
    check_fresh_seeds(cfg, seed, episodes)                                     # episodes the run's evaluations did not play
    rp = cfg.actions_per_plan                                                  # acting as the run's own evaluations do
    out = dict(step=ck['step'], eval_seeds=f'{seed}..{seed + episodes - 1}', replan_every=rp)
    out['success_N1'] = evaluate_agent(ag, norm, cfg.env, episodes, cfg.eval_workers or None, seed, replan_every=rp)['success']
    ag = load_agent(run_dir, device)[0]                                        # the agent as trained: N_test candidates
    out[f'success_N{cfg.agent.n_test}'] = evaluate_agent(ag, norm, cfg.env, episodes, cfg.eval_workers or None, seed, replan_every=rp)['success']
    _, train, _ = load_ogbench(cfg.env, cfg.dataset_dir)
    data = ChunkDataset.from_ogbench(train, norm, ret=cfg.chunk_return, device=device)
    rew = train['rewards']
    G = data.ret.returns(rew, train['masks'], data.first, data.last)   # the value's own units and MDP
    starts = data.starts.cpu().numpy(); idx = np.random.default_rng(seed).choice(starts, 2000)
    solved = rew == 0                         # steps where the task is solved (OGBench single-task reward 0)
    near = np.array([solved[t:t + cfg.agent.n].any() for t in starts]); near_idx = starts[near][:2000]
    with torch.no_grad():
        V = ag.value(data.obs[idx]).cpu().numpy()
        V_near = ag.value(data.obs[near_idx]).cpu().numpy() if len(near_idx) else np.zeros(1)
        q = ag.critic(data.obs[idx[:256]], ag.behaviour_sample(data.obs[idx[:256]], 32)).cpu().numpy()
    if cfg.terminals:  # the model's own forecast from the evaluation's start states, to set against the real success rate
        env = _make_env(eval_env_name(cfg.env)); T = env.spec.max_episode_steps   # the evaluation's own env factory
        s0 = norm(torch.as_tensor(np.stack([env.reset(seed=seed + i)[0] for i in range(episodes)]), dtype=torch.float32, device=device))
        env.close()
        g = torch.Generator(device).manual_seed(seed)
        ro = ag.rollout(s0, g, N=cfg.agent.n_test, H=-(-T // cfg.agent.n))   # acting policy, one episode's length
        out[f'imagined_success_N{cfg.agent.n_test}'] = float((1 - ro['masks'].prod(0)).mean())  # the model's verdict on the same episodes
    return out | dict(value_mean=float(V.mean()), data_return_mean=float(G[idx].mean()), value_return_corr=float(np.corrcoef(V, G[idx])[0, 1]),
                      value_near_success=float(V_near.mean()),  # states whose next chunk solves the task: should be the highest
                      q_std_across_32=float(q.std(1).mean()), q_mean=float(q.mean()), data_solved_rate=float(solved.mean()))


# %%
# diagnose acts as the run's own evaluations do: every call re-plans at the run's interval (a spy records it)
_real, intervals = evaluate_agent, []
evaluate_agent = lambda *a, **kw: (intervals.append(kw.get('replan_every', 1)), _real(*a, **kw))[1]
try: d = diagnose(tmp / 'full', episodes=1)
finally: evaluate_agent = _real
test_eq(intervals, [cfg.actions_per_plan] * 2); assert cfg.actions_per_plan != 1, 'the check needs a run that does not re-plan every step'
assert {'success_N1', 'success_N4', 'value_return_corr', 'q_std_across_32'} <= set(d)
test_eq(d['eval_seeds'], '1000..1000')
# The imagined success is the success net's verdict: forge two copies of the run whose success net says "solved"
# everywhere (a large positive logit) or nowhere; the diagnosis must read 100% and 0% for them.
ck = load_checkpoint(tmp / 'pre' / 'checkpoint.pt')
last_bias = [k for k in ck['agent'] if k.startswith('success.') and k.endswith('.bias')][-1]   # the output layer's
for logit, expected in ((50.0, 1.0), (-50.0, 0.0)):
    ck['agent'][last_bias] = torch.full_like(ck['agent'][last_bias], logit); (tmp / f'forged{expected}').mkdir(exist_ok=True)
    torch.save(ck, tmp / f'forged{expected}' / 'checkpoint.pt')
    test_eq(diagnose(tmp / f'forged{expected}', episodes=2)['imagined_success_N4'], expected)

# %% [markdown]
# ## Where a cube episode fails: `cube_phases`
#
# `diagnose` says *that* the agent succeeds inside its model far more often than in MuJoCo; it does not say where a
# real episode goes wrong. On cube-single the task has three stages, pick the cube up, carry it, put it down within 4 cm
# of the target (OGBench's success test: the cube's centre within 0.04 of its target), and the cube's position, which
# OGBench reports at every step (`info['privileged/block_0_pos']`), tells how far each episode got. A failed episode
# falls in the first stage it never completed: it never moved the cube (by more than 1 cm), moved it without lifting
# it (by more than 1 cm; pushed or knocked), lifted it but never brought it within 8 cm (twice the success radius) of
# the target, or came that close without placing it. The cube's position alone decides, not the gripper's contact
# sensor, which also fires on the table and on the other pad.

# %%
#| export
SUCCESS_RADIUS = 0.04      # OGBench's cube success: the cube's centre within 4 cm of its target (cube_env._compute_successes)
PHASES = {'solved': 'solved', 'unmoved': 'never moved the cube', 'pushed': 'moved the cube, never lifted it',
          'far': 'lifted it, never within 8 cm of the target', 'near': 'came within 8 cm, not placed'}

def episode_phase(block, goal, success: bool, moved: float = 0.01) -> dict:
    "One episode's cube positions (T+1, 3), from the reset on, and its target (3,): the phase it ended in (a `PHASES` key) and its distances."
    block, goal = np.asarray(block, float), np.asarray(goal, float)
    dist, rise = np.linalg.norm(block - goal, axis=1), block[:, 2].max() - block[0, 2]
    shift = np.linalg.norm(block - block[0], axis=1).max()
    phase = ('solved' if success else 'unmoved' if shift <= moved else 'pushed' if rise <= moved
             else 'far' if dist.min() > 2 * SUCCESS_RADIUS else 'near')
    return dict(phase=phase, start_dist=float(dist[0]), min_dist=float(dist.min()), end_dist=float(dist[-1]), max_rise=float(rise))



# %% [markdown]
# Each class on a made-up trace: the cube starts 15 cm from its target (task 2's), stays put, slides 3 cm, is lifted
# 5 cm and carried halfway, or carried to 5 cm above the target.

# %%
goal, start = np.array([0.5, 0, 0.02]), np.array([0.35, 0, 0.02])
path = lambda *pts: np.array([start, *pts])
test_eq(episode_phase(path(start, start), goal, False)['phase'], 'unmoved')
test_eq(episode_phase(path([0.38, 0, 0.02]), goal, False)['phase'], 'pushed')
test_eq(episode_phase(path([0.35, 0, 0.07], [0.40, 0, 0.07], [0.40, 0, 0.02]), goal, False)['phase'], 'far')
near = episode_phase(path([0.35, 0, 0.07], [0.5, 0, 0.07]), goal, False)
test_eq(near['phase'], 'near'); test_close(near['min_dist'], 0.05); test_close(near['start_dist'], 0.15); test_close(near['max_rise'], 0.05)
test_eq(episode_phase(path([0.5, 0, 0.02]), goal, True)['phase'], 'solved')


# %% [markdown]
# `cube_phases` plays a run's agent as its evaluations do (N_test candidates, re-planning at the run's interval) on
# fresh environment seeds, one episode at a time so that it can read each step's info, and counts the phases. Its
# policy noise is drawn in a different order from `evaluate`'s (one env instead of a batch of them), so its episodes are
# new draws of the same agent, not replays of the evaluation's. Chapter 13 reads it on the ablations' n = 25 arm
# (`mac_ablations --phases`), whose failures are nearly all at the grasp; the main job's own phases are a registered
# study (`results/cpu_study/PROTOCOL.md`, 2026-11-29) whose runs have not finished.

# %%
#| export
def cube_phases(run_dir, episodes: int = 50, seed: int = 1000, device='cpu', keep: bool = False) -> dict:
    "Where a cube-single run's episodes end: the count of each `PHASES` class, the failures' closest approach (`keep`: every episode's row)."
    ag, norm, cfg, ck = load_agent(run_dir, device)
    if parse_name(cfg.env).env != 'cube-single': raise ValueError(f'cube_phases follows one cube; {run_dir} trains on {cfg.env}: pass a cube-single run')
    check_fresh_seeds(cfg, seed, episodes)                                     # episodes the run's evaluations did not play
    rp, d, g = cfg.actions_per_plan, ag.action_dim, torch.Generator(device).manual_seed(seed)
    env, rows = _make_env(eval_env_name(cfg.env)), []
    try:
        for i in range(episodes):
            obs, info = env.reset(seed=seed + i); goal = env.unwrapped.cur_task_info['goal_xyzs'][0]
            block, done, t = [info['privileged/block_0_pos']], False, 0
            while not done:
                if t % rp == 0: plan = ag.act(norm(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]), g)[0].cpu().numpy().reshape(-1, d)
                obs, _, term, trunc, info = env.step(np.clip(plan[t % rp], -1, 1)); t += 1
                block.append(info['privileged/block_0_pos']); done = term or trunc
            rows.append(dict(seed=seed + i, length=t) | episode_phase(block, goal, bool(info['success'])))
    finally: env.close()
    fails = [r['min_dist'] for r in rows if r['phase'] != 'solved']
    out = dict(step=ck['step'], eval_seeds=f'{seed}..{seed + episodes - 1}', replan_every=rp) | {k: sum(r['phase'] == k for r in rows) for k in PHASES}
    return out | dict(failures_min_dist_median=float(np.median(fails)) if fails else float('nan')) | (dict(episodes=rows) if keep else {})



# %%
# the tiny run: one row per episode on the seeds asked for; the trace starts at the reset and the target is task 2's
# (the cube starts about 15 cm from it); the agent re-plans at the run's interval, as its evaluations do (a spy counts calls)
from mac.agent import MACAgent
_act, calls = MACAgent.act, []
MACAgent.act = lambda self, *a, **kw: (calls.append(1), _act(self, *a, **kw))[1]
try: ph = cube_phases(tmp / 'full', episodes=2, keep=True)
finally: MACAgent.act = _act
test_eq([r['seed'] for r in ph['episodes']], [1000, 1001]); test_eq(sum(ph[k] for k in PHASES), 2)
assert all(0.13 < r['start_dist'] < 0.17 for r in ph['episodes']), [r['start_dist'] for r in ph['episodes']]
test_eq(len(calls), sum(-(-r['length'] // cfg.actions_per_plan) for r in ph['episodes'])); assert cfg.actions_per_plan > 1

# %% [markdown]
# ## The main job: `make main`
#
# `mac_quickstart` is what README's main command runs: make sure a cube-single play dataset exists (generated with
# OGBench's oracles if missing, `dataset_episodes` of the `cpu` preset), train MAC with the `cpu` preset on the default
# task (task 2) for `MAIN_STEPS` = 20,000 steps (the smallest budget that works, measured below), evaluate as the paper during training (15 episodes every 2k steps, final-step success), evaluate the
# final agent on 50 episodes whose environment seeds no training evaluation uses (from `FINAL_EVAL_SEED`), and write
# `results/quickstart/`: the training log (`run/log.csv`), evaluations (`run/eval.csv`), the success plot
# (`success.png`) and `summary.json` with provenance. Re-running it continues the run from its checkpoint instead of
# starting over. `--smoke` runs the same pipeline on the `tiny` preset in seconds (the test suite does).

# %%
#| export
MAIN_STEPS = 20_000   # the smallest budget at which 4 of 5 seeds reach 50% (the budget study below); the `cpu` preset trains 28k

def quickstart(out='results/quickstart', smoke: bool = False, seed: int = 0, device=None, dataset_dir=None, progress: bool = True,
               steps: int | None = MAIN_STEPS) -> dict:
    "The main job: dataset → train (cpu preset, cube-single task 2, `steps`) → evaluate → results/quickstart/ with a summary."
    out = Path(out); t0 = time.time()
    over = ({'seed': seed} | ({'device': str(device)} if device else {}) | ({'dataset_dir': str(dataset_dir)} if dataset_dir else {})
            | ({'steps': steps} if steps else {}))
    if smoke: over |= {'eval_episodes': 2, 'final_episodes': 2, 'steps': 20}
    cfg = make_config('tiny' if smoke else 'cpu', over)
    ck = out / 'run' / 'checkpoint.pt'
    if ck.exists() and (done := int(torch.load(ck, map_location='cpu', weights_only=True)['step'])) > cfg.steps:   # e.g. an older 28k main job
        raise ValueError(f'{out}/run holds a run trained to {done:,} steps, past this job\'s {cfg.steps:,}: '
                         f'pass --steps {done} to finish and read it back, or another --out for a new run')
    tr = Trainer(cfg, out / 'run', resume=ck.exists(), progress=progress)
    run = tr.run(); final = run['final']           # a finished run only reads its final evaluation back
    if (out / 'run' / 'success.png').exists(): atomic_write(out / 'success.png', lambda p: p.write_bytes((out / 'run' / 'success.png').read_bytes()))
    curve = [dict(step=int(r['step']), success=float(r['success'])) for r in read_csv(out / 'run' / 'eval.csv')]
    summary = dict(env=cfg.env, preset='tiny (smoke)' if smoke else 'cpu', steps=cfg.steps, success=final['success'],
                   successes=final['successes'], protocol=final['protocol'], final_eval_seeds=f'{FINAL_EVAL_SEED}..{FINAL_EVAL_SEED + len(final["successes"]) - 1}',
                   training_evals=curve, dataset={**tr.dataset_info, 'file': Path(tr.dataset_info['file']).name},
                   train_and_eval_min=round((time.time() - t0) / 60, 1))
    if not smoke and summary['success'] < 0.5: summary['diagnosis'] = diagnose(out / 'run', device=tr.device)  # say what limits it
    summary['wall_time_min'] = round((time.time() - t0) / 60, 1)
    prov = provenance(seed=seed, wall_time_s=time.time() - t0, device=tr.device, config=config_to_dict(cfg), run_clock=run['time'])   # the job's time; the run's, summed over resumes
    write_json(out / 'provenance.json', prov)
    write_json(out / 'summary.json', summary | {'provenance': prov})
    tr.close()
    return summary


# %% [markdown]
# Its command line, `mac_quickstart`, which `make main` calls:

# %%
#| export
@dataclass
class _QuickstartArgs:
    "The main job: generate data if missing, train MAC (cpu preset) on cube-single task 2, evaluate, write results."
    out: str = 'results/quickstart'   # results folder (the run itself goes to <out>/run)
    smoke: bool = False               # tiny preset: the whole pipeline in seconds
    seed: int = 0                     # training seed
    device: str | None = None         # default: the preset's ('auto': CUDA if available)
    dataset_dir: str | None = None    # default: the preset's (~/.ogbench/data)
    steps: int = MAIN_STEPS           # gradient steps (the `cpu` preset's own budget is 28,000)
    debug: bool = False               # show the traceback of an error

def quickstart_cli(argv=None):
    "Command line: `mac_quickstart [--out results/quickstart] [--smoke] [--seed 0] [--device auto]`."
    a = tyro.cli(_QuickstartArgs, args=argv, prog='mac_quickstart')
    def body():
        s = quickstart(a.out, a.smoke, a.seed, a.device, a.dataset_dir, steps=a.steps)
        print(f"{s['env']}: success {s['success']:.0%} ({s['protocol']}) after {s['steps']} steps, {s['wall_time_min']} min in all; wrote {a.out}/summary.json")
        return 0
    return run_cli('mac_quickstart', body, a.debug, ((NonFiniteLoss, EXIT_DIVERGED), (RunFolderBusy, EXIT_USAGE)))


# %%
qs = quickstart(tmp / 'qs', smoke=True, dataset_dir=data_dir, device='cpu', progress=False)
# a folder whose run went past the asked budget (an older, longer main job) gets a clear error, and is left as it was
(tmp / 'old' / 'run').mkdir(parents=True); shutil.copy(tmp / 'full' / 'checkpoint.pt', tmp / 'old' / 'run' / 'checkpoint.pt')
test_fail(lambda: quickstart(tmp / 'old', steps=30, dataset_dir=data_dir, device='cpu', progress=False), contains='pass --steps 40')
test_eq(sorted(p.name for p in (tmp / 'old' / 'run').iterdir()), ['checkpoint.pt'])
test_eq((qs['steps'], len(qs['successes'])), (20, 2))
assert all((tmp / 'qs' / f).exists() for f in ('summary.json', 'provenance.json', 'success.png'))

# %% [markdown]
# ## What the CPU budget buys, and what limits it
#
# The goal for the main job is ≥ 50% success on cube-single task 2 within 30 minutes on 2 cores. The paper
# reaches 100% after 1M updates on a GPU; the runs in this section fit 11-16k updates in about 25 minutes (the main job, made faster
# since, trains 20k in 29.6), 1-2% of the paper's budget. This section records the single-seed runs that shaped the `cpu` preset, all
# re-planning every step at 11-16k steps; the study in the next section then fixed the rest with five seeds (execute
# whole chunks, and 28k steps). What we measured, one seed each, 15 evaluation episodes per point
# (`results/cpu_variants/`, each run with its config, logs and provenance):
#
# | run (256×4, 100-episode dataset) | steps | success at the last evaluations | wall time |
# |---|---|---|---|
# | paper-faithful: γ = 0.999, no termination (the first main job) | 11k | 0, 0, 7, 7% (every 2750 steps) | 24.9 min |
# | γ = 0.99 | 11k | 0, 0, 13, 7% | 23.3 min |
# | γ = 0.99 + `terminals` | 11k, resumed to 16k | 20% at 11k, 20, 27, 20% at 12k, 14k, 16k | (two runs shared the cores) |
# | γ = 0.99 + `terminals` + 5k pretraining steps | 14k | 13, 7, 33% at 12k, 13k, 14k; 27% on fresh seeds | (two runs shared the cores) |
# | the `cpu` preset (= the last row), `make main` | 14k | 0, 7, 7, 0, 7% at 6k-14k; 20% on fresh seeds | 25.4 min (data generation included) |
# | the `cpu` preset, seed 1 (`mac_train --preset cpu --seed 1`) | 14k | 0, 7, 13, 20, 40% at 6k-14k | 22.1 min (dataset present) |
#
# So the CPU budget buys 7-40% success, not 50%. The last three rows are one configuration: the pretraining run and
# `make main` share the seed too (they differ in thread count, hence in float rounding) and end at 33% and 7%; seed 1
# ends at 40%, still rising. At this budget the spread between runs is as large as the gaps between variants, and
# one seed each cannot rank them. Pooled, the runs that end chunks at success reach 15/60 at their last evaluation
# against 2/30 for those that do not; the preset takes them for that and for the mechanism (their value singles out
# the goal, item 5 of [chapter 10](10_training.ipynb)'s implementation details), not for a proven gain.
# `diagnose` says why the rest is out of reach at this budget: rolled out **in its own model** from the 15 evaluation
# start states, the agent solves the task every time (imagined success 100% in all three diagnosed runs), in MuJoCo
# 7-27% of the time. The videos (`results/cpu_variants/term99-11k-seed100*.gif`) show where reality parts from the
# model: the gripper reaches the cube but never lifts it, only nudging it along the table. Rejection sampling keeps
# the *actions* on the data, but after 10-15k updates the chunk model's contact dynamics are not yet accurate enough
# for the critic to tell a grasp from a near miss, and the paper's 1M updates are far beyond this budget. On a GPU
# the paper's update takes 29-42 ms eagerly (H200, H100) and 8.7 ms as one CUDA graph (H100; chapter 11): its 1M
# updates are 8-12 hours there eagerly, 2.4 hours as a graph.

# %%
#| echo: false
import matplotlib.pyplot as plt
V = Path('../results/cpu_variants')
curves = [('paper-faithful (γ 0.999, no terminals)', V / 'paper_faithful_main_job' / 'run' / 'eval.csv'), ('γ = 0.99', V / 'gamma099' / 'eval.csv'),
          ('γ = 0.99 + terminals', V / 'terminals' / 'eval.csv'), ('γ = 0.99 + terminals + 5k pretraining', V / 'pretrain' / 'eval.csv'),
          ('cpu preset (= the red run): make main', V / 'main_job_replan1' / 'run' / 'eval.csv'),
          ('cpu preset, seed 1', V / 'preset_seed1' / 'eval.csv')]
fig, ax = plt.subplots(figsize=(7, 3.4), dpi=100)
for label, f in curves:
    if f.exists():
        r = read_csv(f)
        ax.plot([int(x['step']) for x in r], [100 * float(x['success']) for x in r], 'o-', ms=3, label=label)
ax.axhline(50, color='grey', ls=':', lw=1); ax.axvline(14_000, color='grey', ls='--', lw=1)
ax.text(14_300, 88, 'the first main jobs\nstopped here', fontsize=8, color='grey')
ax.set(xlabel='gradient steps', ylabel='success (%, 15 episodes)', ylim=(-3, 103), title='cube-single task 2 on 2 CPU cores')
ax.legend(fontsize=8, loc='upper left'); fig.tight_layout(); plt.show()

# %% [markdown]
# ## The CPU study: seeds, a fixed protocol, and what re-planning costs
#
# One seed per variant could not rank the variants above, so the study behind the issue "MAC learns on a CPU" fixes
# a protocol first (`results/cpu_study/PROTOCOL.md`, committed before the first run) and runs every variant with
# several training seeds: every 2k steps 15 episodes (the paper's protocol), after the last step 50 episodes on
# environment seeds no training evaluation uses, success pooled over seeds with a 95% Wilson interval on the episode
# count. `tools/cpu_study.py` runs it (resumable) and aggregates it.
#
# Its first question costs no training: *how much of each chosen chunk should the agent execute?* The official code
# re-plans every step (`action_chunking_test = 1`): it draws N_test = 32 fresh chunks, takes the argmax-Q one, executes
# its first action and throws the rest away. But Q scores a chunk as if all of it runs — the critic's target is
# r̂ + γⁿ V(ŝ_{t+n}) for the whole chunk — so the chunk that Q prefers is a commitment, and executing one action of it
# and then a first action of a possibly different chunk is a policy Q never evaluated. The same trained agents were
# therefore evaluated at three intervals (`replan_every` = 1, 5, 10; 10 = whole chunks).

# %%
#| echo: false
S = Path('../results/cpu_study')
if (S / 'table.csv').exists():
    tab = read_csv(S / 'table.csv')
    print(f"{'policy':<22} {'steps':>6} {'re-plan':>7} {'seeds':>5}  {'final success per seed (50 ep.)':<34} {'pooled [95% CI]':<18} mean ± std")
    for t in tab:
        who = 'behaviour (N_test=1)' if t['variant'].endswith(':behaviour') else 'MAC (N_test=32)'
        print(f"{who:<22} {int(t['step']):>6} {t['replan']:>7} {t['seeds']:>5}  {t['per_seed']:<34} {float(t['pooled']):.0%} [{float(t['ci_lo']):.0%}, {float(t['ci_hi']):.0%}]"
              f"{'':<4} {float(t['mean']):.0%} ± {float(t['std']):.0%}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100)
    for rp, c in zip((1, 5, 10), ('C3', 'C1', 'C0')):
        runs = {}
        for f in sorted(S.glob('preset/s*/evals.csv')):
            if not (f.parent / 'final.csv').exists(): continue          # only the seeds that finished
            runs[f.parent.name] = {int(r['step']): float(r['success']) for r in read_csv(f) if int(r['replan']) == rp}
        steps = sorted(set.intersection(*[set(v) for v in runs.values()])) if runs else []
        m = np.array([[v[s] for s in steps] for v in runs.values()])
        axes[0].plot(steps, 100 * m.mean(0), 'o-', color=c, ms=3, label=f're-plan every {rp} ({len(runs)} seeds)')
        axes[0].fill_between(steps, 100 * (m.mean(0) - m.std(0)), 100 * (m.mean(0) + m.std(0)), color=c, alpha=0.15)
    budgets = sorted({int(t['step']) for t in tab})
    ticks = []
    for i, (rp, st) in enumerate((rp, st) for rp in (1, 5, 10) for st in budgets):
        k = [t['seeds'] for t in tab if t['variant'] == 'preset' and int(t['replan']) == rp and int(t['step']) == st]
        ticks.append(f'{"every step" if rp == 1 else f"every {rp}"}' + (f'\n{st // 1000}k\n{k[0] if k else 0} seeds' if len(budgets) > 1 else ''))
        for variant, dx, colour, mark in (('preset', -0.12, 'C0', 'o'), ('preset:behaviour', 0.12, 'C7', 's')):
            t = [t for t in tab if t['variant'] == variant and int(t['replan']) == rp and int(t['step']) == st]
            if not t: continue
            rows = [float(r['success']) for f in sorted(S.glob(f'preset/s*/final{"_behaviour" if ":" in variant else ""}.csv'))
                    for r in read_csv(f) if int(r['replan']) == rp and int(r['step']) == st]
            axes[1].scatter([i + dx] * len(rows), [100 * x for x in rows], color='grey', s=12, zorder=2)
            p, lo, hi = (100 * float(t[0][k]) for k in ('pooled', 'ci_lo', 'ci_hi'))
            axes[1].errorbar(i + dx, p, yerr=[[p - lo], [hi - p]], fmt=mark, color=colour, capsize=4, zorder=3,
                             label=('MAC, N_test = 32' if variant == 'preset' else 'behaviour policy alone, N_test = 1') if i == 0 else None)
    axes[1].set_xticks(range(len(ticks)), ticks, fontsize=7)
    for ax in axes: ax.axhline(50, color='grey', ls=':', lw=1); ax.set_ylim(-3, 103)
    axes[0].set(xlabel='gradient steps', ylabel='success (%, 15 episodes)', title='cpu preset: mean ± std over seeds'); axes[0].legend(fontsize=8)
    axes[1].set(xlabel='re-planning interval (10 = whole chunks)', ylabel='final success (%, 50 episodes)', title='final: seeds (grey), pooled 95% CI')
    axes[1].legend(fontsize=8, loc='upper left')
    fig.tight_layout(); plt.show()

# %% [markdown]
# **Reading at 14k steps** (five training seeds; the table above is always the committed `table.csv`). Executing whole chunks is the one change that helps without a
# single extra update: the final 50-episode success is 50%, 44%, 48%, 52% and 56% for the five seeds (pooled 50%,
# 95% CI 44-56%) against 36%, 18%, 12%, 30% and 36% when re-planning every step (pooled 26%, CI 21-32%); executing half
# a chunk sits in between (33%, CI 28-39%). In training too, whole chunks beat re-planning every step at every
# evaluation from 6k steps on, for all five seeds (25 of 25 comparisons). `tools/cpu_study.py explain` (10 more episodes
# per seed and interval on seeds 0, 1, 4, `results/cpu_study/preset/explain.csv`) measures the executed motion, and it
# does not single out one cause: re-planning every step flips the gripper command more often (0.16, 0.15 and 0.35 flips
# per step, against 0.14, 0.12 and 0.12 with whole chunks) while the arm moves about as much, but half chunks flip it
# least (0.08-0.12 per step) and still succeed less than whole chunks. What whole chunks have that the others do not
# is that the motion executed is exactly the one Q scored; a re-plan executes one action of the argmax of 32 fresh
# candidates, and the next argmax need not continue it.
#
# The same checkpoints with rejection sampling switched off (`cpu_study.py behaviour`: N_test = 1, one sample of the
# one-step policy, the same 50 episodes) succeed 1-4% of the time (whole chunks: 6%, 2%, 4%, 4%, 6%; pooled 4%, CI
# 2-8%). So at this budget almost all of MAC's success comes from choosing among 32 samples with the learned Q, which
# is the paper's point about rejection sampling (chapter 7), measured here on the same start states.
#
# At 14k this does **not** give the goal, ≥ 50% for 4 of 5 seeds: three of five seeds reach 50% with whole
# chunks (50%, 52%, 56%; the others 44% and 48%), and a seed's last two 15-episode evaluations differ by up to 33 points
# (seed 0: 80% at 12k, 47% at 14k), more than the 15 the issue allows; with 15 episodes one evaluation's own standard
# error is about 13 points at 50%, so two evaluations of an unchanged agent that succeeds half the time differ by more
# than 15 points in 36% of cases (exact binomial). The `cpu` preset executes whole chunks (`replan_every = 10`, item 8 of chapter 10's implementation details), chosen by the rule fixed
# in the protocol (highest pooled final success over the five seeds). So the registered continuation ran: the same five runs
# resumed exactly and trained to 28k steps, evaluated the same way.
#
# **At 28k steps** (all five seeds): whole chunks reach 80%, 74%, 72%, 68% and 62% on the 50 final episodes (pooled
# 71%, 95% CI 65-76%), so **5 of 5 seeds reach 50%**; re-planning every step gets 24% (CI 19-30%) and half chunks 54%
# (CI 47-60%), and by the protocol's rule the interval stays 10. The behaviour policy alone on the same checkpoints
# and episodes gets 6% (CI 3-9%; 2-12% per seed): the extra 14k updates went into the learned Q that chooses among the
# 32 samples, not into the samples. Of the two budgets measured, 28k is therefore the smallest at which at least 4 of
# 5 seeds reach 50%, and the `cpu` preset (chapter 9a) trains 28k steps; that is the fallback, since 14k
# steps, which fit its 30 minutes, reach 50% for only 3 of 5 seeds. `make main` with it, timed alone on a fresh clone
# (2 cores, dataset present): 72% on its 50 final episodes after 47.4 minutes of training and evaluation (48.4 with
# the set-up of a new `.venv`; `results/quickstart_28k/`). The budget study below then found a smaller budget. What is still not met is "no collapse": the
# 15-episode curve of seed 0 swings by 40 points between its last two evaluations (87% at 26k, 47% at 28k, then 80% on
# the 50 final episodes). The in-training curves keep the paper's 15 episodes; a run is read from its 50-episode final
# evaluation. **Held-out tasks** (registered before any of this, `results/cpu_study/PROTOCOL.md`; the `cpu` preset unchanged, 28k steps,
# 50 final episodes per seed, executing whole chunks as the preset does). cube-single task 4 (paper 98 ± 3), all three
# seeds: 50%, 68%, 58%, pooled **59% [95% CI 51, 66]**, 3 of 3 seeds ≥ 50%; the behaviour policy alone on the same
# checkpoints and episodes 6% [3, 11]. scene task 1 (paper 100 ± 0), all three seeds: 100%, 96%, 96%, pooled **97% [95% CI 93, 99]**, 3 of 3 seeds ≥ 50%;
# the behaviour policy alone 1% [0, 5]. So the preset, unchanged, learns on both tasks it was not tuned on, every seed
# above 50% and far above its own behaviour policy: at the paper's number on scene task 1, and below it on cube-single
# task 4 (59% against 98 ± 3 after 1M steps), where the grasp-and-place is the harder part at this budget.

# %% [markdown]
# **How much of "no collapse" is measurement?** The criterion asks that each seed's last two 15-episode evaluations
# differ by at most 15 points. Two evaluations of an agent that does not change at all still differ, because 15
# episodes are few. The cell below computes, exactly from the binomial distribution, how likely a gap larger than 15
# points is for an unchanging agent at each seed's own final success rate, and how likely the gap each seed showed
# (or a larger one) is; the numbers come from the committed `results/cpu_study/preset/` files.

# %%
from math import comb
def _gap_prob(p, n, at_least):
    "P(|X1 − X2| ≥ at_least) for independent X1, X2 ~ Binomial(n, p): two evaluations of one unchanging agent."
    pmf = [comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(n + 1)]
    return sum(pmf[a] * pmf[b] for a in range(n + 1) for b in range(n + 1) if abs(a - b) >= at_least)
study = Path('../results/cpu_study/preset')
all_within = 1.0
for s in range(5):
    ev = {int(r['step']): float(r['success']) for r in read_csv(study / f's{s}' / 'evals.csv') if r['replan'] == '10'}
    fin = next(float(r['success']) for r in read_csv(study / f's{s}' / 'final.csv') if r['replan'] == '10' and r['step'] == '28000')
    a, b = round(15 * ev[26000]), round(15 * ev[28000])
    over15 = _gap_prob(fin, 15, 3)                                   # > 15 points on 15 episodes: a difference of 3 or more episodes
    all_within *= 1 - over15
    print(f'seed {s}: 26k {a}/15, 28k {b}/15 (gap {abs(a - b) / 15:.0%}); final {fin:.0%}: an unchanging agent differs by > 15 points '
          f'with probability {over15:.2f}, by ≥ this gap with {_gap_prob(fin, 15, abs(a - b)):.3f}')
print(f'all five gaps ≤ 15 points, if every agent were unchanging at its final rate: probability {all_within:.2f}')

# %% [markdown]
# So, with 15-episode evaluations, five agents that did not change at all between 26k and 28k would all pass "no
# collapse" only about one time in six: the criterion, as stated, mostly measures evaluation noise. Seed 0 is the
# exception that is not noise: a 40-point gap has probability about 0.01 for an unchanging agent at its final 80%, and
# its step-28k checkpoint scored 7/15 in training but 40/50 on the final episodes, so its 15 evaluation episodes at 28k
# were an unusually bad draw of start states or the agent's success depends strongly on them. Meeting the criterion
# honestly needs either more episodes per evaluation (at 50, two evaluations of an unchanging agent at 70% differ by
# more than 15 points with probability about 0.1) or a less variable agent; the in-training evaluations here keep the
# paper's 15.

# %% [markdown]
# **Start states or the policy's own noise?** Two diagnostics on the five step-28k checkpoints, registered in
# `results/cpu_study/PROTOCOL.md` before they ran, take the question further without any new training. First, each
# checkpoint replays two fixed sets of 15 start states (its 28k evaluation's, and the final evaluation's first 15) with
# five policy-noise seeds each (`python tools/cpu_study.py starts --seeds 0 1 2 3 4`). The evaluation's own noise seed
# reproduces the logged 28k figure for every seed, and the table below gives, per start state, how often the agent
# solved it in five tries.

# %%
#| echo: false
from IPython.display import Markdown, display
display(Markdown((Path('../results/cpu_study/starts/summary.md')).read_text().split('\n\n', 1)[1]))

# %% [markdown]
# Most of an evaluation's spread is the policy's own noise: only 0-28% of the episode-to-episode variance lies between
# start states, and of the 150 start states only two failed all five times (seed 0's 11th and seed 4's 1st in set A); every other
# start that fails sometimes also succeeds sometimes. Seed 0's 28k checkpoint, whose
# 15-episode evaluation fell to 7/15, solves its own evaluation's starts 43 times in 75 (57%) and the final evaluation's
# first 15 in 62 of 75 (83%): a harder set of starts and a low draw of noise, not a collapsed agent.
#
# Second, more or fewer candidates for rejection sampling on the same 250 final episodes
# (`python tools/cpu_study.py ntest --seeds 0 1 2 3 4 --n-test 8 128`): N_test = 8 gives 68% [62, 74], the paper's 32
# gives 71% [65, 76], 128 gives 69% [63, 74]. Ranking more samples by Q does not help, so at this budget the limit is in
# the critic and model, not in the search, and the preset keeps N_test = 32, as the registered rule said. An agent whose
# evaluations agree within 15 points must mostly succeed: at 90% success, two 15-episode evaluations of one unchanging
# agent differ by more than 15 points with probability about 0.1 (the function above gives it), at 70% about 0.3.

# %% [markdown]
# ## The smallest budget, and the main job's
#
# The issue behind the `cpu` preset asks for ≥ 50% on 50 fresh episodes for at least 4 of 5 training seeds within 30
# minutes on 2 cores, and, if that is out of reach, for the smallest budget that does it. 28,000 steps do it (5 of 5)
# in 47 minutes. A third registered study looks below: each seed continues from its own step-14k checkpoint (exact
# resume: the networks the study trained), is scored at 16k, 18k, 20k, ... on the final evaluation's 50 episodes
# (*selection*), and the first budget where 4 of 5 seeds pass is scored again on 50 fresh episodes (*confirmation*), so
# that a lucky pass on one set of episodes cannot choose the budget (`python tools/cpu_study.py budget --seeds 0 1 2 3 4`).

# %%
#| echo: false
B = Path('../results/cpu_study/budget')
rows = [dict(r, seed=s) for s in range(5) for r in read_csv(B / f's{s}' / 'final.csv')]
for name, seed0 in (('selection', '100000'), ('confirmation', '300000')):
    for step in sorted({int(r['step']) for r in rows if r['seed0'] == seed0}):
        per = [int(r['successes']) / int(r['episodes']) for r in rows if r['seed0'] == seed0 and int(r['step']) == step]
        print(f"{name:>12} set, {step:,} steps: " + ' '.join(f'{p:4.0%}' for p in per) + f"  → {sum(p >= 0.5 for p in per)} of 5 seeds ≥ 50%")

# %% [markdown]
# At 16k steps one seed of five passes, at 18k three, at 20k all five on the selection episodes and four of five on
# the fresh confirmation episodes (60, 66, 46, 76, 68%): **20,000 steps is the smallest budget at which 4 of 5 seeds
# reach 50%**, and `make main` trains `MAIN_STEPS` = 20,000 (the `cpu` preset itself keeps 28,000, which the CPU study
# and the ablations use). Timed alone on the two cores, dataset present, `make main` at 20k first took **30.6 minutes**
# (seed 0: 60% on its 50 final episodes; `results/quickstart_20k_pytorch_gelu/`), 0.6 minutes over the 30.
# Chapter 0 then made the GELU of every pass without gradients about twice as fast on the CPU (the same function to
# float rounding; `mac_bench --gelu`: 1.08× per update, interleaved), and the same command, alone on the same cores,
# took **29.6 minutes** (seed 0: 76% on its 50 final episodes, last training evaluation 73%; `results/quickstart/`).
# That is one timing, 0.4 minutes under the goal, a margin of the size of this machine's run-to-run noise. The
# faster GELU changes activations only by float rounding (≤ 5e-7), but like any rounding change it sends a run down
# another random path, so seed 0 now ends at 76% rather than 60%; one seed cannot say whether the success rate moved
# (both lie inside the study's spread at 20k, 46-82%). The 5-seed evidence for the budget is the study's above, made
# with PyTorch's kernel. A second timing, seed 1, was void as a timing (two ablation trials ran beside it for most of
# its 36 minutes); its agent ended at 66% on its 50 final episodes (`results/main_20k_fastgelu_s1/`).
#
# "No collapse" at this budget: the CPU study's own 15-episode evaluations at 18k and 20k (whole chunks;
# `results/cpu_study/preset/s*/evals.csv`; the budget study scored the same networks, its resumed runs logging the same
# losses at 15k and 20k) differ by 13, 7, 53, 20 and 0 points for seeds 0-4: 3 of 5 seeds within the 15, so
# the criterion is not met at 20k either. Seed 2's 27% at 20k against 58% on the 50 selection episodes at the same
# step is the kind of 15-episode draw described above. Measured on 50 episodes instead (the budget study's selection episodes, env
# seeds 100,000-100,049, the same start states at every step; `results/cpu_study/budget/s*/final.csv`), the five seeds
# move from 18k to 20k by +20, −12, −14, +6 and +16 points: again 3 of 5 within 15, the two beyond it rises, and no
# seed falls by more than 14 points. At 20k the runs do not collapse, then, but the criterion as written (a difference
# either way, on the paper's 15 episodes) is not met.

# %% [markdown]
# ## Ten times the data
#
# OGBench's own cube-single dataset has 1,000 episodes; the main job generates 100 (10%) so that the one-off
# generation stays short. Does the data the paper learns from buy a higher, steadier success rate at the main job's
# budget? A fourth registered variant, `data1000`, is the `cpu` preset unchanged except for a 1,000-episode dataset
# (`mac_data --env cube-single --episodes 1000 --dataset-dir ~/.ogbench/data1000`), trained to 20,000 steps with the
# study's protocol (`python tools/cpu_study.py run --variant data1000 --seeds S --threads 1 --steps 20000`), and read
# against `budget` at 20k on the same seeds and the same 50 final episodes. Its decision rule was written before the
# first run: the larger dataset replaces the smaller one in `make main` only if, with all five seeds, four reach 50%,
# the pooled 95% interval lies wholly above 66% (`budget`'s pooled success at 20k), and the generation takes at most
# 20 minutes on the two cores.

# %%
#| echo: false
T = {(r['variant'], int(r['step']), int(r['replan'])): r for r in read_csv(S / 'table.csv')}
for v in ('budget', 'data1000'):
    r = T.get((v, 20_000, 10))
    if r: print(f"{v:>9}, 20k steps, whole chunks: {r['per_seed']:<20} pooled {float(r['pooled']):.0%} "
                f"[{float(r['ci_lo']):.0%}, {float(r['ci_hi']):.0%}] over {r['seeds']} seeds")

# %% [markdown]
# With its five seeds in, `data1000` reaches 90, 60, 62, 60 and 72% on the 50 final episodes, pooled 69% [63, 74],
# against 68, 58, 58, 82 and 62% for `budget` on the same seeds (66% [60, 71]): ten times the data did not raise the
# success rate measurably at this budget (the intervals overlap almost wholly). Nor did it steady the evaluations: the
# last two 15-episode evaluations (18k, 20k) differ by 20, 33, 13, 20 and 0 points, two seeds of five within 15. And
# generating the 1,000 episodes took 27.3 minutes on this session's CPU (an AVX2-only EPYC; 16.3 minutes on the machine
# of 2026-11-26), over the 20-minute limit. The registered rule asks for all three: four seeds of five at 50% or more
# holds (five), the pooled interval wholly above 66% does not (its lower end is 63%), nor does the generation time. So
# the main job keeps its 100 episodes. Runs, rule and times: `results/cpu_study/PROTOCOL.md` (2026-11-28, 13:00
# onwards; seed 4 ran over three sessions, resumed from its checkpoints, one thread beside two ablation trials).

# %%
#| hide
import nbdev; nbdev.nbdev_export()
