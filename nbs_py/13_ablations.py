# %% [markdown]
# # The paper's ablations, measured at CPU scale
# > Which parts MAC needs, from runs of this code: a flow policy against a Gaussian, rejection sampling against FQL's gradient extraction, the distilled one-step policy against none (Tables 3 and 15), and the action-chunk length (Figure 3), on cube-single task 2 with the `cpu` preset's budget (`mac_ablations`)

# %%
#| default_exp experiments.ablations

# %%
#| export
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from mac.core import provenance, read_csv, run_cli, write_csv, write_json
from mac.evaluate import wilson
from mac.sweep import collect, sweep_trials

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail
import json, os, tempfile

# %% [markdown]
# The flags of the ablations were built with the chapters they change: `agent.policy='gaussian'`
# ([chapter 3](03_chunk_policies.ipynb)), `agent.extraction='fql'` ([chapter 7](07_rejection_sampling.ipynb)),
# `agent.distill=False` ([chapter 4](04_distillation.ipynb)) and `agent.n` ([chapter 9a](09a_config.ipynb)); the grids
# that run them are `mac_sweep`'s ([chapter 12](12_sweeps.ipynb)). This chapter reads what those runs produced and
# says what it shows: every number below comes from a committed run folder, with its provenance.
#
# ## In the paper
#
# > To understand the importance of this component, we conduct an ablation study of MAC by using (1) a Gaussian ("Gau")
# > action-chunk policy instead of a flow policy, and (2) gradient-based policy extraction (one-step distillation from
# > FQL (Park et al., 2025c) instead of rejection sampling. [...] The results indicate that the use of expressive flow
# > matching is crucial for MAC, and that rejection sampling generally yields better performance on most tasks.
# > (Section 5.3, Table 3)
#
# > Specifically, we directly train the one-step flow model $\pi_\omega$ with flow matching BC loss, instead of
# > distilling the multi-step flow model $\pi_\theta$. [...] The results indicate that the use of $\pi_\theta$ is
# > crucial for MAC in OGBench tasks where behavioral policies are highly multi-modal. (Appendix E, Table 15)
#
# > As shown in Figure 3, action chunking with an appropriate chunk size can substantially improve performance on both
# > tasks. [...] However, Figure 3 also shows that too long action chunks can degrade performance, mainly due to the
# > difficulty of open-loop multi-step future prediction. (Section 5.3)
#
# > For the ablation study on the action-chunk length, we fix the horizon length $H$ to 10 and only change the
# > action-chunk length $n \in \{1, 5, 10, 25\}$. (Appendix A.1)
#
# The paper's numbers on cube-single (1M gradient steps, 4 seeds, mean ± std): MAC 100 ± 0, MAC (Gau) 2 ± 3,
# MAC (FQL) 77 ± 21, MAC w/o π_θ 2 ± 3. Figure 3 is on cube-double and cube-octuple (goal-conditioned, 100M
# transitions), which a CPU cannot train.
#
# What the CPU version of Figure 3 can and cannot show. With H = 10 model calls fixed, n sets how far the imagined
# rollouts reach: 10, 50, 100 and 250 steps for n = 1, 5, 10, 25, against cube-single's 200-step episodes, in which a
# good agent needs well under 100 steps. So it can show, on a short task, what the paper's cube-double panel shows:
# whether one-step models (n = 1, 10-step rollouts) lose against chunks, and whether n = 25 (125-dimensional chunks,
# 250-step rollouts) costs more in learning than it gains in reach. It cannot show the paper's central point, that
# chunking is what makes long-horizon tasks solvable at all (cube-octuple at 0% without it): no task here is long
# enough for that.
#
# ## The protocol
#
# Fixed before any ablation run started (`results/ablations/PROTOCOL.md`, with its dated log of amendments: those
# made after the first runs finished, from 2026-11-28 04:12 on, add diagnostic readings and never touch the metric or
# the comparison rule):
#
# | | |
# |---|---|
# | task | cube-single task 2 (`cube-single-play-singletask-task2-v0`), the 100-episode dataset of the CPU study |
# | budget | the `cpu` preset's: 28,000 gradient steps (the first 5,000 without rollouts: models and policies only) |
# | seeds | 0, 1, 2 for every arm; a failed run is resumed, never replaced |
# | metric | the final evaluation: 50 episodes on environment seeds no training evaluation uses, whole chunks executed |
# | report | per seed; pooled over the 150 episodes with a 95% Wilson interval; mean ± std over seeds (the paper's format) |
# | comparison | an arm differs from MAC when the two pooled intervals do not overlap; otherwise "not distinguishable" |
#
# The MAC arm, and the n = 10 point of the chunk-length question, are the CPU study's three `cpu`-preset runs on this
# task (`results/cpu_study/preset/s0..s2`, [chapter 10a](10a_main_job.ipynb)); the other arms are `mac_sweep` runs,
# and the module names them by the exact command lines of the protocol.

# %%
#| export
SEEDS, STEPS, WHOLE_CHUNKS = (0, 1, 2), 28_000, 10   # the protocol: seeds, budget, and the MAC arm's re-planning interval (n)
_ARGS = '--envs cube-single --tasks 2 --seeds 0 1 2 --preset cpu --set.replan-every 0 --cpus-per-trial 1'
COMMANDS = (   # PROTOCOL.md's commands, in the order they run; rerunning one resumes its trials
    f'mac_sweep --grid table3 --variants mac-gau mac-fql {_ARGS} --out results/ablations/sweep',
    f'mac_sweep --grid table15 --variants mac-no-distill {_ARGS} --out results/ablations/sweep-table15',
    f'mac_sweep --grid fig3 --variants n1 n5 n25 {_ARGS} --out results/ablations/sweep-fig3',
)

@dataclass(frozen=True)
class Arm:
    name: str                          # label in tables and figures
    variant: str                       # the sweep's variant; 'mac' = the CPU study's `cpu` preset runs
    question: str                      # 'components' (Tables 3 and 15) or 'chunk' (Figure 3)
    n: int = 10                        # action-chunk length
    paper: tuple | None = None         # (mean, std) success in % on cube-single: 1M steps, 4 seeds

