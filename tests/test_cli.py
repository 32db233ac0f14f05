"""Smoke tests of the command-line entry points, as a user runs them (installed console scripts)."""
import csv
import json
import subprocess

import torch
from conftest import BIN, ROOT


def _run(*args, timeout=300):
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_flow_demo_writes_results(tmp_path):
    r = _run('mac_flow_demo', '--out', str(tmp_path / 'toy'), '--steps', '60', '--seed', '1', '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    out = tmp_path / 'toy'
    rows = list(csv.DictReader(open(out / 'coverage.csv')))
    assert len(rows) == 15 and {r['sampler'] for r in rows} == {'data', 'flow, F=1', 'flow, F=2', 'flow, F=5', 'flow, F=10'}
    prov = json.loads((out / 'provenance.json').read_text())
    assert prov['seed'] == 1 and prov['steps'] == 60 and prov['versions']['torch'] and prov['wall_time_s'] > 0
    assert 'mac_flow_demo' in prov['command']
    assert (out / 'samples.png').read_bytes()[:4] == b'\x89PNG'


def test_flow_demo_rejects_bad_steps(tmp_path):
    r = _run('mac_flow_demo', '--out', str(tmp_path / 'x'), '--steps', '0')
    assert r.returncode == 2 and '--steps must be a positive integer' in r.stderr
    assert not (tmp_path / 'x').exists()


def test_flow_demo_rejects_unavailable_device(tmp_path):
    bad = 'cuda:99' if torch.cuda.is_available() else 'cuda'
    r = _run('mac_flow_demo', '--out', str(tmp_path / 'x'), '--steps', '5', '--device', 'tpu')
    assert r.returncode == 2 and "unknown device 'tpu'" in r.stderr
    if not torch.cuda.is_available():
        r = _run('mac_flow_demo', '--out', str(tmp_path / 'x'), '--steps', '5', '--device', bad)
        assert r.returncode == 2 and 'CUDA is not available' in r.stderr


def test_policy_demo_smoke(tmp_path):
    r = _run('mac_policy_demo', '--out', str(tmp_path / 'pol'), '--episodes', '1', '--steps', '20', '--hidden', '32',
             '--dataset-dir', str(tmp_path / 'data'), '--device', 'cpu', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / 'pol' / 'metrics.csv')))
    assert [row['policy'] for row in rows] == ['flow', 'Gaussian']
    assert all(float(row['nearest_of_32_rms']) <= float(row['mean_rms']) for row in rows)
    prov = json.loads((tmp_path / 'pol' / 'provenance.json').read_text())
    assert prov['steps'] == 20 and prov['hidden'] == '32x4' and prov['env'] == 'cube-single-play-v0'
    r = _run('mac_policy_demo', '--steps', '0')
    assert r.returncode == 2 and '--steps must be >= 1' in r.stderr


def test_model_error_smoke_and_bad_input(tmp_path):
    r = _run('mac_model_error', '--out', str(tmp_path / 'me'), '--env', 'cube-single', '--episodes', '1', '--ns', '1', '2',
             '--steps', '10', '--hidden', '16', '--horizon', '10', '--n-traj', '4', '--dataset-dir', str(tmp_path / 'data'),
             '--device', 'cpu', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / 'me' / 'model_error.csv')))
    assert {int(row['n']) for row in rows} == {1, 2} and max(int(row['env_step']) for row in rows) == 10
    r = _run('mac_model_error', '--ns', '1', '3', '--horizon', '10', '--dataset-dir', str(tmp_path / 'data'), '--episodes', '1')
    assert r.returncode == 2 and 'multiple of every chunk length' in r.stderr
    r = _run('mac_model_error', '--ns', 'one')
    assert r.returncode == 2 and '--ns' in r.stderr and 'Traceback' not in r.stderr
