#!/usr/bin/env bash
# GPU checks for mac in one go (a lent GPU machine has minutes, not hours): the benchmark on CUDA (eager and
# compiled), dataset generation on all cores, a short CUDA training run with evaluations, and CUDA graphs last.
# Usage (repository root, on the GPU machine; MAC_COMMIT names the commit, since the copy's .git may be stale):
#   OUT=/some/dir MAC_COMMIT=<sha> TRAIN_FLAGS="--terminals True --agent.gamma 0.99" bash tools/gpu_check.sh [train steps]
# STAGES picks the stages (default "bench data train graphs": about 9 minutes at the default timeouts; "gc" is the
# goal-conditioned run of issue 14: puzzle-3x3 play data on every core, then `--preset gc-cpu` on CUDA, GC_STEPS steps).
# Packages the machine lacks (ogbench, mujoco, gymnasium, dm_control, tyro, docstring-parser, typeguard, ...) may lie as
# wheels in .whl/ (`pip download --no-deps -d .whl <package>` here, then carry .whl).
# Writes under $OUT: bench/ (eager, bfloat16, compiled), train/ (log.csv, eval.csv, provenance.json), bench_graphs/, gc/.
set -uo pipefail
OUT=${OUT:-/tmp/mac-gpu}; mkdir -p "$OUT"; STEPS=${1:-20000}; RUN=/tmp/mac-gpu-run; STAGES=${STAGES:-bench data train graphs}
on() { [[ " $STAGES " == *" $1 "* ]]; }
export MUJOCO_GL=${MUJOCO_GL:-disable} PYTHONUNBUFFERED=1 PYTHONPATH=$PWD  # no rendering here; egl needs libEGL
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=$PWD:/tmp/site
fi
t0=$SECONDS
log() { echo "[gpu_check +$((SECONDS - t0))s] $*"; }
py() { python3 -c "import sys; from $1 import $2 as f; sys.exit(f(sys.argv[1:]))" "${@:3}"; }
# a stage's own provenance record (a run cut by its timeout writes none): commit, command, machine, versions
prov() { python3 -c "import sys, json; from mac.core import provenance; open(sys.argv[1] + '/stage_provenance.json', 'w').write(json.dumps(provenance(command=sys.argv[2], device='cuda'), indent=1, default=str))" "$1" "$2" || true; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import os, torch, ogbench, mujoco, tyro; from importlib.metadata import version as v; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0), "|", *[f"{p} {v(p)}" for p in ("numpy", "ogbench", "mujoco", "gymnasium")], "| cpus", os.cpu_count())' || exit 1

if on bench; then
log "1/5 benchmark on CUDA: paper and cpu presets, eager, bfloat16 autocast and compiled"
timeout ${BENCH_TIMEOUT:-180} bash -c "$(declare -f py); py mac.bench bench_cli --configs paper cpu --reps 50 --device cuda --bf16 --compile --out '$OUT/bench'"
log "benchmark rc=$?"
fi

if on data || on train; then
log "2/5 dataset: cube-single play, 100 episodes, one worker per core"
py mac.data data_cli --env cube-single --episodes 100 --workers "$(nproc)" --seed 0 2>&1 | grep -v -i warn
log "dataset rc=$?"
fi

if on train; then
log "3/5 training on CUDA: cpu preset, $STEPS steps, ${TRAIN_FLAGS:-}"
read -r -a flags <<< "${TRAIN_FLAGS:-}"
rm -rf $RUN; timeout ${TRAIN_TIMEOUT:-180} bash -c "$(declare -f py); py mac.train train_cli \"\$@\"" _ --preset cpu --device cuda --steps "$STEPS" --out $RUN "${flags[@]}" 2>&1 \
  | tr '\r' '\n' | grep -v -i -e warn -e 'it/s,'
log "training rc=$?"
mkdir -p "$OUT/train"; for f in config.json log.csv eval.csv provenance.json; do [ -f $RUN/$f ] && cp $RUN/$f "$OUT/train/"; done
prov "$OUT/train" "train_cli --preset cpu --device cuda --steps $STEPS ${TRAIN_FLAGS:-}"
tail -3 $RUN/log.csv 2>/dev/null; cat $RUN/eval.csv 2>/dev/null
fi

if on graphs; then
log "4/5 CUDA graphs: torch.compile mode reduce-overhead, cpu preset"
timeout ${GRAPHS_TIMEOUT:-90} bash -c "$(declare -f py); py mac.bench bench_cli --configs cpu --reps 50 --device cuda --compile-mode reduce-overhead --out '$OUT/bench_graphs'"
log "graphs rc=$?"
log "4b/5 CUDA graphs of one whole graph: the same with --graph-safe (global RNG, fullgraph=True)"
timeout ${GRAPHS_TIMEOUT:-90} bash -c "$(declare -f py); py mac.bench bench_cli --configs cpu --reps 50 --device cuda --compile-mode reduce-overhead --graph-safe --out '$OUT/bench_graphs_safe'"
log "graph-safe graphs rc=$?"
fi

if on gc; then
log "5/5 goal-conditioned: puzzle-3x3 play data (1000 episodes, every core), then --preset gc-cpu on CUDA for ${GC_TIMEOUT:-300} s"
py mac.data data_cli --env puzzle-3x3 --episodes ${GC_EPISODES:-1000} --workers "$(nproc)" --seed 0 2>&1 | grep -v -i warn
log "gc dataset rc=$?"
rm -rf /tmp/mac-gpu-gc; timeout ${GC_TIMEOUT:-300} bash -c "$(declare -f py); py mac.train train_cli \"\$@\"" _ --preset gc-cpu --device cuda --steps "${GC_STEPS:-4000}" --eval-every "${GC_EVAL_EVERY:-2000}" --eval-workers "$(nproc)" --out /tmp/mac-gpu-gc 2>&1 \
  | tr '\r' '\n' | grep -v -i -e warn -e 'it/s,'
log "gc training rc=$?"
mkdir -p "$OUT/gc"; for f in config.json log.csv eval.csv provenance.json final_eval.json; do [ -f /tmp/mac-gpu-gc/$f ] && cp /tmp/mac-gpu-gc/$f "$OUT/gc/"; done
prov "$OUT/gc" "train_cli --preset gc-cpu --device cuda --steps ${GC_STEPS:-4000}"
fi
log "done"