ARMS = (Arm('MAC', 'mac', 'components', paper=(100, 0)), Arm('MAC (Gau)', 'mac-gau', 'components', paper=(2, 3)),
        Arm('MAC (FQL)', 'mac-fql', 'components', paper=(77, 21)), Arm('MAC w/o π_θ', 'mac-no-distill', 'components', paper=(2, 3)),
        Arm('n = 1', 'n1', 'chunk', 1), Arm('n = 5', 'n5', 'chunk', 5), Arm('n = 10', 'mac', 'chunk', 10), Arm('n = 25', 'n25', 'chunk', 25))


# %% [markdown]
# ## Reading the runs
#
# One record per arm and seed: its state (`done`, `resume` while it trains, `failed` with its error, `pending`), its
# final evaluation as successes out of episodes, its 15-episode training curve, and the folder that holds its config,
# logs and provenance (relative to the ablations folder). A sweep run counts as done only when `mac_sweep` says so
# (the trial finished under exactly the protocol's command) and its final evaluation is at the protocol's step.
#
# The MAC arm is the CPU study's `preset` runs: their 50-episode final evaluation at the protocol's step with whole
# chunks, and their curve.

# %%
#| export
def _study_run(study: Path, seed: int) -> dict:
    "A MAC-arm run of the CPU study: its 50-episode final evaluation at STEPS with whole chunks, and its training curve."
    d = study / f's{seed}'
    fin = [r for r in read_csv(d / 'final.csv') if int(r['step']) == STEPS and int(r['replan']) == WHOLE_CHUNKS]
    curve = {int(r['step']): float(r['success']) for r in read_csv(d / 'evals.csv') if int(r['replan']) == WHOLE_CHUNKS}
    k, n = (int(float(fin[0]['successes'])), int(fin[0]['episodes'])) if fin else (None, None)
    return dict(dir=d, status='done' if fin else 'resume' if curve else 'pending', successes=k, episodes=n, curve=curve, error=None)



# %% [markdown]
# A sweep arm's run is found through the protocol's own command lines: `sweep_trials` turns each into its trials, and
# the trial's record (chapter 12's `collect`) gives the folder, state and curve. A final evaluation at a step other
# than the protocol's is `wrong-step`, never counted.

# %%
#| export
def _protocol_trials() -> dict:
    "(variant, seed) → (its trial, its sweep folder's name), from the protocol's command lines (parsed once per read)."
    return {(t.variant, t.seed): (t, out.name) for cmd in COMMANDS for trials, out in [sweep_trials(shlex.split(cmd)[1:])] for t in trials}

def _sweep_run(root: Path, variant: str, seed: int, trials: dict) -> dict:
    "A sweep arm's run, found through the protocol command that made it (`trials`: `_protocol_trials()`)."
    if (variant, seed) in trials:
        t, folder = trials[variant, seed]
        row = collect(root / folder, [t], 'final')[0]; d = root / folder / row['run']
        fin = json.loads((d / 'final_eval.json').read_text()) if row['status'] == 'done' and (d / 'final_eval.json').exists() else None
        ok = fin is not None and fin.get('step') == STEPS
        return dict(dir=d, status=row['status'] if ok or row['status'] != 'done' else 'wrong-step', curve=row['curve'], error=row['error'],
                    successes=int(sum(fin['successes'])) if ok else None, episodes=int(fin['episodes']) if ok else None)
    raise ValueError(f'no protocol command runs variant {variant!r} with seed {seed}')



# %% [markdown]
# All arms and seeds: those of variant `mac` (MAC itself, and the n = 10 point of Figure 3) from the CPU study, the
# others from the sweeps.

# %%
#| export
def ablation_runs(root='results/ablations', study='results/cpu_study/preset') -> list[dict]:
    "One record per arm and seed: status, final successes / episodes, training curve, run folder (relative to `root`)."
    root, study, rows, trials = Path(root), Path(study), [], _protocol_trials()
    for a in ARMS:
        for s in SEEDS:
            r = _study_run(study, s) if a.variant == 'mac' else _sweep_run(root, a.variant, s, trials)
            rows.append(dict(arm=a.name, question=a.question, n=a.n, seed=s, run=os.path.relpath(r.pop('dir'), root), **r))
    return rows



# %% [markdown]
# The summary of an arm pools its finished seeds' final episodes (k of N, Wilson interval from
# [chapter 9](09_evaluation.ipynb)) and gives mean ± std of the per-seed rates, the paper's format. An arm is compared
# with MAC only when both have all three seeds: a partial arm is marked `incomplete`, whatever its numbers.

# %%
#| export
def _vs(s: dict, ref: dict) -> str:
    if s['variant'] == ref['variant']: return 'the MAC arm'                    # MAC and n = 10 are the same runs
    if s['seeds_done'] < len(SEEDS) or ref['seeds_done'] < len(SEEDS): return 'incomplete'
    return 'lower' if s['ci_hi'] < ref['ci_lo'] else 'higher' if s['ci_lo'] > ref['ci_hi'] else 'not distinguishable'

def summarize(runs: list[dict]) -> list[dict]:
    "Per arm: seeds done, per-seed success, pooled success with its 95% Wilson interval, mean ± std over seeds, the paper's figure, and the comparison with MAC."
    out = []
    for a in ARMS:
        rs = [r for r in runs if r['arm'] == a.name]; done = [r for r in rs if r['status'] == 'done']
        k, n = sum(r['successes'] for r in done), sum(r['episodes'] for r in done)
        per = [r['successes'] / r['episodes'] for r in done]
        lo, hi = wilson(k, n) if n else (None, None)
        out.append(dict(arm=a.name, variant=a.variant, question=a.question, n=a.n, seeds_done=len(done), per_seed=' '.join(f'{p:.0%}' for p in per),
                        successes=k, episodes=n, pooled=k / n if n else None, ci_lo=lo, ci_hi=hi,
                        mean=float(np.mean(per)) if per else None, std=float(np.std(per)) if per else None,
                        paper=f'{a.paper[0]} ± {a.paper[1]}' if a.paper else '',
                        states=' '.join(f"s{r['seed']}:{r['status']}" for r in rs),
                        errors=' | '.join(f"s{r['seed']}: {r['error']}" for r in rs if r['error'])))
    ref = out[0]
    for s in out: s['vs_mac'] = _vs(s, ref)
    return out


