"""Each `mac` module imports in a fresh interpreter: exported code must not lean on notebook globals."""
import subprocess
import sys

import pytest
from conftest import ROOT

MODULES = sorted(p.stem for p in (ROOT / 'mac').glob('*.py') if not p.stem.startswith('_'))


def test_modules_exist():
    assert {'core', 'flow', 'data', 'policies', 'distill', 'models', 'value', 'rejection', 'agent', 'evaluate', 'train', 'bench'} <= set(MODULES)


@pytest.mark.parametrize('mod', MODULES)
def test_import_fresh(mod):
    code = f'import mac.{mod} as m; names = getattr(m, "__all__", []); missing = [n for n in names if not hasattr(m, n)]; assert not missing, missing'
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
