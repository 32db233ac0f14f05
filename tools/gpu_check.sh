#!/usr/bin/env bash
# GPU checks for mac in one go (a lent GPU machine has minutes, not hours): the benchmark on CUDA (eager and
# compiled), dataset generation on all cores, a short CUDA training run with evaluations, and CUDA graphs last.
# Usage (repository root, on the GPU machine; MAC_COMMIT names the commit, since the copy's .git may be stale):
#   OUT=/some/dir MAC_COMMIT=<sha> TRAIN_FLAGS="--terminals True --agent.gamma 0.99" bash tools/gpu_check.sh [train steps]
# STAGES picks the stages (default "bench data train graphs": about 9 minutes at the default timeouts; "gc" is the
# goal-conditioned run of issue 14: puzzle-3x3 play data on every core, then `--preset gc-cpu` on CUDA, GC_STEPS steps).
# Packages the machine lacks (ogbench, mujoco, gymnasium, dm_control, tyro, docstring-parser, typeguard, ...) may lie as
# wheels in .whl/ (`pip download --no-deps -d .whl <package>` here, then carry .whl).
# "many" (issue 15): mac_bench --many 1 8: K agents stepped as one CUDA graph of K branches, and their agreement with K alone.
# "cudagraph" (issue 15): mac_bench --cuda-graph: the whole step as one CUDA graph against eager, and its agreement check.
# "main" (issue 17): the main job's preset (`cpu`) on CUDA for MAIN_SEEDS in parallel (one process each), with the
# whole-step CUDA graph if the cudagraph stage found it working (else graph_safe eager; MAIN_GRAPH=True/False decides
# instead; MAIN_TOGETHER=True runs the seeds in one process, `mac_train --seeds`), cut at MAIN_TIMEOUT seconds; MAIN_FLAGS adds mac_train flags, DEV=cpu makes a dry run of the plumbing here.
# "ablate" (issue 13): the ablation arms of results/ablations/PROTOCOL.md on CUDA, one process per arm (its seeds
# ABLATE_SEEDS together, `mac_train --seeds`), all arms at once, ABLATE_STEPS steps (default the CPU budget, 28000),
# whole chunks at evaluation, cut at ABLATE_TIMEOUT seconds; ABLATE_VARIANTS picks arms (default all seven).
# Writes into $RES (default /tmp/mac-gpu-out): bench/ (eager, bfloat16, compiled), train/ (log.csv, eval.csv, provenance.json),
# bench_graphs/, gc/, cudagraph/, many/, main/s<seed>/, ablate/<arm>/s<seed>/; after every stage all of it is packed into $OUT/results.tgz (the
# device tool returns at most 8 files), and the log goes to $OUT/gpu_check.log when run with `| tee`.
set -uo pipefail
OUT=${OUT:-/tmp/mac-gpu}; mkdir -p "$OUT"; STEPS=${1:-20000}; RUN=/tmp/mac-gpu-run; STAGES=${STAGES:-bench data train graphs}
RES=${RES:-/tmp/mac-gpu-out}; mkdir -p "$RES"
pack() { tar -czf "$OUT/results.tgz" -C "$RES" . 2>/dev/null || true; }
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
# a run folder's records (not its checkpoints) copied into the results: keep_run <run folder> <results folder>
keep_run() { mkdir -p "$2"; for f in config.json log.csv eval.csv final_eval.json provenance.json; do [ -f "$1/$f" ] && cp "$1/$f" "$2/"; done; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
python3 -c 'import os, torch, ogbench, mujoco, tyro; from importlib.metadata import version as v; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA (a dry run: DEV=cpu)", "|", *[f"{p} {v(p)}" for p in ("numpy", "ogbench", "mujoco", "gymnasium")], "| cpus", os.cpu_count())' || exit 1

if on bench; then
log "1/5 benchmark on CUDA: paper and cpu presets, eager, bfloat16 autocast and compiled"
timeout ${BENCH_TIMEOUT:-180} bash -c "$(declare -f py); py mac.bench bench_cli --configs paper cpu --reps 50 --device cuda --bf16 --compile --out '$RES/bench'"
log "benchmark rc=$?"; pack
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
mkdir -p "$RES/train"; for f in config.json log.csv eval.csv provenance.json; do [ -f $RUN/$f ] && cp $RUN/$f "$RES/train/"; done
prov "$RES/train" "train_cli --preset cpu --device cuda --steps $STEPS ${TRAIN_FLAGS:-}"
tail -3 $RUN/log.csv 2>/dev/null; cat $RUN/eval.csv 2>/dev/null; pack
fi

if on graphs; then
log "4/5 CUDA graphs: torch.compile mode reduce-overhead, cpu preset"
timeout ${GRAPHS_TIMEOUT:-90} bash -c "$(declare -f py); py mac.bench bench_cli --configs cpu --reps 50 --device cuda --compile-mode reduce-overhead --out '$RES/bench_graphs'"
log "graphs rc=$?"
log "4b/5 CUDA graphs of one whole graph: the same with --graph-safe (global RNG, fullgraph=True)"
timeout ${GRAPHS_TIMEOUT:-90} bash -c "$(declare -f py); py mac.bench bench_cli --configs cpu --reps 50 --device cuda --compile-mode reduce-overhead --graph-safe --out '$RES/bench_graphs_safe'"
log "graph-safe graphs rc=$?"; pack
fi

if on gc; then
log "5/5 goal-conditioned: puzzle-3x3 play data (1000 episodes, every core), then --preset gc-cpu on CUDA for ${GC_TIMEOUT:-300} s"
py mac.data data_cli --env puzzle-3x3 --episodes ${GC_EPISODES:-1000} --workers "$(nproc)" --seed 0 2>&1 | grep -v -i warn
log "gc dataset rc=$?"
rm -rf /tmp/mac-gpu-gc; timeout ${GC_TIMEOUT:-300} bash -c "$(declare -f py); py mac.train train_cli \"\$@\"" _ --preset gc-cpu --device cuda --steps "${GC_STEPS:-4000}" --eval-every "${GC_EVAL_EVERY:-2000}" --eval-workers "$(nproc)" --out /tmp/mac-gpu-gc 2>&1 \
  | tr '\r' '\n' | grep -v -i -e warn -e 'it/s,'
log "gc training rc=$?"
keep_run /tmp/mac-gpu-gc "$RES/gc"
prov "$RES/gc" "train_cli --preset gc-cpu --device cuda --steps ${GC_STEPS:-4000}"; pack
fi
if on cudagraph; then
log "6 whole step as one CUDA graph (sampling, losses, backward, Adam, EMA): agreement with eager, then timings, paper and cpu presets"
timeout ${CUDAGRAPH_TIMEOUT:-150} bash -c "$(declare -f py); py mac.bench bench_cli --configs paper cpu --reps 50 --device cuda --cuda-graph --bf16 --out '$RES/cudagraph' ${CUDAGRAPH_FLAGS:-}"
log "cudagraph rc=$?"
mkdir -p "$RES/cudagraph"; timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_train.py -k "cuda_graph or graph_safe_resume" 2>&1 | tail -5 | tee "$RES/cudagraph/pytest.txt"
log "cudagraph pytest rc=$?"; pack
fi

if on many; then
log "7 K agents in one process: K steps replayed as one CUDA graph of K parallel branches (own generators), against alone; K = ${MANY_K:-1 8}"
timeout ${MANY_TIMEOUT:-150} bash -c "$(declare -f py); py mac.bench bench_cli --configs paper cpu --reps 30 --device cuda --many ${MANY_K:-1 8} --out '$RES/many'"
log "many rc=$?"
mkdir -p "$RES/many"; timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_train.py -k "together or train_many" 2>&1 | tail -5 | tee "$RES/many/pytest.txt"
log "many pytest rc=$?"; pack
fi

if on main; then
GRAPH=${MAIN_GRAPH:-$(python3 -c "import json, sys; r = json.load(open(sys.argv[1])); ok = 'error' not in r.get('cpu/cuda-graph', {'error': 1}) and r.get('cpu/cuda-graph-agreement', {}).get('weight_abs_diff_max', 1) < 1e-4; print(ok)" "$RES/cudagraph/bench.json" 2>/dev/null || echo False)}
log "8 main job's preset (cpu) on CUDA, seeds ${MAIN_SEEDS:-0 1 2} (together in one process: ${MAIN_TOGETHER:-False}; else in parallel with cuda_graph=$GRAPH), cut at ${MAIN_TIMEOUT:-300} s"
py mac.data data_cli --env cube-single --episodes 100 --workers "$(nproc)" --seed 0 2>&1 | grep -v -i warn   # kept if there already
if [ "${MAIN_TOGETHER:-False}" = True ]; then   # the seeds in one process: mac_train --seeds (train_many: one CUDA graph of K branches)
  rm -rf /tmp/mac-gpu-main; mkdir -p /tmp/mac-gpu-main
  timeout ${MAIN_TIMEOUT:-300} bash -c "$(declare -f py); py mac.train train_cli \"\$@\"" _ --preset cpu --device ${DEV:-cuda} --seeds ${MAIN_SEEDS:-0 1 2} \
    --eval-workers ${MAIN_EVAL_WORKERS:-4} ${MAIN_FLAGS:-} --out /tmp/mac-gpu-main > /tmp/mac-gpu-main/together.log 2>&1
  for s in ${MAIN_SEEDS:-0 1 2}; do cp /tmp/mac-gpu-main/together.log /tmp/mac-gpu-main/s$s.log; done
else
for s in ${MAIN_SEEDS:-0 1 2}; do
  rm -rf /tmp/mac-gpu-main/s$s; mkdir -p /tmp/mac-gpu-main
  timeout ${MAIN_TIMEOUT:-300} bash -c "$(declare -f py); py mac.train train_cli \"\$@\"" _ --preset cpu --device ${DEV:-cuda} --seed $s --graph-safe True --cuda-graph $GRAPH \
    --eval-workers ${MAIN_EVAL_WORKERS:-4} ${MAIN_FLAGS:-} --out /tmp/mac-gpu-main/s$s > /tmp/mac-gpu-main/s$s.log 2>&1 &
done
wait
fi
log "main runs ended"
for s in ${MAIN_SEEDS:-0 1 2}; do
  keep_run /tmp/mac-gpu-main/s$s "$RES/main/s$s"
  tr '\r' '\n' < /tmp/mac-gpu-main/s$s.log | grep -v -i -e warn -e 'it/s,' | tail -20 > "$RES/main/s$s/stdout.txt"
  prov "$RES/main/s$s" "train_cli --preset cpu --device cuda --seed $s --graph-safe True --cuda-graph $GRAPH --eval-workers ${MAIN_EVAL_WORKERS:-4} ${MAIN_FLAGS:-}"
  echo "seed $s: $(tail -1 /tmp/mac-gpu-main/s$s/log.csv 2>/dev/null | cut -c1-60) | evals: $(tail -n +2 /tmp/mac-gpu-main/s$s/eval.csv 2>/dev/null | cut -d, -f1,2 | tr '\n' ' ')"
done
pack
fi
if on ablate; then
declare -A ARM=([mac]="" [mac-gau]="--agent.policy gaussian" [mac-fql]="--agent.extraction fql --agent.fql-alpha 1.0"
                [mac-no-distill]="--agent.distill False" [n1]="--agent.n 1" [n5]="--agent.n 5" [n25]="--agent.n 25")
V=${ABLATE_VARIANTS:-mac mac-gau mac-fql mac-no-distill n1 n5 n25}
log "9 ablation arms on ${DEV:-cuda} (${V}), seeds ${ABLATE_SEEDS:-0 1 2} together per arm, ${ABLATE_STEPS:-28000} steps, cut at ${ABLATE_TIMEOUT:-420} s"
py mac.data data_cli --env cube-single --episodes 100 --workers "$(nproc)" --seed 0 2>&1 | grep -v -i warn   # kept if there already
rm -rf /tmp/mac-gpu-ablate; mkdir -p /tmp/mac-gpu-ablate
for v in $V; do
  [[ -v "ARM[$v]" ]] || { log "unknown ablation arm $v (known: ${!ARM[*]})"; continue; }
  timeout ${ABLATE_TIMEOUT:-420} bash -c "$(declare -f py); py mac.train train_cli \"\$@\"" _ --preset cpu --device ${DEV:-cuda} --seeds ${ABLATE_SEEDS:-0 1 2} \
    --steps ${ABLATE_STEPS:-28000} --replan-every 0 --eval-workers ${ABLATE_EVAL_WORKERS:-2} ${ARM[$v]} ${ABLATE_FLAGS:-} --out /tmp/mac-gpu-ablate/$v > /tmp/mac-gpu-ablate/$v.log 2>&1 &
done
wait
log "ablation runs ended"
for v in $V; do
  [[ -v "ARM[$v]" ]] || continue
  mkdir -p "$RES/ablate/$v"; tr '\r' '\n' < /tmp/mac-gpu-ablate/$v.log | grep -v -i -e warn -e 'it/s,' | tail -30 > "$RES/ablate/$v/stdout.txt"
  prov "$RES/ablate/$v" "train_cli --preset cpu --device ${DEV:-cuda} --seeds ${ABLATE_SEEDS:-0 1 2} --steps ${ABLATE_STEPS:-28000} --replan-every 0 --eval-workers ${ABLATE_EVAL_WORKERS:-2} ${ARM[$v]} ${ABLATE_FLAGS:-}"
  for s in ${ABLATE_SEEDS:-0 1 2}; do
    keep_run /tmp/mac-gpu-ablate/$v/s$s "$RES/ablate/$v/s$s"
    echo "$v seed $s: $(tail -1 /tmp/mac-gpu-ablate/$v/s$s/log.csv 2>/dev/null | cut -c1-40) | evals: $(tail -n +2 /tmp/mac-gpu-ablate/$v/s$s/eval.csv 2>/dev/null | cut -d, -f1,2 | tr '\n' ' ')"
  done
done
pack
fi
log "done"