# %% [markdown]
# A check on a hand-made ablations folder: three finished MAC runs in the CPU study's layout (with rows that must be
# ignored: another step, another re-planning interval), and sweep runs made as `mac_sweep` leaves them: a finished
# Gaussian arm far below MAC, an FQL arm with one failed seed and one still training. The pooled numbers are counted by
# hand.

# %%
def fake_root(tmp):
    root, study = tmp / 'ablations', tmp / 'cpu_study' / 'preset'
    for s, k in zip(SEEDS, (40, 45, 35)):                                   # MAC: 120 of 150
        (study / f's{s}').mkdir(parents=True)
        (study / f's{s}' / 'final.csv').write_text('step,replan,success,successes,episodes\n'
            f'14000,10,0.1,5,50\n{STEPS},1,0.0,0,50\n{STEPS},10,{k / 50},{k},50\n')
        (study / f's{s}' / 'evals.csv').write_text(f'step,replan,success,episodes\n2000,10,0.2,15\n2000,1,0.0,15\n{STEPS},10,0.8,15\n')
    def sweep_run(variant, seed, status, k=None, step=STEPS):
        cmd = next(c for c in COMMANDS if f' {variant} ' in c); trials, out = sweep_trials(shlex.split(cmd)[1:])
        t = next(t for t in trials if (t.variant, t.seed) == (variant, seed)); d = root / out.name / 'runs' / t.name; d.mkdir(parents=True)
        (d / 'eval.csv').write_text('step,success,episodes\n2000,0.0,15\n')
        if status == 'resume': (d / 'checkpoint.pt').write_bytes(b''); return
        (d / 'trial.json').write_text(json.dumps(dict(spec=t.spec(), status=status, error='RuntimeError: boom' if status == 'failed' else None)))
        if status == 'done': (d / 'final_eval.json').write_text(json.dumps(dict(step=step, episodes=50, success=k / 50, successes=[True] * k + [False] * (50 - k))))
    for s, k in zip(SEEDS, (1, 0, 2)): sweep_run('mac-gau', s, 'done', k)       # Gau: 3 of 150
    sweep_run('mac-fql', 0, 'done', 30); sweep_run('mac-fql', 1, 'failed'); sweep_run('mac-fql', 2, 'resume')
    sweep_run('n5', 0, 'done', 50, step=STEPS - 2000)                            # finished, but not at the protocol's step
    return root, study

root, study = fake_root(Path(tempfile.mkdtemp()))
runs = ablation_runs(root, study); S = {s['arm']: s for s in summarize(runs)}
test_eq((S['MAC']['successes'], S['MAC']['episodes'], S['MAC']['per_seed']), (120, 150, '80% 90% 70%'))
test_close((S['MAC']['ci_lo'], S['MAC']['ci_hi']), wilson(120, 150)); test_close(S['MAC']['std'], np.std([0.8, 0.9, 0.7]))
test_eq((S['MAC (Gau)']['successes'], S['MAC (Gau)']['vs_mac']), (3, 'lower'))
test_eq((S['MAC (FQL)']['seeds_done'], S['MAC (FQL)']['states'], S['MAC (FQL)']['vs_mac']), (1, 's0:done s1:failed s2:resume', 'incomplete'))
test_eq(S['MAC (FQL)']['errors'], 's1: RuntimeError: boom')
test_eq((S['n = 5']['seeds_done'], S['n = 5']['states'].split()[0]), (0, 's0:wrong-step'))
test_eq((S['n = 10']['successes'], S['n = 10']['vs_mac'], S['MAC w/o π_θ']['states']), (120, 'the MAC arm', 's0:pending s1:pending s2:pending'))
test_eq(next(r for r in runs if r['arm'] == 'MAC' and r['seed'] == 0)['curve'], {2000: 0.2, STEPS: 0.8})
assert all(not Path(r['run']).is_absolute() for r in runs)


# %% [markdown]
# ## Tables and figures
#
# `write_ablations` writes, beside the protocol: `runs.csv` (every arm × seed, with its state and folder),
# `table.csv` and `summary.md` (the arms, in the paper's format and with intervals), `ablations.png` (the figure) and
# `provenance.json`. `mac_ablations` runs it; it only reads run folders, so it is safe while the sweeps train.

# %%
#| export
def _curve_stats(runs, arm):
    cs = [r['curve'] for r in runs if r['arm'] == arm and r['curve']]
    steps = sorted(set().union(*cs)) if cs else []
    vals = [[c[s] for c in cs if s in c] for s in steps]          # runs still training contribute up to their last evaluation
    return np.array(steps), np.array([np.mean(v) for v in vals]), np.array([np.std(v) for v in vals]), len(cs)

def _claim(ss: list[dict]) -> str:
    "What the pooled intervals say so far, as a panel title: the arms below MAC, level with it, above it, and still incomplete."
    words = {'lower': 'below MAC', 'not distinguishable': 'not distinguishable from MAC', 'higher': 'above MAC', 'incomplete': 'not yet compared'}
    groups = {w: [s['arm'] for s in ss if s['vs_mac'] == v] for v, w in words.items()}   # in this order; the MAC arm itself in none
    return '\n'.join(f"{', '.join(arms)}: {w}" for w, arms in groups.items() if arms)


# %% [markdown]
# The figure: on top, each arm's final success (pooled 95% interval, one dot per seed, the paper's mean as a cross)
# under a title that states what the intervals say so far (`_claim`, above); below, the training curves as mean ± std
# over seeds (runs still training count up to their last evaluation, `_curve_stats`).

