#!/usr/bin/env python
"""The CPU study (issue 17): variants of the `cpu` preset × training seeds, on cube-single task 2, under one fixed protocol.

    python tools/cpu_study.py run --variant preset --seeds 0 1 2 3 4 [--threads 1]   # resumable: run again to continue
    python tools/cpu_study.py behaviour --seeds 0 1 2 3 4                             # the behaviour policy alone, same final episodes
    python tools/cpu_study.py aggregate                                               # table.csv, summary.md, curves.png

The protocol (fixed before any result was looked at; results/cpu_study/PROTOCOL.md says the same in prose):
- every `EVAL_EVERY` training steps, `EVAL_EPISODES` episodes at each re-planning interval in `REPLANS`, with
  environment seeds `seed + step + i` (the training loop's own rule, `Trainer.evaluate`);
- after the last step, a final evaluation of `FINAL_EPISODES` episodes at each interval, environment seeds
  `FINAL_SEED + i`: disjoint from every in-training evaluation (those use seeds below `FINAL_SEED`, checked here)
  and from `diagnose`'s 1000..1014;
- success rates pooled over seeds with a 95% Wilson interval on the episode count, and mean ± std across seeds.
Training is split into `EVAL_EVERY`-step segments of `Trainer(..., resume=True)`, which resumes exactly, so the
segments train the same networks as one uninterrupted run; evaluations draw from their own generators.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / 'results' / 'cpu_study'
EVAL_EVERY, EVAL_EPISODES, REPLANS = 2_000, 15, (1, 5, 10)
FINAL_EPISODES, FINAL_SEED = 50, 100_000

# Variants: a preset plus overrides. Listed in PROTOCOL.md before they run; a new one is appended, never edited.
VARIANTS = {
    'preset': dict(preset='cpu', overrides={'steps': 14_000}),   # the `cpu` preset of a803a98 (14k steps; --steps 28000 is variant 3)
    'data1000': dict(preset='cpu', overrides={'dataset_episodes': 1000, 'dataset_dir': '~/.ogbench/data1000'}),
    # the tasks held out from tuning (PROTOCOL.md): the chosen preset, unchanged but for the task; run with its budget (--steps)
    'heldout_cube4': dict(preset='cpu', overrides={'env': 'cube-single-play-singletask-task4-v0'}),
    'heldout_scene1': dict(preset='cpu', overrides={'env': 'scene-play-singletask-task1-v0'}),
}


def _final_row(r: dict, step: int, replan: int, seed0: int, **extra) -> dict:
    "One row of a 50-episode evaluation file (final.csv and its kin) from an `evaluate` result; `extra` columns follow `replan`."
    return dict(step=step, replan=replan, **extra, success=r['success'], successes=int(sum(r['successes'])), episodes=r['episodes'],
                seed0=seed0, wall_s=r['wall_s'])


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path))) if path.exists() else []


def _evaluate(tr, episodes: int, seed: int, replan: int) -> dict:
    from mac.evaluate import evaluate
    cfg = tr.cfg
    return evaluate(tr.agent, tr.norm, cfg.env, episodes, cfg.eval_workers or None, seed=seed, replan_every=replan)


def run_one(variant: str, seed: int, threads: int, steps: int | None = None):
    import torch
    from mac.core import append_csv, provenance, write_json
    from mac.config import config_to_dict, make_config
    from mac.train import Trainer
    torch.set_num_threads(threads)
    spec = VARIANTS[variant]
    d = OUT / variant / f's{seed}'; d.mkdir(parents=True, exist_ok=True)
    def config(**over):   # the study evaluates by itself: the trainer's own evaluations are off
        return make_config(spec['preset'], {**spec['overrides'], 'seed': seed, 'eval_every': 0, 'eval_episodes': 0, 'final_episodes': 0, **over})
    full = config(**({'steps': steps} if steps else {}))   # a longer budget continues the same runs (exact resume)
    assert full.seed + full.steps + EVAL_EPISODES <= FINAL_SEED, 'in-training evaluation seeds would reach the final ones'
    evals, timing = d / 'evals.csv', d / 'timing.csv'
    done_evals = {(int(r['step']), int(r['replan'])) for r in _rows(evals)}
    done_segments = {int(r['step']) for r in _rows(timing)}
    milestones = list(range(EVAL_EVERY, full.steps, EVAL_EVERY)) + [full.steps]
    tr, worked = None, False
    for k in milestones:
        if k not in done_segments:
            t0 = time.time()
            cfg = config(steps=k)
            if tr is not None and hasattr(tr, 'close'): tr.close()
            tr = Trainer(cfg, d / 'run', resume=(d / 'run' / 'checkpoint.pt').exists(), progress=False)
            start = tr.step; worked = True
            tr.run()
            append_csv(timing, dict(step=k, from_step=start, train_wall_s=round(time.time() - t0, 1), threads=threads,
                                  load_avg=round(os.getloadavg()[0], 2)))
        for rp in REPLANS:
            if (k, rp) in done_evals: continue
            if tr is None or tr.step != k:   # a resumed study: load the checkpoint of this milestone (only the last is kept)
                cfg = config(steps=k)
                if tr is not None and hasattr(tr, 'close'): tr.close()
                tr = Trainer(cfg, d / 'run', resume=True, progress=False)
                if tr.step != k: print(f'{variant}/s{seed}: checkpoint at {tr.step}, cannot evaluate step {k} any more; skipped'); continue
            r = _evaluate(tr, EVAL_EPISODES, seed + k, rp); worked = True
            append_csv(evals, dict(step=k, replan=rp, success=r['success'], episodes=r['episodes'], seed0=seed + k, wall_s=r['wall_s']))
            print(f'{variant}/s{seed} step {k} replan {rp}: {r["success"]:.0%}', flush=True)
    final = d / 'final.csv'
    done_final = {(int(r['step']), int(r['replan'])) for r in _rows(final)}
    if tr is None and any((full.steps, rp) not in done_final for rp in REPLANS): tr = Trainer(full, d / 'run', resume=True, progress=False)
    for rp in REPLANS:
        if (full.steps, rp) in done_final: continue
        r = _evaluate(tr, FINAL_EPISODES, FINAL_SEED, rp); worked = True
        append_csv(final, _final_row(r, tr.step, rp, FINAL_SEED))
        print(f'{variant}/s{seed} final replan {rp}: {r["success"]:.0%} over {r["episodes"]}', flush=True)
    # a longer budget continues and overwrites checkpoint.pt: keep this budget's final weights beside it
    if not (d / 'run' / f'checkpoint_{full.steps}.pt').exists(): shutil.copy2(d / 'run' / 'checkpoint.pt', d / 'run' / f'checkpoint_{full.steps}.pt')
    if not worked: return   # a finished run asked again: its provenance (the code that trained it) stays as written
    train_s = sum(float(r['train_wall_s']) for r in _rows(timing))
    write_json(d / 'provenance.json', provenance(
        seed=seed, wall_time_s=train_s, device=tr.device, variant=variant, preset=spec['preset'], overrides=spec['overrides'],
        config=config_to_dict(tr.cfg), threads=threads, train_wall_s_note='sum of the training segments (timing.csv), evaluations excluded',
        dataset={k: v for k, v in tr.dataset_info.items() if k != 'file'} | {'file': Path(tr.dataset_info['file']).name},
        protocol=dict(eval_every=EVAL_EVERY, eval_episodes=EVAL_EPISODES, replans=REPLANS, final_episodes=FINAL_EPISODES, final_seed=FINAL_SEED)))


def behaviour(variant: str, seeds: list[int]):
    """The behaviour policy alone (N_test = 1: one flow sample per call, no rejection sampling) on each seed's final
    checkpoint, with the final evaluation's 50 episodes and seeds at every interval: MAC's gain over its own behaviour
    policy is then a paired comparison on the same start states. Writes `<variant>/s<seed>/final_behaviour.csv`."""
    _final_with(variant, seeds, 1, 'final_behaviour.csv', REPLANS, 'behaviour policy')


def ntest(variant: str, seeds: list[int], n_tests: list[int]):
    """Rejection sampling with N_test candidates (the preset's is 32) on each seed's final checkpoint, whole chunks, the
    final evaluation's 50 episodes and seeds (PROTOCOL.md, 2026-11-28 04:01). Writes `<variant>/s<seed>/final_ntest.csv`."""
    for n in n_tests: _final_with(variant, seeds, n, 'final_ntest.csv', (10,), f'N_test = {n}')


def _final_with(variant: str, seeds: list[int], n_test: int, name: str, replans, what: str):
    "Each seed's final checkpoint acting with `n_test` candidates, on the final evaluation's episodes; appended to `<seed>/<name>`."
    import torch
    from mac.core import append_csv, provenance, write_json
    from mac.evaluate import evaluate
    from mac.train import load_agent
    torch.set_num_threads(1)
    for seed in seeds:
        d = OUT / variant / f's{seed}'; out = d / name; t0 = time.time()
        ag, norm, cfg, ck = load_agent(d / 'run', 'cpu', n_test=n_test)
        if ck['step'] not in {int(r['step']) for r in _rows(d / 'final.csv')}:   # a run still training: not a final checkpoint
            print(f'{variant}/s{seed}: checkpoint at step {ck["step"]} has no final evaluation yet; skipped'); continue
        done = {(int(r['step']), int(r['replan']), int(r['n_test'])) for r in _rows(out)}
        for rp in replans:
            if (ck['step'], rp, n_test) in done: continue
            r = evaluate(ag, norm, cfg.env, FINAL_EPISODES, None, seed=FINAL_SEED, replan_every=rp)
            append_csv(out, _final_row(r, ck['step'], rp, FINAL_SEED, n_test=n_test))
            print(f'{variant}/s{seed} {what}, replan {rp}: {r["success"]:.0%} over {r["episodes"]}', flush=True)
        write_json(out.with_name(out.stem + '_provenance.json'), provenance(
            seed=seed, wall_time_s=round(time.time() - t0, 1), command=' '.join(['python tools/cpu_study.py', *sys.argv[1:]]),
            checkpoint=f'{variant}/s{seed}/run/checkpoint.pt (step {ck["step"]})', n_test=n_test, note=f'{what}: the last invocation; rows of earlier ones stay in {name}'))

CONFIRM_SEED = 300_000   # the budget rule's confirmation episodes: used by nothing else


def _passes(v: list) -> bool: return len(v) == 5 and sum(x >= 0.5 for x in v) >= 4   # the "4 of 5 seeds reach 50%"


def _budget_scores(seed0: int) -> dict:
    "step → the five seeds' 50-episode success rates on the episodes from env seed `seed0` (budget study)."
    rows = [r for s in range(5) for r in _rows(OUT / 'budget' / f's{s}' / 'final.csv') if int(r['seed0']) == seed0]
    return {k: [int(r['successes']) / int(r['episodes']) for r in rows if int(r['step']) == k] for k in {int(r['step']) for r in rows}}


def budget(seeds: list[int], start: int = 14_000, last: int = 28_000, every: int = EVAL_EVERY, workers: int = 2):
    """The smallest budget (PROTOCOL.md, 2026-11-28 04:19): each seed continues from its step-`start` checkpoint; at every
    milestone, in order, its checkpoint is kept and scored on the final evaluation's 50 episodes (selection set); the first
    milestone where >= 4 of 5 seeds reach 50% is scored again on fresh episodes (confirmation set), and the study stops
    once a milestone passes both. `workers` 1-thread processes share the seeds. Resumable."""
    import multiprocessing
    from mac.core import provenance, write_json
    with multiprocessing.get_context('spawn').Pool(workers, initializer=_one_thread) as pool:
        for k in range(start + every, last + 1, every):
            if _passes(_budget_scores(FINAL_SEED).get(k - every, [])) and _passes(_budget_scores(CONFIRM_SEED).get(k - every, [])): break
            pool.starmap(_train_to, [(s, k, start) for s in seeds])
            pool.starmap(_score, [(s, k, FINAL_SEED) for s in seeds])
            if _passes(_budget_scores(FINAL_SEED).get(k, [])): pool.starmap(_score, [(s, k, CONFIRM_SEED) for s in seeds])
    for seed in seeds:
        d = OUT / 'budget' / f's{seed}'
        write_json(d / 'provenance.json', provenance(
            seed=seed, command=' '.join(['python tools/cpu_study.py', *sys.argv[1:]]), threads=1, started_from=f'preset/s{seed}/run/checkpoint_{start}.pt',
            wall_time_s=sum(float(r['train_wall_s']) for r in _rows(d / 'timing.csv')), train_wall_s_note='training only (timing.csv), one thread, two processes at a time'))
    for name, seed0 in (('selection', FINAL_SEED), ('confirmation', CONFIRM_SEED)):
        for k, v in sorted(_budget_scores(seed0).items()): print(f'{name} set, step {k}: ' + ' '.join(f'{x:.0%}' for x in v) + f' -> {"passes" if _passes(v) else "fails"}')


def _one_thread():
    import torch; torch.set_num_threads(1)


def _train_to(seed: int, k: int, start: int):
    "Continue one seed's budget run (from its step-`start` checkpoint) to step k, and keep that checkpoint."
    from mac.core import append_csv
    from mac.config import make_config
    from mac.train import Trainer
    spec = VARIANTS['preset']; d = OUT / 'budget' / f's{seed}'; run = d / 'run'; t0 = time.time()
    if (run / f'checkpoint_{k}.pt').exists(): return
    if not (run / 'checkpoint.pt').exists():
        run.mkdir(parents=True, exist_ok=True); shutil.copy2(OUT / 'preset' / f's{seed}' / 'run' / f'checkpoint_{start}.pt', run / 'checkpoint.pt')
    cfg = make_config(spec['preset'], {**spec['overrides'], 'seed': seed, 'eval_every': 0, 'eval_episodes': 0, 'final_episodes': 0, 'steps': k})
    tr = Trainer(cfg, run, resume=True, progress=False); tr.run()
    if hasattr(tr, 'close'): tr.close()
    shutil.copy2(run / 'checkpoint.pt', run / f'checkpoint_{k}.pt')
    append_csv(d / 'timing.csv', dict(step=k, train_wall_s=round(time.time() - t0, 1), threads=1, load_avg=round(os.getloadavg()[0], 2)))
    print(f'budget/s{seed} trained to {k} in {time.time() - t0:.0f} s', flush=True)


def _score(seed: int, step: int, seed0: int):
    "The budget study's 50-episode evaluation of one kept checkpoint (whole chunks), once: a row of budget/s<seed>/final.csv."
    from mac.core import append_csv
    from mac.evaluate import evaluate
    from mac.train import load_agent
    d = OUT / 'budget' / f's{seed}'
    if any(int(r['step']) == step and int(r['seed0']) == seed0 for r in _rows(d / 'final.csv')): return
    ag, norm, cfg, ck = load_agent(d / 'run' / f'checkpoint_{step}.pt', 'cpu'); assert ck['step'] == step
    r = evaluate(ag, norm, cfg.env, FINAL_EPISODES, 1, seed=seed0, replan_every=cfg.actions_per_plan)   # one env: a pool worker cannot start env processes
    append_csv(d / 'final.csv', _final_row(r, step, cfg.actions_per_plan, seed0))
    print(f'budget/s{seed} step {step}, episodes from {seed0}: {r["success"]:.0%}', flush=True)


def explain(variant: str, seeds: list[int], episodes: int = 10, seed0: int = 200_000):
    "How the executed motion differs between re-planning every step and executing whole chunks, on each final checkpoint."
    import numpy as np, torch
    from mac.evaluate import eval_env_name, run_episodes
    from mac.train import load_agent
    rows = []
    for seed in seeds:                            # read-only: the checkpoint alone, no Trainer (and no run-folder lock)
        ag, norm, cfg, ck = load_agent(OUT / variant / f's{seed}' / 'run', 'cpu')
        for rp in REPLANS:
            g = torch.Generator().manual_seed(seed0); chunks = []
            def act(obs):
                with torch.no_grad(): c = ag.act(norm(torch.as_tensor(obs, dtype=torch.float32)), g).numpy()
                chunks.append(c.reshape(len(obs), -1, ag.action_dim)); return c
            r = run_episodes(act, eval_env_name(cfg.env), episodes, 1, seed0, rp, ag.action_dim)
            jerk, flips, i = [], [], 0
            for L in r['lengths']:                 # one env (workers=1): episode by episode, the chunks it asked for
                k = -(-L // rp); x = np.clip(np.concatenate([c[0, :rp] for c in chunks[i:i + k]])[:L], -1, 1); i += k
                jerk.append(np.abs(np.diff(x[:, :4], axis=0)).mean()); flips.append(int((np.diff(np.sign(x[:, 4])) != 0).sum()))
            rows.append(dict(seed=seed, step=ck['step'], replan=rp, episodes=episodes, success=r['success'], arm_change_per_step=round(float(np.mean(jerk)), 4),
                             gripper_sign_flips_per_episode=round(float(np.mean(flips)), 1), mean_length=float(np.mean(r['lengths']))))
            print(rows[-1], flush=True)
    with open(OUT / variant / 'explain.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)


def starts(seeds: list[int], variant: str = 'preset', step: int = 28_000, episodes: int = EVAL_EPISODES, noise_seeds=(1, 2, 3, 4)):
    """Start states or policy noise? Each seed's step-`step` checkpoint (whole chunks) on two sets of `episodes` start states,
    A = that step's in-training evaluation's and B = the final evaluation's first, each with the evaluation's own noise seed
    and `noise_seeds`. Resumable; writes `starts/starts.csv`, `summary.md`, `provenance.json` (PROTOCOL.md, 2026-11-28 03:53)."""
    import numpy as np, torch
    from mac.core import append_csv, provenance, write_json
    from mac.evaluate import evaluate
    from mac.train import load_agent
    torch.set_num_threads(1); out = OUT / 'starts'; path = out / 'starts.csv'; t0 = time.time()
    done = {(int(r['seed']), r['set'], int(r['noise_seed'])) for r in _rows(path)}
    for seed in seeds:
        ag, norm, cfg, ck = load_agent(OUT / variant / f's{seed}' / 'run' / f'checkpoint_{step}.pt', 'cpu')
        for name, s0 in (('A', seed + step), ('B', FINAL_SEED)):
            for ns in (s0, *noise_seeds):
                if (seed, name, ns) in done: continue
                r = evaluate(ag, norm, cfg.env, episodes, cfg.eval_workers or None, seed=s0, replan_every=cfg.agent.n, noise_seed=ns)   # the study's workers: same noise order
                for i, ok in enumerate(r['successes']):
                    append_csv(path, dict(seed=seed, step=ck['step'], set=name, start_seed=s0 + i, noise_seed=ns, own_noise=int(ns == s0), success=int(ok)))
                print(f'{variant}/s{seed} set {name} noise {ns}: {r["success"]:.0%}', flush=True)
    rows = _rows(path); lines = ['| seed | set | own noise (of 15) | all 5 noise seeds | per start state (successes of 5) | between-start share of variance |', '|---|---|---|---|---|---|']
    for seed in sorted({int(r['seed']) for r in rows}):
        for name in ('A', 'B'):
            rs = [r for r in rows if int(r['seed']) == seed and r['set'] == name]
            st = sorted({int(r['start_seed']) for r in rs}); k = len({r['noise_seed'] for r in rs})
            y = np.array([[int(r['success']) for r in rs if int(r['start_seed']) == s] for s in st], dtype=float)   # (starts, noise draws)
            m = y.mean(1); within = (m * (1 - m)).mean() * k / (k - 1); between = max(m.var(ddof=1) - within / k, 0.0)
            own = sum(int(r['success']) for r in rs if r['own_noise'] == '1')
            lines.append(f"| {seed} | {name} (env seeds {st[0]}+) | {own}/{len(st)} | {y.sum():.0f}/{y.size} ({y.mean():.0%}) | "
                         f"{' '.join(str(int(v)) for v in y.sum(1))} | {between / (between + within) if between + within else 0:.0%} |")
    (out / 'summary.md').write_text(f'Step-{step} checkpoints of `{variant}`, whole chunks: start states (rows of 15) × policy-noise seeds (5 each); '
                                    'every episode in starts.csv.\n\n' + '\n'.join(lines) + '\n')
    write_json(out / 'provenance.json', provenance(command=f'python tools/cpu_study.py starts --seeds {" ".join(map(str, seeds))}', wall_time_s=round(time.time() - t0, 1),
                                                   checkpoints=[f'{variant}/s{s}/run/checkpoint_{step}.pt' for s in seeds], noise_seeds=list(noise_seeds),
                                                   note='wall time of the last invocation only (resumable); beside two 1-thread ablation trials'))
    print((out / 'summary.md').read_text())


def aggregate():
    from mac.evaluate import wilson
    import numpy as np
    rows, curves = [], {}
    for vdir in sorted(p for p in OUT.iterdir() if p.is_dir()):
        for sdir in sorted(vdir.glob('s*')):
            for r in _rows(sdir / 'final.csv'):             # the budget study's confirmation episodes are their own row
                rows.append(dict(variant=vdir.name + (':confirm' if r.get('seed0') == str(CONFIRM_SEED) else ''), seed=int(sdir.name[1:]), replan=int(r['replan']), step=int(r['step']),
                                 successes=int(float(r['successes'])), episodes=int(r['episodes'])))
            for r in _rows(sdir / 'final_behaviour.csv'):   # the behaviour policy alone (N_test = 1), same episodes
                rows.append(dict(variant=f'{vdir.name}:behaviour', seed=int(sdir.name[1:]), replan=int(r['replan']), step=int(r['step']),
                                 successes=int(float(r['successes'])), episodes=int(r['episodes'])))
            for r in _rows(sdir / 'final_ntest.csv'):       # other numbers of candidates (N_test), same episodes
                rows.append(dict(variant=f'{vdir.name}:N{r["n_test"]}', seed=int(sdir.name[1:]), replan=int(r['replan']), step=int(r['step']),
                                 successes=int(float(r['successes'])), episodes=int(r['episodes'])))
            for r in _rows(sdir / 'evals.csv'):
                curves.setdefault((vdir.name, int(r['replan'])), {}).setdefault(int(sdir.name[1:]), {})[int(r['step'])] = float(r['success'])
    table = []
    for (v, st, rp) in sorted({(r['variant'], r['step'], r['replan']) for r in rows}):
        rs = sorted((r for r in rows if r['variant'] == v and r['replan'] == rp and r['step'] == st), key=lambda r: r['seed'])
        k, n = sum(r['successes'] for r in rs), sum(r['episodes'] for r in rs)
        per = [r['successes'] / r['episodes'] for r in rs]
        lo, hi = wilson(k, n)
        seeds_c = curves.get((v, rp), {})
        last2 = [sorted((k, x) for k, x in seeds_c[r['seed']].items() if k <= st)[-2:] for r in rs if r['seed'] in seeds_c]  # up to this budget
        gaps = [abs(c[1][1] - c[0][1]) for c in last2 if len(c) == 2]
        table.append(dict(variant=v, step=st, replan=rp, seeds=len(rs), per_seed=' '.join(f'{p:.0%}' for p in per),
                          seeds_ge_50=sum(p >= 0.5 for p in per), pooled=round(k / n, 3), ci_lo=round(lo, 3), ci_hi=round(hi, 3),
                          mean=round(float(np.mean(per)), 3), std=round(float(np.std(per)), 3),
                          max_last2_gap=round(max(gaps), 3) if gaps else ''))
    if not table: print('nothing to aggregate yet'); return
    with open(OUT / 'table.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(table[0])); w.writeheader(); w.writerows(table)
    lines = ['| variant | steps | replan | seeds | final success per seed (50 ep.) | seeds ≥ 50% | pooled [95% Wilson CI] | mean ± std over seeds | max gap, last two evals |',
             '|---|---|---|---|---|---|---|---|---|']
    lines += [f"| {t['variant']} | {t['step']:,} | {t['replan']} | {t['seeds']} | {t['per_seed']} | {t['seeds_ge_50']}/{t['seeds']} | {t['pooled']:.0%} "
              f"[{t['ci_lo']:.0%}, {t['ci_hi']:.0%}] | {t['mean']:.0%} ± {t['std']:.0%} | "
              f"{t['max_last2_gap'] if t['max_last2_gap'] == '' else format(t['max_last2_gap'], '.0%')} |" for t in table]
    (OUT / 'summary.md').write_text('\n'.join(lines) + '\n'); print('\n'.join(lines))
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    vs = sorted({v for v, _ in curves} & {r['variant'] for r in rows})   # variants with at least one finished seed
    fig, axes = plt.subplots(1, len(vs), figsize=(5 * len(vs), 3.6), squeeze=False, dpi=100)
    for ax, v in zip(axes[0], vs):
        for rp in REPLANS:
            done = {r['seed'] for r in rows if r['variant'] == v}          # only the seeds that finished
            c = {k: x for k, x in curves.get((v, rp), {}).items() if k in done}
            if not c: continue
            steps = sorted(set.intersection(*[set(x) for x in c.values()]))
            if not steps: continue
            m = np.array([[c[s][t] for t in steps] for s in c])
            ax.plot(steps, m.mean(0), marker='o', label=f're-plan every {rp} ({len(c)} seeds)')
            ax.fill_between(steps, m.mean(0) - m.std(0), m.mean(0) + m.std(0), alpha=0.2)
        ax.set(title=f'{v}: success, mean ± std over seeds', xlabel='training step', ylabel='success (15 episodes)', ylim=(-0.02, 1.02))
        ax.axhline(0.5, color='grey', ls=':', lw=1); ax.legend(fontsize=8)
    fig.tight_layout(); fig.savefig(OUT / 'curves.png'); plt.close(fig)
    fig, ax = plt.subplots(figsize=(1.2 * len(table) + 2, 3.6), dpi=100)     # final success: seeds as dots, pooled with its CI
    for i, t in enumerate(table):
        per = [r['successes'] / r['episodes'] for r in rows if r['variant'] == t['variant'] and r['replan'] == t['replan'] and r['step'] == t['step']]
        ax.scatter([i] * len(per), per, color='grey', s=18, zorder=2)
        ax.errorbar(i, t['pooled'], yerr=[[t['pooled'] - t['ci_lo']], [t['ci_hi'] - t['pooled']]], fmt='o', color='C0', capsize=4, zorder=3)
    ax.set_xticks(range(len(table)), [f"{t['variant']} {t['step'] // 1000}k\nre-plan {t['replan']}" for t in table], fontsize=8)
    ax.axhline(0.5, color='grey', ls=':', lw=1)
    ax.set(ylabel='final success (50 episodes)', ylim=(-0.02, 1.02), title='Final success: seeds (grey), pooled with 95% Wilson CI (blue)')
    fig.tight_layout(); fig.savefig(OUT / 'final.png'); plt.close(fig)
    from mac.core import provenance, write_json
    write_json(OUT / 'provenance.json', provenance(command='python tools/cpu_study.py aggregate', runs=sorted({f"{r['variant']}/s{r['seed']}" for r in rows}),
                                                   note='an index: each run folder holds its own provenance.json (the code and machine that trained it)'))
    print(f'wrote {OUT / "table.csv"}, summary.md, curves.png, final.png, provenance.json')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run'); r.add_argument('--variant', required=True, choices=list(VARIANTS))
    r.add_argument('--seeds', type=int, nargs='+', required=True); r.add_argument('--threads', type=int, default=2)
    r.add_argument('--steps', type=int, default=None, help="train to this many steps instead of the preset's (continues finished runs)")
    sub.add_parser('aggregate')
    b = sub.add_parser('behaviour'); b.add_argument('--variant', default='preset'); b.add_argument('--seeds', type=int, nargs='+', required=True)
    n = sub.add_parser('ntest'); n.add_argument('--variant', default='preset'); n.add_argument('--seeds', type=int, nargs='+', required=True)
    n.add_argument('--n-test', type=int, nargs='+', required=True)
    u = sub.add_parser('budget'); u.add_argument('--seeds', type=int, nargs='+', required=True)
    t = sub.add_parser('starts'); t.add_argument('--seeds', type=int, nargs='+', required=True); t.add_argument('--threads', type=int, default=1)
    x = sub.add_parser('explain'); x.add_argument('--variant', default='preset'); x.add_argument('--seeds', type=int, nargs='+', required=True)
    a = ap.parse_args()
    if a.cmd == 'aggregate': aggregate()
    elif a.cmd == 'explain': explain(a.variant, a.seeds)
    elif a.cmd == 'starts': starts(a.seeds)
    elif a.cmd == 'budget': budget(a.seeds)
    elif a.cmd == 'ntest': ntest(a.variant, a.seeds, a.n_test)
    elif a.cmd == 'behaviour': behaviour(a.variant, a.seeds)
    else:
        for s in a.seeds: run_one(a.variant, s, a.threads, a.steps)
