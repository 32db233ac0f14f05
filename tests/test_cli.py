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
