"""Chapter 12 on a real (local) Ray: a sweep runs, aggregates and is not run twice; a failing trial fails alone; sharded
generation on Ray equals the same files made in one process. Ray is started once for the module (2 CPUs) and stopped."""
import csv
import dataclasses
import json

import numpy as np
import pytest

ray = pytest.importorskip('ray')
# one local Ray for the module: under pytest-xdist (`make test`), its tests stay on one worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group('ray')

from mac.data import generate_dataset, validate_dataset  # noqa: E402
from mac.sweep import expand_grid, generate_shards, run_sweep, shard_paths, sweep_cli, trial_dir, trial_state  # noqa: E402
from mac.train import Trainer  # noqa: E402


@pytest.fixture(scope='module')
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, logging_level='WARNING')
    yield
    ray.shutdown()


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('data')
    generate_dataset('cube-single', 2, d, seed=0, max_episode_steps=60, progress=False)   # 2 + 1 short episodes
    return d


def _sets(data_dir):
    "Tiny trials: 40 steps, one evaluation episode at the end (re-planning every chunk, so it takes a second)."
    return {'dataset_dir': str(data_dir), 'device': 'cpu', 'eval_episodes': 1, 'eval_workers': 1, 'replan_every': 10}


def test_sweep_runs_resumes_aggregates_and_reruns_nothing(ray_session, data_dir, tmp_path, capsys):
    out = tmp_path / 'sweep'
    argv = ['--grid', 'single', '--seeds', '0', '1', '--preset', 'tiny', '--steps', '40', '--cpus-per-trial', '1', '--out', str(out)]
    argv += [a for k, v in _sets(data_dir).items() for a in (f"--set.{k.replace('_', '-')}", str(v))]
    trials = expand_grid('single', seeds=[0, 1], preset='tiny', overrides=_sets(data_dir), steps=40)
    # seed 1 was "killed" after its step-20 checkpoint: the sweep must resume it, not start it over
    half = Trainer(dataclasses.replace(trials[1].config(), steps=20), trial_dir(out, trials[1]), progress=False)
    half.run(); half.close()
    assert [trial_state(out, t) for t in trials] == ['new', 'resume']

    assert sweep_cli(argv) == 0
    printed = capsys.readouterr().out
    assert '1 to resume, 1 new' in printed and 'cube-single | task2 |' in printed, printed
    recs = [json.loads((trial_dir(out, t) / 'trial.json').read_text()) for t in trials]
    assert [(r['status'], r['step'], r['resumed_from']) for r in recs] == [('done', 40, None), ('done', 40, 20)]
    steps = [int(r['step']) for r in csv.DictReader(open(trial_dir(out, trials[1]) / 'log.csv'))]
    assert steps == [10, 20, 30, 40]

    # aggregation: one task cell over both seeds, its runs and their provenance on disk
    table = json.loads((out / 'table.json').read_text())
    [cell] = table['cells']
    assert (cell['env'], cell['task'], cell['n']) == ('cube-single', 2, 2)
    assert cell['mean'] == pytest.approx(np.mean([r['eval']['success'] for r in recs]))
    for run in cell['runs']:
        prov = json.loads((out / run['provenance']).read_text())
        assert prov['trial'] in [t.spec() for t in trials] and 'commit' in prov and prov['config']['steps'] == 40
    assert (out / 'curves.png').exists() and (out / 'table.md').read_text().count('cube-single') == 1

    # the same command again: nothing runs, nothing is rewritten
    mtimes = [(trial_dir(out, t) / 'trial.json').stat().st_mtime_ns for t in trials]
    assert sweep_cli(argv) == 0
    assert '2 done (skipped), 0 to resume, 0 new' in capsys.readouterr().out
    assert [(trial_dir(out, t) / 'trial.json').stat().st_mtime_ns for t in trials] == mtimes


def test_failing_trials_fail_alone(ray_session, data_dir, tmp_path):
    out = tmp_path / 'sweep'
    base = _sets(data_dir) | {'eval_episodes': 0}
    good = expand_grid('single', seeds=[0], preset='tiny', overrides=base, steps=20)
    nan = expand_grid('single', seeds=[1], preset='tiny', overrides=base | {'agent.lr': 1e30}, steps=20)   # diverges in the worker
    typo = expand_grid('single', seeds=[2], preset='tiny', overrides=base | {'agent.widht': 3}, steps=20)  # a bad key
    trials = good + nan + typo
    r = run_sweep(trials, out, cpus_per_trial=1, progress=False)
    assert r['outcomes'][good[0].name]['status'] == 'done'
    assert set(r['failed']) == {nan[0].name, typo[0].name}
    assert 'NonFiniteLoss: loss' in r['failed'][nan[0].name] and 'became NaN/inf' in r['failed'][nan[0].name]
    assert "unknown config key 'agent.widht'" in r['failed'][typo[0].name]
    rows = {row['trial']: row for row in csv.DictReader(open(out / 'results.csv'))}
    assert rows[nan[0].name]['status'] == 'failed' and 'NaN' in rows[nan[0].name]['error']
    # run again: the failures are reported again, not re-run (same seeds, same failure); --retry-failed re-runs them
    again = run_sweep(trials, out, cpus_per_trial=1, progress=False)
    assert (again['ran'], set(again['failed'])) == (0, {nan[0].name, typo[0].name})
    retried = run_sweep(trials, out, cpus_per_trial=1, retry_failed=True, progress=False)
    assert retried['ran'] == 2 and set(retried['failed']) == {nan[0].name, typo[0].name}


def _arrays(path):
    with np.load(path) as f: return {k: f[k] for k in f.files}


def test_distributed_generation_equals_single_process(ray_session, tmp_path):
    kw = dict(seed=3, max_episode_steps=40, progress=False)
    on_ray = generate_shards('cube-single', 2, 2, folder=tmp_path / 'ray', **kw)                    # one Ray task per file
    local = generate_shards('cube-single', 2, 2, folder=tmp_path / 'local', use_ray=False, **kw)
    for i in range(2):
        for a, b in zip(shard_paths(on_ray, 'cube-single', i), shard_paths(local, 'cube-single', i)):
            x, y = _arrays(a), _arrays(b)
            assert set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x), (a, b)
    assert not np.array_equal(_arrays(shard_paths(local, 'cube-single', 0)[0])['actions'][:40],
                              _arrays(shard_paths(local, 'cube-single', 1)[0])['actions'][:40])   # files hold different episodes
    single, single_val = generate_dataset('cube-single', 2, tmp_path / 'single', **kw)             # file 0 = chapter 2's file
    for a, b in zip(shard_paths(on_ray, 'cube-single', 0), (single, single_val)):
        assert all(np.array_equal(v, _arrays(b)[k]) for k, v in _arrays(a).items())
    # resumable: a lost file is made again (the same), a valid one is left alone
    f0, f1 = shard_paths(on_ray, 'cube-single', 0)[0], shard_paths(on_ray, 'cube-single', 1)[0]
    before, m0 = _arrays(f1), f0.stat().st_mtime_ns
    f1.unlink()
    generate_shards('cube-single', 2, 2, folder=tmp_path / 'ray', **kw)
    assert f0.stat().st_mtime_ns == m0 and validate_dataset(f1)['episodes'] == 2
    assert all(np.array_equal(before[k], v) for k, v in _arrays(f1).items())
