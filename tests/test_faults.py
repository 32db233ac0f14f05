"""Issue 11: bad input and faults against the command-line tools. Each case exits at once with one line that says
what is wrong, a distinct exit code (2: the user's input, 3: training diverged, 4: the system), no traceback, and
nothing already written lost. Chapter 10's fault table lists the same cases."""
import os
import signal
import subprocess
import time

import pytest
import torch
from conftest import BIN, ROOT


def _run(*args, timeout=600):
    return subprocess.run([str(BIN / args[0]), *map(str, args[1:])], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _one_line_error(r, code, *says):
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    err = [l for l in r.stderr.splitlines() if 'error:' in l]
    assert len(err) == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    for s in says: assert s in err[0], err[0]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp('data')
    assert _run('mac_data', '--env', 'cube-single', '--episodes', '2', '--max-episode-steps', '60', '--dataset-dir', d).returncode == 0
    return d


@pytest.fixture(scope='module')
def tiny_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('run') / 'run'
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', data, '--out', out, '--steps', 20)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.mark.parametrize('flags, says', [
    (['--batch', '0'], "'batch' must be >= 1"), (['--ckpt-every', '0'], "'ckpt_every' must be >= 1"),
    (['--log-every', '0'], "'log_every' must be >= 1"), (['--agent.n', '0'], 'agent.n must be >= 1'),
    (['--agent.policy', 'gausian'], "policy must be 'flow' or 'gaussian'"), (['--reward-agg', 'max'], "reward_agg")])
def test_config_values_are_checked_where_the_config_is_made(flags, says, tmp_path):
    "11.4: every field is range-checked, and the message names the key."
    r = _run('mac_train', '--preset', 'tiny', '--out', tmp_path / 'run', *flags, timeout=120)
    _one_line_error(r, 2, says)
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('flags', [['--steps', '25.5'], ['--agent.lr', 'fast'], ['--agent.actor-hidden', 'abc'],
                                   ['--terminals', 'maybe'], ['--agent.widht', '3']])
def test_config_types_are_checked_before_anything_runs(flags, tmp_path):
    "A malformed or unknown flag stops the command line (tyro, exit code 2) with the flag named and nothing written."
    r = _run('mac_train', '--preset', 'tiny', '--out', tmp_path / 'run', *flags, timeout=120)
    assert r.returncode == 2 and flags[0] in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / 'run').exists()


def test_nan_stop_says_what_exists_and_what_to_do(data, tmp_path):
    "11.3: a divergence before the first checkpoint says none was written; the advice is a fresh run, not --resume."
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', data, '--out', tmp_path / 'nan', '--agent.lr', '1e30',
             '--ckpt-every', '1000', '--log-every', '5', '--steps', 40)
    _one_line_error(r, 3, 'became NaN/inf', 'no checkpoint was written before it', 'start a fresh run', '--agent.lr ')
    assert '--debug' in r.stderr


def test_unreadable_and_forged_checkpoints(data, tiny_run, tmp_path):
    "11.5: an unreadable checkpoint, and one whose observation size differs, are one-line errors."
    import shutil
    bad = tmp_path / 'bad'; shutil.copytree(tiny_run, bad)
    (bad / 'checkpoint.pt').write_bytes(b'not a checkpoint')
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', data, '--out', bad, '--resume', '--steps', 40)
    _one_line_error(r, 2, 'is not a readable mac checkpoint')
    forged = tmp_path / 'forged'; shutil.copytree(tiny_run, forged)
    ck = torch.load(forged / 'checkpoint.pt', weights_only=True); ck['obs_dim'] = 99; torch.save(ck, forged / 'checkpoint.pt')
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', data, '--out', forged, '--resume', '--steps', 40)
    _one_line_error(r, 2, 'expects observations of size 99')
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', data, '--out', tmp_path / 'nothing', '--resume')
    _one_line_error(r, 2, 'nothing to resume')


def test_unwritable_out(data, tmp_path):
    "11.5: an --out that cannot be a folder (below a file; permissions do not stop root) is a one-line error."
    (tmp_path / 'afile').write_text('x')
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', data, '--out', tmp_path / 'afile' / 'run')
    _one_line_error(r, 2, 'cannot write the run folder')


