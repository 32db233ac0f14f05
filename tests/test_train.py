"""End to end: `mac_train` (tiny preset) writes logs and a checkpoint, resumes, rejects bad input; the main job
(`mac_quickstart --smoke`) runs the whole pipeline including an evaluation."""
import csv
import dataclasses
import json
import subprocess

import pytest
import torch
from conftest import BIN, ROOT


def _run(*args, timeout=900):
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_mac_train_tiny_resume_and_errors(tmp_path):
    common = ['--preset', 'tiny', '--device', 'cpu', '--dataset-dir', str(tmp_path / 'data'), '--out', str(tmp_path / 'run')]
    r = _run('mac_train', *common, '--steps', '20')
    assert r.returncode == 0, r.stderr[-3000:]
    ck = torch.load(tmp_path / 'run' / 'checkpoint.pt', weights_only=True)
    assert ck['step'] == 20 and all(torch.isfinite(v).all() for v in ck['agent'].values() if v.is_floating_point())
    r = _run('mac_train', *common, '--steps', '40', '--resume')
    assert r.returncode == 0, r.stderr[-3000:]
    assert [int(row['step']) for row in csv.DictReader(open(tmp_path / 'run' / 'log.csv'))] == [10, 20, 30, 40]
    prov = json.loads((tmp_path / 'run' / 'provenance.json').read_text())
    assert prov['config']['steps'] == 40 and prov['preset'] == 'tiny'
    r = _run('mac_train', *common, '--steps', '40')                      # the folder holds a run: refuse, keep it
    assert r.returncode == 2 and '--resume' in r.stderr
    r = _run('mac_train', *common, '--steps', '60', '--resume', '--batch', '8')
    assert r.returncode == 2 and 'cannot resume with a different batch' in r.stderr
    r = _run('mac_train', '--preset', 'tiny', '--agent.widht', '3')
    assert r.returncode == 2 and 'Unrecognized options: --agent.widht' in r.stderr
    r = _run('mac_train', '--preset', 'tiny', '--env', 'cube-sextuple-play-singletask-task1-v0')
    assert r.returncode == 2 and 'supported are cube-single' in r.stderr


