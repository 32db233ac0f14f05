#!/usr/bin/env bash
# Fill the core the ablation sweeps leave idle (a grid's last trial running alone, or a gap between grids) with the
# registered goal-conditioned puzzle-3x3 runs (results/gc_puzzle3x3/PROTOCOL.md): one 1-thread `mac_train` at a time,
# paused (SIGSTOP to its process group) whenever two sweep trials run and continued when fewer do, so the machine never
# runs more than two training processes. Runs resume from their checkpoints; a finished run (provenance.json) is
# skipped. Wall times of these runs include their pauses. Usage: nohup bash tools/fill_idle_core.sh > fill.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
for S in ${SEEDS:-0 1 2}; do
  out=results/gc_puzzle3x3/s$S
  [ -f "$out/provenance.json" ] && { echo "s$S done"; continue; }
  args=(--preset gc-cpu --dataset-path "~/.ogbench/data/puzzle-3x3-play-1m-v0" --seed "$S" --out "$out")   # a literal ~: mac_train expands it; records keep ~
  [ -f "$out/checkpoint.pt" ] && args+=(--resume)
  echo "$(date -u +%H:%M) s$S: mac_train ${args[*]}"
  OMP_NUM_THREADS=1 setsid .venv/bin/mac_train "${args[@]}" >> "$out.train.log" 2>&1 &
  pid=$!; state=run; sleep 5   # let setsid make the process group before it is signalled
  while kill -0 "$pid" 2>/dev/null; do
    n=$(pgrep -fc "ray::run_trial" || true)
    if [ "$n" -ge 2 ] && [ $state = run ]; then kill -STOP -- "-$pid" && state=stopped && echo "$(date -u +%H:%M) s$S paused ($n trials)"
    elif [ "$n" -lt 2 ] && [ $state = stopped ]; then kill -CONT -- "-$pid" && state=run && echo "$(date -u +%H:%M) s$S continued ($n trials)"; fi
    sleep 15
  done
  wait "$pid"; echo "$(date -u +%H:%M) s$S exited with $?"
done