def test_train_and_val_of_different_environments(data, tmp_path):
    "11.5: a train file and a -val file with different observation sizes are refused, not trained on."
    import shutil
    d = tmp_path / 'mixed'; shutil.copytree(data, d)
    assert _run('mac_data', '--env', 'scene', '--episodes', '1', '--max-episode-steps', '40', '--dataset-dir', tmp_path / 'scene').returncode == 0
    shutil.copy(tmp_path / 'scene' / 'scene-play-v0-val.npz', d / 'cube-single-play-v0-val.npz')
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', d, '--out', tmp_path / 'run')
    _one_line_error(r, 2, 'cube-single-play-v0.npz has observations of size 28 but cube-single-play-v0-val.npz has 40')


def test_corrupt_dataset_gives_the_validators_reason(data, tmp_path):
    "11.6: mac_train on a truncated file reports the validator's own reason, not a JSON dump."
    import shutil
    d = tmp_path / 'cut'; shutil.copytree(data, d)
    f = d / 'cube-single-play-v0.npz'; f.write_bytes(f.read_bytes()[:1000]); before = f.read_bytes()
    r = _run('mac_train', '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', d, '--out', tmp_path / 'run')
    _one_line_error(r, 2, 'truncated or corrupt', 'nothing was changed')
    assert f.read_bytes() == before


def test_generation_checks_before_working(tmp_path):
    "11.7: an unusable --dataset-dir and an episode length the validator would reject fail before any episode is made."
    (tmp_path / 'afile').write_text('x')
    t0 = time.time()
    r = _run('mac_data', '--env', 'cube-single', '--episodes', '1000', '--dataset-dir', tmp_path / 'afile')
    _one_line_error(r, 2, 'is a file, not a folder')
    r = _run('mac_data', '--env', 'cube-single', '--episodes', '1000', '--dataset-dir', tmp_path / 'afile' / 'sub')
    _one_line_error(r, 2, 'cannot write datasets into')
    r = _run('mac_data', '--env', 'cube-single', '--episodes', '2', '--max-episode-steps', '1', '--dataset-dir', tmp_path / 'd')
    _one_line_error(r, 2, 'max_episode_steps must be >= 2')
    assert time.time() - t0 < 120 and not (tmp_path / 'd' / 'cube-single-play-v0.npz').exists()


def _children(pid):
    try: return [int(c) for c in open(f'/proc/{pid}/task/{pid}/children').read().split()]
    except OSError: return []


def test_generation_workers_die_with_their_parent(tmp_path):
    "11.8: kill -9 of `mac_data --workers 2` leaves no worker process behind."
    p = subprocess.Popen([str(BIN / 'mac_data'), '--env', 'cube-single', '--episodes', '200', '--workers', '2', '--dataset-dir', str(tmp_path)],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = []
    for _ in range(300):                       # wait for the pool's workers (spawned processes) to exist
        kids = [c for c in _children(p.pid) if 'spawn_main' in open(f'/proc/{c}/cmdline').read().replace('\0', ' ')] if p.poll() is None else []
        if len(kids) >= 2: break
        time.sleep(0.1)
    assert len(kids) >= 2, 'the workers never started'
    time.sleep(2)                              # let them set themselves up (the initializer runs first)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    for _ in range(100):
        alive = [k for k in kids if os.path.exists(f'/proc/{k}') and 'Z' not in open(f'/proc/{k}/stat').read().split()[2]]
        if not alive: break
        time.sleep(0.1)
    for k in alive:
        try: os.kill(k, signal.SIGKILL)
        except OSError: pass
    assert not alive, f'orphaned workers still running: {alive}'


def test_bench_checks_its_arguments_first():
    "11.9: an unknown config name fails before any work (no traceback, no lost results)."
    t0 = time.time()
    r = _run('mac_bench', '--configs', 'tiny', 'nosuch', timeout=120)
    assert r.returncode == 2 and "invalid choice 'nosuch'" in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert 'GFLOP' not in r.stdout and time.time() - t0 < 60