# %%
#| export
def plot_ablations(summary: list[dict], runs: list[dict], path):
    "Final success per arm (pooled 95% CI, seeds as dots, the paper's mean as ×) and training curves (mean ± std over seeds)."
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 7.5), dpi=90); ax = fig.subplots(2, 2)
    for col, q, head in ((0, 'components', 'Tables 3, 15'), (1, 'chunk', 'Figure 3, H = 10')):
        ss = [s for s in summary if s['question'] == q]; x = np.arange(len(ss)); a = ax[0, col]
        title = f'{head}. {_claim(ss)}'
        for i, s in enumerate(ss):
            for r in runs:
                if r['arm'] == s['arm'] and r['status'] == 'done': a.plot(i + 0.15, 100 * r['successes'] / r['episodes'], 'o', color='grey', ms=4)
            if s['pooled'] is not None:
                a.errorbar(i, 100 * s['pooled'], [[100 * (s['pooled'] - s['ci_lo'])], [100 * (s['ci_hi'] - s['pooled'])]], fmt='s', color='C0', capsize=4)
            if s['paper']: a.plot(i - 0.15, float(s['paper'].split()[0]), 'x', color='C3', ms=8)
        a.set_xticks(x, [f"{s['arm']}\n({s['seeds_done']}/{len(SEEDS)} seeds)" for s in ss], fontsize=8)
        a.set(xlim=(-0.5, len(ss) - 0.5), ylim=(-3, 103), ylabel='final success (%, 50 episodes per seed)', title=title)
        a.plot([], [], 's', color='C0', label='pooled, 95% CI'); a.plot([], [], 'o', color='grey', label='one seed')
        if q == 'components': a.plot([], [], 'x', color='C3', label='paper (1M steps)')
        a.legend(fontsize=7, loc='upper right')
        for i, s in enumerate(ss):
            st, m, sd, k = _curve_stats(runs, s['arm'])
            if len(st): ax[1, col].plot(st, 100 * m, color=f'C{i}', label=f"{s['arm']} ({k} runs, {s['seeds_done']} done)"); ax[1, col].fill_between(st, 100 * (m - sd), 100 * (m + sd), color=f'C{i}', alpha=0.2)
        ax[1, col].set(xlabel='gradient steps', ylabel='success (%, 15 episodes)', ylim=(-3, 103), title='during training, mean ± std over seeds')
        ax[1, col].legend(fontsize=7)
    fig.suptitle('Which parts of MAC matter at CPU scale (cube-single task 2, 28k steps, seeds 0-2; pooled 95% intervals against MAC\'s)')
    fig.tight_layout(); fig.savefig(path)


# %% [markdown]
# The table in `summary.md`, one row per arm, and `write_ablations`, which reads every arm's runs and writes all the
# files:

# %%
#| export
def format_summary(summary: list[dict]) -> str:
    "Markdown table of the arms: the paper's figure, per-seed and pooled final success, and the comparison with MAC."
    pct = lambda v: '–' if v is None else f'{100 * v:.0f}'
    lines = ['| arm | paper, cube-single (1M steps) | seeds done | final success per seed | pooled [95% CI] | mean ± std | vs MAC |', '|---|---|---|---|---|---|---|']
    for s in summary:
        pooled = f"{pct(s['pooled'])}% [{pct(s['ci_lo'])}, {pct(s['ci_hi'])}] ({s['successes']}/{s['episodes']})" if s['episodes'] else '–'
        ms = f"{pct(s['mean'])} ± {pct(s['std'])}" if s['mean'] is not None else '–'
        lines.append(f"| {s['arm']} | {s['paper'] or '–'} | {s['seeds_done']}/{len(SEEDS)} | {s['per_seed'] or '–'} | {pooled} | {ms} | {s['vs_mac']} |")
    return '\n'.join(lines) + '\n'

def write_ablations(root='results/ablations', study='results/cpu_study/preset') -> list[dict]:
    "Read every arm's runs and write runs.csv, table.csv, summary.md, ablations.png and provenance.json into `root`."
    root = Path(root); runs = ablation_runs(root, study); summary = summarize(runs)
    write_csv(root / 'runs.csv', [{k: v for k, v in r.items() if k != 'curve'} | {'last_eval_step': max(r['curve'], default='')} for r in runs])
    write_csv(root / 'table.csv', summary); plot_ablations(summary, runs, root / 'ablations.png')
    (root / 'summary.md').write_text('Final success on cube-single task 2 (%), `cpu` preset budget (28k steps), seeds 0-2; every run in runs.csv, '
                                     'the protocol in PROTOCOL.md, the runs made by:\n\n' + ''.join(f'    {c}\n' for c in COMMANDS) + '\n' + format_summary(summary))
    write_json(root / 'provenance.json', provenance(command=f'mac_ablations --root {root} --study {study}', protocol='PROTOCOL.md',
                                                    runs='runs.csv: one row per arm and seed, each with its run folder and that folder\'s provenance.json'))
    return summary


# %%
summary = write_ablations(root, study)
print(format_summary(summary))
test_eq(sorted(p.name for p in root.iterdir() if p.is_file()), ['ablations.png', 'provenance.json', 'runs.csv', 'summary.md', 'table.csv'])
test_eq(len(read_csv(root / 'runs.csv')), len(ARMS) * len(SEEDS))
# the figure's panel title states what the intervals say: MAC (Gau) below MAC, the rest of the panel not yet compared
test_eq(_claim([S[a] for a in ('MAC', 'MAC (Gau)', 'MAC (FQL)', 'MAC w/o π_θ')]), 'MAC (Gau): below MAC\nMAC (FQL), MAC w/o π_θ: not yet compared')


# %% [markdown]
# ## Why an arm does what it does
#
# A success rate says what, not why. `diagnose` ([chapter 10a](10a_main_job.ipynb)) reads a run's final checkpoint
# and measures its behaviour policy alone (N_test = 1) against rejection sampling, whether its value follows the data's
# returns, and how often the agent succeeds inside its own model on the evaluation's start states (imagined success).
# `diagnose_runs` runs it once on each finished run (the MAC and n = 10 arms share theirs) and keeps the records in
# `diagnose.csv`; these are readings, not the protocol's metric (15 episodes on env seeds 1000-1014).

# %%
#| export
def diagnose_runs(root='results/ablations', study='results/cpu_study/preset', fn=None, episodes: int = 15, csv_name: str = 'diagnose.csv',
                  skip_missing: bool = False) -> list[dict]:
    """`diagnose` (or `fn`) on every finished run's final checkpoint, once per run folder (resumable): the rows of `root`/`csv_name`.
    `skip_missing`: pass over runs whose checkpoint is not on this machine (checkpoints are not committed) instead of failing."""
    from mac.main_job import diagnose
    fn, root, path = fn or diagnose, Path(root), Path(root) / csv_name
    rows, runs = read_csv(path), ablation_runs(root, study); have = {r['run'] for r in rows}
    for r in runs:
        if r['status'] != 'done' or r['run'] in have: continue
        d = root / r['run']; d = d / 'run' if (d / 'run').is_dir() else d      # the CPU study keeps its run one folder down
        if skip_missing and not (d / 'checkpoint.pt').exists(): print(f'{r["run"]}: no checkpoint on this machine, skipped'); continue
        arms = ' / '.join(a['arm'] for a in runs if a['run'] == r['run'])
        rows.append(dict(run=r['run'], arms=arms, seed=r['seed'], final_success=r['successes'] / r['episodes'], **fn(d, episodes=episodes)))
        have.add(r['run']); write_csv(path, rows)                                # written after each run: an interruption keeps the rest
    return rows


