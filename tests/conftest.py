import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin/, where the console scripts live
os.environ.setdefault('MUJOCO_GL', 'egl')
sys.path.insert(0, str(ROOT / 'tools'))
