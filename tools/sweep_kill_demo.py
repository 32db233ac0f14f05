"""Issue 12: a sweep whose driver is killed with `kill -9` in the middle of a trial, then started again with the same
command, loses at most the work since the trial's last checkpoint. This script shows it and writes the evidence.

    python tools/sweep_kill_demo.py [--steps 600] [--ckpt-every 100] [--kill-after 250] [--out results/sweep_kill]

1. `mac_sweep` (one trial, `tiny` preset, CPU) runs as its own process; once the trial's log reaches `--kill-after`
   steps, the driver gets SIGKILL (no clean-up of any kind).
2. The same command runs again and finishes the sweep.
3. The same trial runs uninterrupted in another sweep folder.
It records the step the killed run had logged, the checkpoint it had written, where the restarted trial resumed
(`trial.json`), the steps done twice, whether any process of the killed sweep outlived it, and whether the final
weights equal the uninterrupted run's (CPU, same seed: the resume is exact). Not a test: a demonstration with
provenance, rerun at will.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _trial_dir(out: Path) -> Path | None:
    "The one trial's run folder (runs/<variant>/<env-task>/<seed>), once its trainer has written its config."
    found = sorted(p.parent for p in (out / 'runs').rglob('config.json')) if (out / 'runs').exists() else []
    return found[0] if found else None


def _last_logged(run: Path | None) -> int:
    f = run / 'log.csv' if run else None
    if not f or not f.exists(): return 0
    steps = [int(r['step']) for r in csv.DictReader(open(f)) if str(r.get('step', '')).isdigit()]
    return max(steps, default=0)


def _ckpt_step(run: Path) -> int | None:
    import torch
    return int(torch.load(run / 'checkpoint.pt', weights_only=True)['step']) if (run / 'checkpoint.pt').exists() else None


def _processes_mentioning(text: str) -> list[str]:
    "Command lines of live processes that mention `text` (here: the killed sweep's folder), this script excluded."
    out = []
    for p in Path('/proc').iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid(): continue
        try: cmd = (p / 'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
        except OSError: continue
        if text in cmd: out.append(f'{p.name}: {cmd[:160]}')
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--steps', type=int, default=600); ap.add_argument('--ckpt-every', type=int, default=100)
    ap.add_argument('--kill-after', type=int, default=250, help='kill the driver once the log reaches this step')
    ap.add_argument('--out', default=str(ROOT / 'results' / 'sweep_kill'))
    a = ap.parse_args(argv)
    if not 0 < a.kill_after < a.steps: ap.error('--kill-after must lie between 0 and --steps')
    import torch
    from mac.core import provenance, write_json
    from mac.data import generate_dataset
    work = Path(tempfile.mkdtemp(prefix='mac-sweep-kill-'))
    data = work / 'data'
    generate_dataset('cube-single', 2, data, max_episode_steps=200, progress=False)
    def command(out):
        return [str(BIN / 'mac_sweep'), '--grid', 'single', '--seeds', '0', '--preset', 'tiny', '--steps', str(a.steps),
                '--set.ckpt-every', str(a.ckpt_every), '--set.log-every', '10', '--set.dataset-dir', str(data), '--set.device', 'cpu',
                '--cpus-per-trial', '1', '--out', str(out)]
    t0 = time.time()
    killed_out = work / 'killed'
    err = open(work / 'driver.stderr', 'w+')
    driver = subprocess.Popen(command(killed_out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    while _last_logged(_trial_dir(killed_out)) < a.kill_after:
        if driver.poll() is not None: err.seek(0); raise SystemExit(f'the sweep ended before step {a.kill_after}: {err.read()[-2000:]}')
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL); driver.wait(); t_kill = time.time()
    from mac.train import RunFolderBusy, lock_run_dir, unlock_run_dir
    run = _trial_dir(killed_out)
    logged_at_kill, ckpt_at_kill = _last_logged(run), _ckpt_step(run)
    # The trial runs in a Ray worker, not in the driver: how long does it outlive the driver? Until its run folder's
    # lock (held by the trainer, released by the kernel when its process dies) can be taken.
    while True:
        try: lock_run_dir(run); unlock_run_dir(run); break
        except RunFolderBusy:
            if time.time() - t_kill > 300: break
            time.sleep(0.2)
    orphan_s = time.time() - t_kill
    logged_when_free, ckpt_when_free = _last_logged(run), _ckpt_step(run)
    ray_left = lambda: sorted(set(_processes_mentioning('ray::') + _processes_mentioning('site-packages/ray/')))
    survivors = ray_left()                     # Ray's own helpers (raylet, agents) notice the driver's death by themselves
    while ray_left() and time.time() - t_kill < 120: time.sleep(1)
    ray_gone_s, survivors_at_end = time.time() - t_kill, ray_left()
    t1 = time.time()
    again = subprocess.run(command(killed_out), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    restart_s = time.time() - t1
    trial = json.loads((run / 'trial.json').read_text())
    t2 = time.time()
    ref = subprocess.run(command(work / 'reference'), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    ref_s = time.time() - t2
    ka = torch.load(run / 'checkpoint.pt', weights_only=True); kb = torch.load(_trial_dir(work / 'reference') / 'checkpoint.pt', weights_only=True)
    equal = all(torch.equal(ka['agent'][k], kb['agent'][k]) for k in kb['agent'])
    rows = [int(r['step']) for r in csv.DictReader(open(run / 'log.csv'))]
    resumed = trial.get('resumed_from')
    res = dict(steps=a.steps, ckpt_every=a.ckpt_every, kill_after=a.kill_after,
               logged_step_at_kill=logged_at_kill, checkpoint_step_at_kill=ckpt_at_kill,
               trial_process_outlived_driver_s=round(orphan_s, 1), logged_step_when_folder_free=logged_when_free,
               checkpoint_step_when_folder_free=ckpt_when_free, ray_processes_when_folder_free=[x.split(': ', 1)[1].split()[0] for x in survivors],
               ray_processes_gone_after_s=round(ray_gone_s, 1), ray_processes_left_after_120s=survivors_at_end,
               resumed_from=resumed, steps_lost=max(0, logged_when_free - (resumed or 0)),
               lost_at_most_since_checkpoint=resumed == ckpt_when_free and logged_when_free - (resumed or 0) <= a.ckpt_every,
               restart_exit_code=again.returncode, restart_status=trial.get('status'),
               final_step=int(ka['step']), final_weights_equal_uninterrupted=equal, log_steps_after_restart=rows,
               restart_wall_s=round(restart_s, 1), uninterrupted_wall_s=round(ref_s, 1), reference_exit_code=ref.returncode)
    for k, v in res.items():
        if k != 'log_steps_after_restart': print(f'{k:36s} {v}')
    out = Path(a.out)
    write_json(out / 'summary.json', res)
    write_json(out / 'provenance.json', provenance(seed=0, wall_time_s=time.time() - t0, device='cpu',
               command='python tools/sweep_kill_demo.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
               sweep_command=['mac_sweep'] + [c.replace(str(work), '<tmp>') for c in command(Path('<sweep folder>'))[1:]]))
    ok = res['lost_at_most_since_checkpoint'] and equal and again.returncode == 0 and not survivors_at_end
    print('OK: the restarted sweep lost at most the work since the last checkpoint and ended with the uninterrupted weights'
          if ok else 'NOT OK: see above')
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