# %%
calls = []
def fake_diagnose(d, episodes):
    calls.append(Path(os.path.normpath(d)).relative_to(root.parent)); return dict(success_N1=0.1, imagined_success_N32=0.9)
rows = diagnose_runs(root, study, fake_diagnose)
test_eq(sorted(map(str, calls)), sorted([f'cpu_study/preset/s{s}' for s in SEEDS] + [f'ablations/sweep/runs/mac-gau/cube-single-task2/seed{s}' for s in SEEDS]
                                        + ['ablations/sweep/runs/mac-fql/cube-single-task2/seed0']))   # finished runs only, each once
test_eq(next(r for r in rows if r['run'] == '../cpu_study/preset/s0')['arms'], 'MAC / n = 10')
test_eq([r['run'] for r in diagnose_runs(root, study, lambda d, episodes: 1 / 0)], [r['run'] for r in rows])   # nothing left: no call
test_eq(len(read_csv(root / 'diagnose.csv')), 7)
gau1 = root / 'sweep' / 'runs' / 'mac-gau' / 'cube-single-task2' / 'seed1'; (gau1 / 'checkpoint.pt').write_bytes(b'')   # the one checkpoint kept here
calls.clear(); test_eq([r['run'] for r in diagnose_runs(root, study, fake_diagnose, csv_name='other.csv', skip_missing=True)], [str(gau1.relative_to(root))])
test_eq(calls, [gau1.relative_to(root.parent)]); (gau1 / 'checkpoint.pt').unlink()


# %% [markdown]
# ### Does the model hold on the chunks the agent chooses?
#
# `diagnose` can show an agent that succeeds in nearly every imagined episode and fails in the real ones. The model was
# fitted to the dataset's chunks; an acting policy that picks chunks the dataset never took may be choosing exactly
# where the model is wrong in its favour. `model_on_own_chunks` measures that directly. It runs the agent in the real
# environment (whole chunks, the `cpu` preset's rule), and before executing each chunk it asks the run's own model what
# the chunk will do: the state n steps later, and (where the run learns success) whether the task is solved within it.
# After the chunk it compares both with what happened (a chunk
# that the episode's time limit cut short is left out of both comparisons, since it had fewer steps to succeed in). The same model's error on chunks of the dataset's validation
# split gives the scale. A ratio near 1 says the agent stays where the model is accurate; a large one, with predicted
# successes that do not happen, says it exploits the model.

# %% [markdown]
# First the real episodes: before each chunk runs, the model predicts its end state and its success; after it, the real
# ones are recorded beside them.

# %%
#| export
def _own_chunks(ag, norm, cfg, episodes: int, seed: int, device) -> list[dict]:
    "Play `episodes` real episodes with whole chunks; per chunk, the model's prediction beside what happened."
    import torch
    from mac.evaluate import _make_env, eval_env_name
    n, d, g = cfg.agent.n, ag.action_dim, torch.Generator(device).manual_seed(seed)
    T = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)
    env, chunks = _make_env(eval_env_name(cfg.env)), []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i); done = False
            while not done:
                s = norm(T(obs)[None]); a = ag.act(s, g)
                with torch.no_grad(): pred, logit = ag.dynamics(s, a)[0], float(ag.success(s, a)[0])
                real_succ, k, steps = False, 0, np.clip(a[0].cpu().numpy().reshape(n, d), -1, 1)
                for k in range(n):
                    obs, _, term, trunc, info = env.step(steps[k])
                    real_succ |= bool(info['success']); done = term or trunc
                    if done: break
                full, s1 = k == n - 1, norm(T(obs))                         # full: the chunk ran to its end, so its state n steps on is known
                chunks.append(dict(episode=i, obs=s[0].cpu().numpy(), chunk=a[0].cpu().numpy(), full=full, next_obs=s1.cpu().numpy(),
                                   sq_err=float(((s1 - pred) ** 2).mean()) if full else np.nan,
                                   predicted_success=logit > 0, real_success=real_succ))
    finally: env.close()
    return chunks


# %% [markdown]
# Then the same model on the validation split's chunks, for scale, and the comparison:

# %%
#| export
def model_on_own_chunks(run_dir, episodes: int = 5, seed: int = 1000, device='cpu', data_chunks: int = 2000, keep_chunks: bool = False) -> dict:
    "A run's chunk model (normalised states) on chunks its agent picks in the real env, each executed whole whatever the run's re-planning rule, and on validation chunks: dynamics error, predicted vs real success (NaN where the run learns no success). Single-task runs."
    import torch
    from mac.batches import ChunkDataset
    from mac.data import load_ogbench, parse_name
    from mac.train import load_agent
    ag, norm, cfg, ck = load_agent(run_dir, device)
    if parse_name(cfg.env).oraclerep: raise ValueError(f'model_on_own_chunks checks single-task runs; {run_dir} is goal-conditioned ({cfg.env})')
    chunks = _own_chunks(ag, norm, cfg, episodes, seed, device)
    val_env, _, val = load_ogbench(cfg.env, cfg.dataset_dir); val_env.close()
    b = ChunkDataset.from_ogbench(val, norm, ret=cfg.chunk_return, device=device).sample(data_chunks, torch.Generator(device).manual_seed(seed))
    with torch.no_grad():
        data_err = float(ag.dynamics.loss(b['observations'], b['actions'], b['next_observations']))
        data_pred = ag.success(b['observations'], b['actions']) > 0; data_real = b['masks'] == 0
    err = np.array([c['sq_err'] for c in chunks if c['full']])
    judged = [c for c in chunks if c['full'] or c['real_success']]          # a chunk cut short by the time limit had fewer steps to succeed in
    ps, rs = np.array([c['predicted_success'] for c in judged]), np.array([c['real_success'] for c in judged])
    nan = float('nan'); learns = cfg.agent.learn_success
    out = dict(step=ck['step'], episodes=episodes, chunks=len(chunks), own_dyn_mse=float(err.mean()), data_dyn_mse=data_err,
               own_over_data=float(err.mean() / data_err), own_pred_success=float(ps.mean()) if learns else nan, own_real_success=float(rs.mean()),
               own_false_success=float((ps & ~rs).mean()) if learns else nan, data_pred_success=float(data_pred.float().mean()) if learns else nan,
               data_real_success=float(data_real.float().mean()), data_false_success=float((data_pred & ~data_real).float().mean()) if learns else nan,
               episodes_reaching_success=float(np.mean([any(c['real_success'] for c in chunks if c['episode'] == i) for i in range(episodes)])))
    return out | (dict(records=chunks) if keep_chunks else {})


