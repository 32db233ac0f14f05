"""Chapter 2 end to end: generated datasets round-trip through OGBench's own loader for the paper's five
environments, the `mac_data` CLI (workers, skip, bad input), and the noisy recipe."""
import hashlib
import subprocess
import warnings

import numpy as np
import pytest
from conftest import BIN, ROOT

from mac.batches import ChunkDataset, ChunkReturn, ObsNormalizer
from mac.data import REWARD_K, generate_dataset, load_ogbench, validate_dataset

warnings.filterwarnings('ignore', category=UserWarning, module='gymnasium')
OBS_DIM = {'cube-single': 28, 'cube-double': 37, 'scene': 40, 'puzzle-3x3': 55, 'puzzle-4x4': 83}
DEFAULT_TASK = {'cube-single': 2, 'cube-double': 2, 'scene': 2, 'puzzle-3x3': 4, 'puzzle-4x4': 4}


@pytest.mark.parametrize('env', list(OBS_DIM))
def test_roundtrip_through_ogbench(env, tmp_path):
    train, val = generate_dataset(env, 2, tmp_path, seed=0, max_episode_steps=60, progress=False)
    assert validate_dataset(train)['episodes'] == 2 and validate_dataset(val)['episodes'] == 1
    has_buttons = env.startswith(('scene', 'puzzle'))
    assert ('button_states' in np.load(train).files) == has_buttons
    name = f'{env}-play-singletask-task{DEFAULT_TASK[env]}-v0'
    _, tr, va = load_ogbench(name, tmp_path)  # ogbench.make_env_and_datasets: must find the files, not download
    assert tr['observations'].shape == (120, OBS_DIM[env]) and va['observations'].shape == (60, OBS_DIM[env])
    assert tr['actions'].shape == (120, 5) and tr['valids'].sum() == 118
    K = REWARD_K[env]
    assert set(np.unique(tr['rewards'])) <= set(range(-K, 1))  # r = #satisfied sub-goals - K
    data = ChunkDataset.from_ogbench(tr, ObsNormalizer.from_data(va['observations']), ret=ChunkReturn(n=10), device='cpu')
    b = data.sample(32)
    assert b['actions'].shape == (32, 50) and b['observations'].shape == (32, OBS_DIM[env])


def test_noisy_recipe(tmp_path):
    train, _ = generate_dataset('cube-single-noisy', 1, tmp_path, seed=0, max_episode_steps=80, progress=False)
    assert train.name == 'cube-single-noisy-v0.npz' and validate_dataset(train)['transitions'] == 80


def _mac_data(*args, timeout=600):
    return subprocess.run([str(BIN / 'mac_data'), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_cli_workers_do_not_change_the_file(tmp_path):
    common = ['--env', 'puzzle-3x3', '--episodes', '3', '--max-episode-steps', '50', '--seed', '4']
    for w in (1, 2):
        r = _mac_data(*common, '--workers', str(w), '--dataset-dir', str(tmp_path / f'w{w}'))
        assert r.returncode == 0, r.stderr
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    for f in ('puzzle-3x3-play-v0.npz', 'puzzle-3x3-play-v0-val.npz'):
        assert digest(tmp_path / 'w1' / f) == digest(tmp_path / 'w2' / f)


def test_cli_skip_force_and_bad_input(tmp_path):
    args = ['--env', 'cube-single', '--episodes', '2', '--max-episode-steps', '40', '--dataset-dir', str(tmp_path)]
    assert _mac_data(*args).returncode == 0
    f = tmp_path / 'cube-single-play-v0.npz'; before = f.read_bytes()
    r = _mac_data(*args)
    assert r.returncode == 0 and 'skipping' in r.stdout
    r = _mac_data(*args[:3], '3', *args[4:])  # other settings: refuse, keep the file
    assert r.returncode == 2 and '--force' in r.stderr and f.read_bytes() == before
    r = _mac_data('--env', 'cube-sextuple')
    assert r.returncode == 2 and 'supported are cube-single' in r.stderr
    r = _mac_data('--env', 'cube-single', '--episodes', '0')
    assert r.returncode == 2 and '--episodes must be >= 1' in r.stderr
    (tmp_path / 'cut.npz').write_bytes(before[: len(before) // 2])
    r = _mac_data('--validate', str(f), str(tmp_path / 'cut.npz'))
    assert r.returncode == 1 and 'cut.npz' in r.stderr and 'truncated or corrupt' in r.stderr and 'OK' in r.stdout


def test_missing_dataset_says_how_to_make_it(tmp_path):
    with pytest.raises(ValueError, match='mac_data --env scene'):
        load_ogbench('scene-play-singletask-task2-v0', tmp_path)


def test_a_valid_file_is_never_replaced_by_a_missing_twin(tmp_path):
    "Issue 11.1: a lost -val file (or train file) beside a valid one is made alone or refused, never by regenerating both."
    args = ['--env', 'cube-single', '--episodes', '3', '--max-episode-steps', '40', '--dataset-dir', str(tmp_path)]
    assert _mac_data(*args).returncode == 0
    train, val = tmp_path / 'cube-single-play-v0.npz', tmp_path / 'cube-single-play-v0-val.npz'
    before_train, before_val = train.read_bytes(), np.load(val)['observations']
    val.unlink()                                           # same settings: only the missing file is made, as it was
    r = _mac_data(*args)
    assert r.returncode == 0 and 'making only the missing' in r.stdout, r.stderr
    assert train.read_bytes() == before_train and (np.load(val)['observations'] == before_val).all()
    val.unlink()                                           # other settings (a 2-episode request): refuse, change nothing
    r = _mac_data(*args[:3], '2', *args[4:])
    assert r.returncode == 2 and 'nothing was changed' in r.stderr and '--force' in r.stderr
    assert train.read_bytes() == before_train and not val.exists()
    assert _mac_data(*args).returncode == 0; train.unlink()  # a lost train file beside a valid -val made elsewhere:
    train.with_suffix('.json').unlink()                    # no record of how it was made, so refuse
    before_val_bytes = val.read_bytes()
    r = _mac_data(*args)
    assert r.returncode == 2 and 'not made by mac_data' in r.stderr and val.read_bytes() == before_val_bytes and not train.exists()


def test_mac_train_does_not_replace_a_dataset_whose_val_file_is_missing(tmp_path):
    "Issue 11.1 through `mac_train`: a `tiny` run (2 episodes) beside a real train file without its -val twin."
    assert _mac_data('--env', 'cube-single', '--episodes', '3', '--max-episode-steps', '40', '--dataset-dir', str(tmp_path)).returncode == 0
    train = tmp_path / 'cube-single-play-v0.npz'; before = train.read_bytes()
    (tmp_path / 'cube-single-play-v0-val.npz').unlink()
    r = subprocess.run([str(BIN / 'mac_train'), '--preset', 'tiny', '--device', 'cpu', '--dataset-dir', str(tmp_path),
                        '--out', str(tmp_path / 'run')], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and 'nothing was changed' in r.stderr, r.stderr[-2000:]
    assert train.read_bytes() == before
