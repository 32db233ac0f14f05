#!/usr/bin/env bash
# The ablation protocol's three sweeps (results/ablations/PROTOCOL.md), run with the protocol's own code: commit
# 5a796d6, checked out in a worktree beside this clone (made on first use), with PYTHONPATH on it and its
# results/ablations a link to this clone's, so later changes to `mac` cannot reach these trials. Each sweep resumes
# its trials from their checkpoints. Usage: nohup bash tools/ablate_pinned.sh > ablate.log 2>&1 &
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); PIN=${PIN:-$(dirname "$ROOT")/pin}; COMMIT=5a796d6
if [ ! -d "$PIN" ]; then
  git -C "$ROOT" worktree add --detach "$PIN" "$COMMIT"
  rm -rf "$PIN/results/ablations"; ln -s "$ROOT/results/ablations" "$PIN/results/ablations"
fi
[ "$(git -C "$PIN" rev-parse --short=7 HEAD)" = "$COMMIT" ] || { echo "$PIN is not at $COMMIT"; exit 1; }
cd "$PIN"; export PYTHONPATH="$PIN"
C="--envs cube-single --tasks 2 --seeds 0 1 2 --preset cpu --set.replan-every 0 --cpus-per-trial 1"
"$ROOT/.venv/bin/mac_sweep" --grid table3 --variants mac-gau mac-fql $C --out results/ablations/sweep
"$ROOT/.venv/bin/mac_sweep" --grid table15 --variants mac-no-distill $C --out results/ablations/sweep-table15
"$ROOT/.venv/bin/mac_sweep" --grid fig3 --variants n1 n5 n25 $C --out results/ablations/sweep-fig3