# %%
#| export
@dataclass
class _AblationArgs:
    "Aggregate the ablation sweeps (issue 13) into tables and a figure; reads run folders only, safe while they train."
    root: str = 'results/ablations'             # the ablations folder: PROTOCOL.md and the sweep folders
    study: str = 'results/cpu_study/preset'     # the CPU study's `cpu` preset runs: the MAC arm
    diagnose: bool = False                      # also run `diagnose` on every finished run not yet diagnosed (minutes each)
    model_check: bool = False                   # also run `model_on_own_chunks` (5 episodes) on every finished run not yet checked: model_check.csv
    phases: bool = False                        # also run `cube_phases` (50 episodes) on every finished run not yet placed: phases.csv
    debug: bool = False                         # show the traceback of an error

def ablations_cli(argv=None):
    "Command line: `mac_ablations` → runs.csv, table.csv, summary.md, ablations.png in the ablations folder."
    a = tyro.cli(_AblationArgs, args=argv, prog='mac_ablations')
    def body():
        if not Path(a.root).is_dir(): raise FileNotFoundError(f'no ablations folder {a.root}: run the commands of its PROTOCOL.md first, or pass --root')
        print(format_summary(write_ablations(a.root, a.study)), end=''); print(f'wrote {a.root}/summary.md, table.csv, runs.csv, ablations.png')
        if a.diagnose: diagnose_runs(a.root, a.study); print(f'wrote {a.root}/diagnose.csv')
        if a.model_check:
            rows = diagnose_runs(a.root, a.study, model_on_own_chunks, 5, 'model_check.csv', skip_missing=True)
            print(f'{a.root}/model_check.csv: {len(rows)} runs' if rows else 'no finished run has its checkpoint on this machine: nothing checked')
        if a.phases:
            from mac.main_job import cube_phases
            rows = diagnose_runs(a.root, a.study, cube_phases, 50, 'phases.csv', skip_missing=True)
            print(f'{a.root}/phases.csv: {len(rows)} runs' if rows else 'no finished run has its checkpoint on this machine: nothing placed')
        return 0
    return run_cli('mac_ablations', body, a.debug)


# %%
from mac.core import EXIT_USAGE
test_eq(ablations_cli(['--root', str(root / 'nowhere')]), EXIT_USAGE)

# %% [markdown]
# ## The results
#
# The committed state of the runs (`mac_ablations` reruns this on whatever has finished; a run takes one to
# two and a half hours as one 1-thread process sharing the two cores with one or two others (n = 1's took 142
# minutes), so the grids take several sessions):

# %%
#| echo: false
from IPython.display import Image, Markdown, display
R = Path('../results/ablations')
def show_csv(path, cols):
    "A CSV's columns as a markdown table, numbers to 3 significant digits."
    def fmt(v):
        try: return v if '.' not in v and float(v) == int(float(v)) else f'{float(v):.3g}'
        except (ValueError, OverflowError): return v or '–'
    rows = [[fmt(r.get(c) or '') for c in cols] for r in read_csv(path)]
    display(Markdown('| ' + ' | '.join(cols) + ' |\n|' + '---|' * len(cols) + '\n' + '\n'.join('| ' + ' | '.join(r) + ' |' for r in rows)))
if (R / 'summary.md').exists(): display(Markdown((R / 'summary.md').read_text())); display(Image(R / 'ablations.png'))
if (R / 'diagnose.csv').exists():     # readings, not the metric: 15 episodes on env seeds 1000-1014
    show_csv(R / 'diagnose.csv', ('arms', 'seed', 'final_success', 'success_N1', 'success_N32', 'imagined_success_N32', 'value_return_corr'))
if (R / 'model_check.csv').exists():  # the model on the agent's own chunks: 5 episodes (env seeds 1000-1004), runs whose checkpoint was at hand
    show_csv(R / 'model_check.csv', ('arms', 'seed', 'chunks', 'own_dyn_mse', 'data_dyn_mse', 'own_over_data', 'own_pred_success',
                                     'own_real_success', 'own_false_success', 'data_false_success'))
if (R / 'phases.csv').exists():       # where real episodes end (chapter 10a's cube_phases and PHASES): 50 episodes (env seeds 1000-1049)
    show_csv(R / 'phases.csv', ('arms', 'seed', 'final_success', 'solved', 'unmoved', 'pushed', 'far', 'near'))