def test_quickstart_smoke(tmp_path):
    r = _run('mac_quickstart', '--smoke', '--out', str(tmp_path / 'qs'), '--dataset-dir', str(tmp_path / 'data'), '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / 'qs' / 'summary.json').read_text())
    assert s['steps'] == 20 and len(s['successes']) == 2 and 0 <= s['success'] <= 1 and s['provenance']['commit']
    assert (tmp_path / 'qs' / 'success.png').exists() and (tmp_path / 'qs' / 'run' / 'log.csv').exists()


def test_compiled_training_matches_eager(tmp_path):
    """`compile=True` (torch.compile of the losses) runs the same update: same losses, same weights, up to float rounding."""
    from mac.config import make_config
    from mac.train import Trainer
    runs = {}
    for comp in (False, True):
        cfg = make_config('tiny', {'steps': 6, 'log_every': 3, 'ckpt_every': 6, 'device': 'cpu', 'compile': comp,
                                   'dataset_dir': str(tmp_path / 'data')})
        tr = Trainer(cfg, tmp_path / f'run{comp}', progress=False); tr.run()
        assert getattr(tr, '_compiled_ok', False) == comp      # the compiled run did compile (no silent eager fallback)
        runs[comp] = (list(csv.DictReader(open(tmp_path / f'run{comp}' / 'log.csv'))), tr.agent.state_dict())
    (log_e, sd_e), (log_c, sd_c) = runs[False], runs[True]
    for re_, rc in zip(log_e, log_c):
        for k in ('dynamics', 'reward', 'flow', 'distill', 'value', 'critic'):
            assert abs(float(re_[k]) - float(rc[k])) <= 1e-4 * max(1.0, abs(float(re_[k]))), (k, re_[k], rc[k])
    assert max((sd_e[k] - sd_c[k]).abs().max().item() for k in sd_e if sd_e[k].is_floating_point()) < 1e-3


def test_graph_safe_compiles_as_one_graph(tmp_path, monkeypatch):
    """Issue 15: `graph_safe` (noise from the global RNG) lets torch.compile capture the losses with fullgraph=True, and the
    compiled run trains as its eager twin (inductor told to draw random numbers as eager does, so both see the same noise)."""
    import torch._inductor.config as inductor_config
    from mac.config import make_config
    from mac.train import Trainer
    monkeypatch.setattr(inductor_config, 'fallback_random', True)
    runs = {}
    for comp in (False, True):
        cfg = make_config('tiny', {'steps': 4, 'log_every': 2, 'ckpt_every': 4, 'device': 'cpu', 'compile': comp, 'graph_safe': True,
                                   'dataset_dir': str(tmp_path / 'data')})
        tr = Trainer(cfg, tmp_path / f'run{comp}', progress=False); tr.run()
        assert getattr(tr, '_compiled_ok', False) == comp      # fullgraph=True raises on any graph break: this compiled as one graph
        runs[comp] = (list(csv.DictReader(open(tmp_path / f'run{comp}' / 'log.csv'))), tr.agent.state_dict())
    (log_e, sd_e), (log_c, sd_c) = runs[False], runs[True]
    for re_, rc in zip(log_e, log_c):
        for k in ('dynamics', 'flow', 'distill', 'value', 'critic'):
            assert abs(float(re_[k]) - float(rc[k])) <= 1e-4 * max(1.0, abs(float(re_[k]))), (k, re_[k], rc[k])
    assert max((sd_e[k] - sd_c[k]).abs().max().item() for k in sd_e if sd_e[k].is_floating_point()) < 1e-3


def test_graph_safe_resume_is_exact(tmp_path):
    """A `graph_safe` run (batches and noise from the global RNG) stopped at its checkpoint and resumed ends with the
    weights of an uninterrupted run: the global RNG states travel in the checkpoint."""
    from mac.config import make_config
    from mac.train import Trainer
    cfg = make_config('tiny', {'steps': 20, 'log_every': 5, 'ckpt_every': 10, 'device': 'cpu', 'graph_safe': True,
                               'pretrain_steps': 5, 'dataset_dir': str(tmp_path / 'data')})
    Trainer(cfg, tmp_path / 'full', progress=False).run()
    Trainer(dataclasses.replace(cfg, steps=10), tmp_path / 'cut', progress=False).run()
    torch.manual_seed(12345)                                    # the resumed run must not depend on the process's RNG
    Trainer(cfg, tmp_path / 'cut', resume=True, progress=False).run()
    a, b = (torch.load(tmp_path / r / 'checkpoint.pt', weights_only=True)['agent'] for r in ('full', 'cut'))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_trainings_into_one_folder(tmp_path):
    "Issue 11.2: the second training into a busy --out fails at once, naming the holder; a killed holder frees it."
    common = ['--preset', 'tiny', '--device', 'cpu', '--dataset-dir', str(tmp_path / 'data'), '--out', str(tmp_path / 'run')]
    assert _run('mac_data', '--env', 'cube-single', '--episodes', '2', '--max-episode-steps', '40', '--dataset-dir', str(tmp_path / 'data')).returncode == 0
    first = subprocess.Popen([str(BIN / 'mac_train'), *common, '--steps', '1000000'], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import time
        for _ in range(600):                                  # wait until the first run is training (its lock file names it)
            lock = tmp_path / 'run' / '.lock'
            if lock.exists() and f'"pid": {first.pid}' in lock.read_text(): break
            time.sleep(0.1)
        r = _run('mac_train', *common, '--steps', '40', timeout=120)
        assert r.returncode == 2 and 'in use by another training' in r.stderr and f'"pid": {first.pid}' in r.stderr, r.stderr[-2000:]
    finally:
        first.kill(); first.wait()
    resume = ['--resume'] if (tmp_path / 'run' / 'checkpoint.pt').exists() else []
    r = _run('mac_train', *common, '--steps', '40', *resume)       # the stale lock file does not block the next run
    assert r.returncode == 0, r.stderr[-2000:]


def test_final_evaluation_seeds_are_disjoint_from_training_evaluations(tmp_path, monkeypatch):
    "Issue 17: the final evaluation's environments are seeded apart from every in-training evaluation's."
    import mac.train as T
    seen = []
    def fake_evaluate(agent, norm, env, episodes, workers=None, seed=0, replan_every=1, progress=False, venv=None):
        seen.append((seed, episodes))
        return dict(success=0.0, successes=[0.0] * episodes, episodes=episodes, replan_every=replan_every, wall_s=0.0, protocol='fake')
    class NoEnvs:   # no env processes for a fake evaluation, of the size a real set would have
        def __init__(self, episodes, workers=None): self.num_envs = T.env_count(episodes, workers)
        def close(self): pass
    monkeypatch.setattr(T, 'evaluate_agent', fake_evaluate); monkeypatch.setattr(T, 'plot_success', lambda *a, **k: None)
    monkeypatch.setattr(T, 'eval_venv', lambda env, episodes, workers=None: NoEnvs(episodes, workers))
    from mac.config import make_config
    cfg = make_config('tiny', {'dataset_dir': str(tmp_path / 'data'), 'device': 'cpu', 'seed': 3, 'steps': 40,
                                 'eval_every': 10, 'eval_episodes': 15, 'final_episodes': 50})
    res = T.Trainer(cfg, tmp_path / 'run', progress=False).run()
    *training, final = seen
    assert [s for s, _ in training] == [13, 23, 33, 43] and final == (T.FINAL_EVAL_SEED, 50) and res['final']['episodes'] == 50
    used = {s + i for s, n in training for i in range(n)}
    assert used.isdisjoint(range(final[0], final[0] + final[1]))
    assert json.loads((tmp_path / 'run' / 'final_eval.json').read_text())['seed'] == T.FINAL_EVAL_SEED
    # a fresh run over an earlier run's records but not its checkpoint (a clone of a committed run folder): it evaluates
    # its own final weights, and its log holds only its own rows
    (tmp_path / 'run' / 'checkpoint.pt').unlink(); seen.clear()
    T.Trainer(cfg, tmp_path / 'run', progress=False).run()
    assert seen[-1] == (T.FINAL_EVAL_SEED, 50)
    steps = [int(r['step']) for r in csv.DictReader(open(tmp_path / 'run' / 'log.csv'))]
    assert steps == sorted(set(steps)) and steps[-1] == 40
    seen.clear()   # replan_every = 0: every evaluation executes whole chunks of agent.n actions
    T.Trainer(dataclasses.replace(cfg, replan_every=0, steps=20, agent=dataclasses.replace(cfg.agent, n=5)), tmp_path / 'run0', progress=False).run()
    assert [r['replan_every'] for r in csv.DictReader(open(tmp_path / 'run0' / 'eval.csv'))] == ['5', '5']
    assert json.loads((tmp_path / 'run0' / 'final_eval.json').read_text())['replan_every'] == 5
    import pytest
    with pytest.raises(ValueError, match='would reach the final evaluation'):
        T.Trainer(T.make_config('tiny', {'dataset_dir': str(tmp_path / 'data'), 'steps': T.FINAL_EVAL_SEED, 'eval_episodes': 15}), tmp_path / 'run2', progress=False)


def test_goal_conditioned_run_evaluates_every_goal(tmp_path, monkeypatch):
    "Issue 14: a goal-conditioned run evaluates on the five goals in the real env (short episodes here) and logs each goal."
    import functools
    import mac.train as T
    from mac.goals import goal_eval_venv
    monkeypatch.setattr(T, 'goal_eval_venv', functools.partial(goal_eval_venv, max_episode_steps=10))   # real envs, 10-step episodes
    cfg = T.make_config('tiny', {'env': 'puzzle-3x3-play-oraclerep-v0', 'dataset_dir': str(tmp_path / 'data'), 'device': 'cpu',
                                 'steps': 20, 'eval_every': 10, 'eval_episodes': 2, 'final_episodes': 3, 'eval_workers': 1})
    res = T.Trainer(cfg, tmp_path / 'run', progress=False).run()
    rows = list(csv.DictReader(open(tmp_path / 'run' / 'eval.csv')))
    assert [r['step'] for r in rows] == ['10', '20'] and all(r['episodes'] == '10' for r in rows)
    assert all(f'task{k}' in rows[0] for k in range(1, 6))
    final = json.loads((tmp_path / 'run' / 'final_eval.json').read_text())
    assert sorted(final['per_task']) == ['1', '2', '3', '4', '5'] and all(len(v) == 3 for v in final['successes'].values())
    assert abs(res['final']['success'] - sum(final['per_task'].values()) / 5) < 1e-9
    import pytest
    with pytest.raises(ValueError, match="'dataset_path' is for goal-conditioned runs"):
        T.Trainer(T.make_config('tiny', {'dataset_dir': str(tmp_path / 'data'), 'dataset_path': str(tmp_path)}), tmp_path / 'run2', progress=False)
    with pytest.raises(ValueError, match="'cache_floats' is for goal-conditioned runs"):
        T.Trainer(T.make_config('tiny', {'dataset_dir': str(tmp_path / 'data'), 'cache_floats': 'float16'}), tmp_path / 'run3', progress=False)


def test_goal_conditioned_run_from_a_folder_of_files(tmp_path):
    "Issue 14: `dataset_path` trains on every file pair in a folder (the layout of OGBench's 100M sets), all of them cached."
    import os
    import mac.train as T
    cfg = T.make_config('tiny', {'env': 'puzzle-3x3-play-oraclerep-v0', 'dataset_dir': str(tmp_path / 'data'), 'device': 'cpu', 'steps': 10})
    T.Trainer(cfg, tmp_path / 'one', progress=False).run()                   # makes the 2-episode dataset in dataset_dir
    folder = tmp_path / 'big'; folder.mkdir()
    for i in range(3):
        for suffix in ('', '-val'):
            os.link(tmp_path / 'data' / f'puzzle-3x3-play-v0{suffix}.npz', folder / f'part-{i:03d}{suffix}.npz')
    tr = T.Trainer(dataclasses.replace(cfg, dataset_path=str(folder)), tmp_path / 'many', progress=False)
    import numpy as np
    rows = len(np.load(tmp_path / 'data' / 'puzzle-3x3-play-v0.npz')['terminals'])
    assert len(tr.data.cache.sources) == 3 and len(tr.data.cache) == 3 * rows and set(tr.data.cache.file) == {0, 1, 2}
    tr.run(); assert (folder / 'mac-cache' / 'manifest.json').exists()
    half = T.Trainer(dataclasses.replace(cfg, dataset_path=str(folder), cache_floats='float16'), tmp_path / 'half', progress=False)
    assert half.data.cache.arrays['observations'].dtype == np.float16 and len(half.data.cache) == 3 * rows
    half.run(); assert (folder / 'mac-cache-float16' / 'manifest.json').exists()   # a cache of its own, beside the float32 one
    os.remove(folder / 'part-001-val.npz')
    import pytest
    with pytest.raises(T.DatasetError, match='missing part-001-val.npz'):
        T.Trainer(dataclasses.replace(cfg, dataset_path=str(folder)), tmp_path / 'broken', progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU: tools/gpu_check.sh runs this test there')
def test_cuda_graph_step_trains_as_eager():
    """Issue 15: the whole step (sampling, losses, backward, Adam, EMA) replayed as one CUDA graph gives the losses and
    weights of its eager twin, step by step, when both draw from the same global RNG state."""
    from mac.bench import cuda_graph_agreement
    from mac.config import make_config
    r = cuda_graph_agreement(make_config('tiny').agent, batch=16, steps=8)
    assert max(r['loss_rel_diff']) < 1e-4 and r['weight_abs_diff_max'] < 1e-4, r


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU: tools/gpu_check.sh runs this test there')
def test_agents_stepped_together_train_as_alone():
    """Issue 15: K agents, each with its own generator, replayed as one CUDA graph of K parallel branches, give each
    agent the losses and weights it gets when stepped alone and eagerly."""
    from mac.bench import many_agreement
    from mac.config import make_config
    r = many_agreement(make_config('tiny').agent, K=3, batch=16, steps=8)
    assert max(r['loss_rel_diff']) < 1e-4 and r['weight_abs_diff_max'] < 1e-4, r


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU: tools/gpu_check.sh runs this test there')
def test_trainer_cuda_graph_trains_as_graph_safe_eager(tmp_path):
    """Issue 15: `mac_train --cuda-graph True` (one graph for the pretraining steps, another for the full ones) ends with
    the weights of the same `graph_safe` run trained eagerly, also when stopped at a checkpoint and resumed."""
    from mac.config import make_config
    from mac.train import Trainer
    cfg = make_config('tiny', {'steps': 20, 'log_every': 5, 'ckpt_every': 10, 'device': 'cuda', 'graph_safe': True,
                               'pretrain_steps': 6, 'dataset_dir': str(tmp_path / 'data')})
    Trainer(cfg, tmp_path / 'eager', progress=False).run()
    g = dataclasses.replace(cfg, cuda_graph=True)
    Trainer(dataclasses.replace(g, steps=10), tmp_path / 'graph', progress=False).run()
    Trainer(g, tmp_path / 'graph', resume=True, progress=False).run()
    a, b = (torch.load(tmp_path / r / 'checkpoint.pt', weights_only=True)['agent'] for r in ('eager', 'graph'))
    assert max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point()) < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU: tools/gpu_check.sh runs this test there')
def test_train_many_graph_trains_as_alone(tmp_path):
    """Issue 15: runs stepped together as one CUDA graph of K branches (each with its own registered generator) end with
    the weights each run gets from `Trainer.run` alone, eagerly, with the same seed (pretraining switch included)."""
    from mac.config import make_config
    from mac.train import Trainer, train_many
    cfgs = [make_config('tiny', {'steps': 20, 'log_every': 5, 'ckpt_every': 10, 'device': 'cuda', 'pretrain_steps': 6, 'seed': s,
                                 'dataset_dir': str(tmp_path / 'data')}) for s in (0, 1, 2)]
    for c in cfgs: Trainer(c, tmp_path / f'alone{c.seed}', progress=False).run()
    train_many(cfgs, [tmp_path / f'many{c.seed}' for c in cfgs], graph=True)
    for c in cfgs:
        a, b = (torch.load(tmp_path / f'{r}{c.seed}' / 'checkpoint.pt', weights_only=True)['agent'] for r in ('alone', 'many'))
        assert max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point()) < 1e-4, c.seed


def test_mac_train_seeds_in_one_process(tmp_path):
    "`mac_train --seeds 0 1`: both runs in their own folders, each with a provenance record naming its seed."
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--seeds', '0', '1', '--steps', '10', '--dataset-dir', str(tmp_path / 'data'),
             '--out', str(tmp_path / 'runs'))
    assert r.returncode == 0, r.stderr[-2000:]
    cks = []
    for s in (0, 1):
        assert json.loads((tmp_path / 'runs' / f's{s}' / 'provenance.json').read_text())['seed'] == s
        assert json.loads((tmp_path / 'runs' / f's{s}' / 'config.json').read_text())['seed'] == s
        cks.append(torch.load(tmp_path / 'runs' / f's{s}' / 'checkpoint.pt', weights_only=True)); assert cks[-1]['step'] == 10
    assert any(not torch.equal(cks[0]['agent'][k], cks[1]['agent'][k]) for k in cks[0]['agent'])   # two seeds, two runs
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--seeds', '0', '0', '--out', str(tmp_path / 'x'))
    assert r.returncode == 2 and 'repeats a seed' in r.stderr, r.stderr[-2000:]
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--seeds', '0', '1', '--seed', '3', '--out', str(tmp_path / 'x'))
    assert r.returncode == 2 and '--seed and --seeds' in r.stderr, r.stderr[-2000:]
