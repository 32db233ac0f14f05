"""Every notebook is a test module: run each one through `nbdev_test` (a fresh kernel per notebook), one pytest
test per notebook, so CI prints a normal `N passed` line. `#| slow` cells are skipped (settings.ini tst_flags)."""
import subprocess

import pytest
from conftest import BIN, ROOT
from nbtools import notebooks as _notebooks  # aliased: pytest would collect a plain `test_*` helper


def _testable():
    "Notebooks nbdev_test would run: not under a folder holding a `.notest` file."
    return [p for p in _notebooks() if not any((d / '.notest').exists() for d in p.parents if ROOT in d.parents or d == ROOT)]


NOTEBOOKS = _testable()


def test_there_are_notebooks_to_test():
    assert len(NOTEBOOKS) >= 2, f'nbdev_test would test {len(NOTEBOOKS)} notebooks: is nbs/ missing?'


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb):
    r = subprocess.run([str(BIN / 'nbdev_test'), '--path', str(nb)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and 'Success' in r.stdout, f'{nb.name} failed under nbdev_test:\n{r.stdout}\n{r.stderr[-6000:]}'