# %% [markdown]
# **Reading.** (Written from the committed table; each statement names the arms it rests on. An arm with fewer than
# three finished seeds is shown but not compared.)
#
# *Flow against Gaussian (Table 3; MAC and MAC (Gau), 3 seeds each).* The direction of the paper's result holds: MAC
# (Gau) ends lower, 47% [40, 55] pooled (52, 40, 50% per seed) against MAC's 75% [68, 82] (80, 74, 72%), the intervals
# apart. Its size does not: the paper's MAC (Gau) fails (2 ± 3 against 100 ± 0 at 1M steps), here it solves the task
# about half the time. The `diagnose` rows (15 episodes per run, env seeds 1000-1014) say where both arms' success comes
# from. Neither behaviour policy does much alone (one sampled chunk, N = 1: MAC's one-step policy, distilled from the flow,
# 7-20%; the Gaussian 0-7%); with rejection sampling over 32 candidates MAC's agents reach 73-87% and the Gaussian's
# 33-53%. Inside their own
# models both succeed in nearly every episode (imagined success 87-100%). So at 28k steps the learned critic does most
# of the work in both arms, and the flow's advantage is that the 32 candidates drawn from it (through its distilled one-step policy)
# contain a good chunk more often; a
# Gaussian fitted to multimodal play data puts its mass between the modes, so fewer of its samples are chunks the
# dataset would have taken (a likely reason, not measured here). Whether that gap widens to the paper's collapse with 35× more training, this budget cannot
# say.
#
# *Rejection sampling against FQL extraction (Table 3; MAC and MAC (FQL), 3 seeds each).* MAC (FQL) never solves the
# task at this budget: 0% [0, 2] pooled (0/150, every seed 0%, and 0 of 15 at each of the 14 in-training evaluations of
# every seed), against MAC's 75% [68, 82]. The paper's MAC (FQL) also ends below MAC, but far higher (77 ± 21 against
# 100 ± 0 at 1M steps). The paper's reason for rejection sampling is the one these runs show at its most extreme:
#
# > we employ rejection sampling from an expressive behavioral action-chunk policy, which prevents model exploitation from out-of-distribution actions.
# > (Abstract)
#
# The model check (above; seeds 1 and 2, whose checkpoints were at hand) measures the exploitation directly. On the
# chunks its FQL actor picks, the run's own dynamics model errs 10× and 25× more than on the dataset's chunks (mean
# squared error 0.019 and 0.037 against 0.0018 and 0.0015, normalised states), and its success model declares success
# on 83% and 94% of those chunks, none of which succeed in MuJoCo; on the dataset's own chunks it predicts success on 0.9% and 0.8% of
# them, where 0.6% do succeed (false successes: 0.3% and 0.35%). The
# `diagnose` rows agree: inside its model the agent succeeds in every episode (imagined success 100%, all three
# seeds), its value on dataset states averages −1.3 to −2.1 where MAC's is −4.6 and the data's returns −8.6, and Q
# hardly varies across 32 behaviour samples (standard deviation 0.004-0.011 against MAC's 0.29-0.31): the critic has
# learned that every state is one chunk from success. The gradient of Q moved the actor to chunks the dataset never
# took, where the model is wrong in the agent's favour, and the value learned from the model's rollouts of that actor
# believes it. Rejection sampling can only pick among the behaviour policy's samples, which stay near the chunks the
# model was fitted on. Why the exploitation is total here and partial in the paper is not measured; two differences
# bear on it: the budget (28k steps, 10% of the data), and the `cpu` preset's pretraining (implementation detail 7:
# the FQL actor gets no training in the first 5,000 steps, so the value's first rollouts come from an untrained actor).
#
# *Distillation (Table 15; MAC w/o π_θ, 3 seeds).* The seeds end at 24%, 76% and 82% on their 50 final episodes,
# pooled 61% [53, 68] against MAC's 75% [68, 82]: the intervals touch, so by the protocol the arm is not distinguishable
# from MAC at this budget (the paper: 2 ± 3 against 100 ± 0). The spread between seeds is itself informative, and the
# diagnostics (15 episodes for `diagnose`, 5 for the model check; all three seeds) follow it. The one-step policy
# trained by flow matching alone and sampled with one Euler step solves 0%, 27% and 13% of the diagnostic episodes by
# itself (MAC's distilled one: 7-20%), and 33%, 87% and 87% with rejection sampling over 32 candidates; inside their own
# models all three succeed in 93-100% of the episodes. The seed that fails is the one whose behaviour policy alone
# fails: its 32 candidates contain a good chunk less often, and the critic cannot pick what is not there. The model
# check does not separate the seeds: on the chunks the agent picks, the run's dynamics model errs 148×, 9× and 208× more
# than on the dataset's chunks (a ratio of means, which a few far-off chunks can dominate), and seed 2 succeeds 82% of
# the time with the largest ratio. Unlike MAC (FQL)'s, the success model is not fooled (it predicts success on 1%, 10%
# and 3% of those chunks; 1%, 10% and 7% succeed). One Euler step from noise of a velocity field fitted to multimodal
# chunks lands near an average of the modes, which may be a chunk no demonstration took; seed 0 fits that account, but
# three seeds at 28k steps show it as one failure among three rather than the paper's collapse of the arm.
#
# *Chunk length (Figure 3; n = 1, 5 and MAC's n = 10, 3 seeds each; H = 10 model calls in all).* Without chunks the
# agent rarely solves the task: n = 1 ends at 6%, 16% and 12% on its 50 final episodes, pooled **11% [7, 17]** (17/150),
# against 75% [68, 82] for n = 10, the intervals far apart. The paper's Figure 3 shows the same direction on its
# goal-conditioned cube tasks:
#
# > As shown in Figure 3, action chunking with an appropriate chunk size can substantially improve performance on both
# > tasks.
#
# The diagnostics (15 episodes for `diagnose`, 5 for the model check, all three seeds) place the failure in the values
# the rollouts teach, not in the model's one-step accuracy alone. On dataset transitions the n = 1 model is accurate
# (squared error 0.0004-0.0005 per step, normalised states), but on the steps its own agent picks it errs 26-69× more;
# inside that model the agent succeeds in 87% and 93% of the episodes of seeds 0 and 2 (27% for seed 1), while in
# MuJoCo the behaviour policy alone solves 0-7% and rejection sampling over 32 candidates 7-27%. With n = 1 the
# imagined rollout covers 10 environment steps where MAC's covers 100, and the value has to carry the remaining
# horizon (γ = 0.99 per step) through about ten times as many bootstrapped backups. That is the paper's argument for
# chunks (paraphrased: fewer recursive steps for errors to compound over), and these runs agree with it without isolating it: they
# also change what rejection sampling chooses among (32 single actions, re-planned every step, against 32 ten-step
# chunks).
#
# n = 5 sits between: 44%, 52% and 40% on the final episodes, pooled **45% [38, 53]** (68/150), above n = 1 and below
# n = 10, all three intervals apart. So at this budget success rises with the chunk length over 1, 5 and 10, the
# direction of the paper's claim; where it stops rising is the other half of Figure 3 (n = 25, next). The diagnostics follow the same order. Every n = 5 agent succeeds in all 15 imagined episodes,
# its behaviour policy alone in 0-7% of the real ones, and rejection sampling in 47-73% (MAC: 73-87%; n = 1: 7-27%). On
# the chunks it picks, its dynamics model errs 14-19× more than on the dataset's chunks (n = 1: 26-69×); its success
# net is not fooled (it predicts success on 1-5% of those chunks, about as many as succeed). With n = 5 the imagined
# rollouts reach 50 steps where MAC's reach 100, so the value bootstraps the rest of the episode over twice as many
# backups; these runs are consistent with that account without isolating it (n also changes what the 32 candidates
# are). MAC's own model check is missing: its checkpoints (the CPU study's) are no longer on this machine.
#
# n = 25 (two of three seeds finished; seed 2 trains): 20% and 22% on the final episodes, pooled **21% [14, 30]**
# (21/100), below n = 5 and n = 10 with the intervals apart, and above n = 1 (11% [7, 17]) by less than the intervals
# resolve. So at this budget success rises from n = 1 to n = 10 and falls again at n = 25, the shape that the paper's
# Figure 3 shows on its goal-conditioned cube tasks:
#
# > However, Figure 3 also shows that too long action chunks can degrade performance, mainly due to the difficulty of
# > open-loop multi-step future prediction.
#
# The paper's appendix (its Figure 8, paraphrased) gives a different account: there, n = 25 models err *less* along a
# rollout than shorter chunks, yet the agents do worse, because a larger action space (125 numbers here) makes the
# policy and the Q-function harder to learn. These runs cannot decide between the two. The two seeds' diagnostics agree
# with each other. Inside its own model each agent succeeds in all 15 imagined episodes; in MuJoCo its behaviour policy
# alone solves none of the 15 and rejection sampling over 32 candidates 4 (27%; n = 10: 73-87%). On the chunks it
# picks, its dynamics model errs 53-62× more than on the dataset's chunks (squared error 0.16-0.19 per model call,
# normalised states, against 0.003), a ratio inside n = 1's range (26-69×; n = 5: 14-19×); one model call covers 25
# steps here and one step for n = 1, so these ratios do not rank the arms' models. The success net predicts success on
# 3 of its 33 and 1 of its 35 chunks where 2 and 1 succeed: too few chunks to say whether it is fooled. Where the real
# episodes end says which stage breaks (`mac_ablations --phases`: chapter 10a's `cube_phases` on 50 fresh episodes per
# seed, env seeds 1000-1049). The two seeds solve 13 and 14 of them; of the 73 failures, 25 never moved the cube, 37
# moved it without lifting it, 9 lifted it but never brought it within 8 cm of the target, and 2 came that close
# without placing it (the table's `unmoved`, `pushed`, `far` and `near`). So n = 25 fails at the grasp: 62 of 73 failures never lift the cube. Why is not measured; one
# candidate is that every arm here executes whole chunks (implementation detail 3), so a 25-step chunk runs 25 steps
# without feedback near the cube. The other arms' checkpoints are no longer on this machine, so their phases are not
# measured. Seed 2 will complete the arm.
#
# ## Implementation details
#
# 1. The budget is the `cpu` preset's (28,000 steps, 256×4 networks, batch 256, 100-episode dataset), about 3% of the
#    paper's 1M steps on 10% of its data; nothing is re-tuned per arm. MAC (FQL) uses Table 11's α = 1.0 for
#    cube-single; MAC (Gau) reuses MAC's hyperparameters, as the paper does.
# 2. MAC w/o π_θ is the flow policy trained by flow-matching BC and sampled with one Euler step, which is a one-step
#    policy trained by the flow-matching loss, the paper's description (chapter 4).
# 3. Every arm executes whole chunks at evaluation (`replan_every = 0`, i.e. re-plan every n steps), the `cpu`
#    preset's rule; the official code re-plans every step. For n = 1 this is re-planning every step.
# 4. The MAC arm is not rerun: its three seeds are the CPU study's runs of the unchanged preset, whose final
#    episodes start at environment seed 100,000 while `mac_train`'s start at 1,000,000,000. Both sets are disjoint
#    from training evaluations, and arms are compared by pooled intervals, not paired episodes.
# 5. The paper reports 4 seeds and the last evaluation; the protocol here has 3 seeds and a separate 50-episode final
#    evaluation per seed, so intervals are over 150 episodes.
# 6. The code is pinned: the sweeps' trials run the protocol's commit (5a796d6) from a worktree of their own
#    (`tools/ablate_pinned.sh`), so changes to `mac` made while they train (the faster CPU GELU of chapter 0 came after
#    the protocol) do not reach them; each run's record names its commit and the hash of the source it imported. Two
#    exceptions, both recorded: MAC (Gau) seeds 0 and 1 finished before the pinning, at ba56ea2, which differs from
#    5a796d6 only in reporting code (`mac/experiments/ablations.py`, `mac/main_job.py`); and the MAC arm is the CPU
#    study's runs, made at e00ebe5 (seeds 0, 1) and 5ec4b9a (seed 2), before the goal-conditioned chapters reshaped
#    `mac/agent.py` and `mac/train.py`. A check (`PROTOCOL.md`, 2026-11-29 06:50) trained the `cpu` preset for 30 steps
#    (10 without rollouts, 20 with) at all three commits: the logged losses and every weight after the last step are
#    bit-for-bit equal. Each record also says `dirty: true`: the working tree held uncommitted files (results being
#    written) when it was made; `mac_source_sha256` is the hash of the code the run imported.
# 7. MAC (FQL) meets the `cpu` preset's pretraining differently from MAC. The first 5,000 steps train the models and
#    the policies without rollouts (the preset's departure, chapter 10). MAC's one-step policy is distilled from the
#    flow on dataset states during them; MAC (FQL)'s one-step actor has no dataset loss at all (its only loss is FQL's,
#    on rollout states, as in the official `mbfql.py`), so it is untouched until step 5,000, the first rollouts come
#    from an untrained actor, and it trains for 23,000 of the 28,000 steps. The protocol runs the arm as registered;
#    the reading weighs whether this can explain its result.
# 8. `model_on_own_chunks` and `cube_phases` run with the current code, not the pinned one: they only read the runs'
#    checkpoints (the GELU change moves activations by float rounding), and need the checkpoint on the machine (they
#    are not committed), so they cover the runs that finished on the machine where they ran.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
