import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin/, where the console scripts live
os.environ.setdefault('MUJOCO_GL', 'egl')
# Under pytest-xdist (`make test` runs TEST_WORKERS processes) the workers share the cores rather than each taking all
# of them: cores // workers threads for torch in each worker and the notebook kernels it starts, unless set already.
_workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
if _workers > 1:
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, len(os.sched_getaffinity(0)) // _workers)))
sys.path.insert(0, str(ROOT / 'tools'))
