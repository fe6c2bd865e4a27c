#!/usr/bin/env bash
# What remains of the paper profile's Tables 2 and 4, on one GPU, in one call of a GPU machine: the
# runs without a metrics.json under results/paper/, both tables at once (PARALLEL runs of each share
# the GPU; each table's source sets are made once, through the cache), for at most LIMIT seconds.
# The committed networks seed the cache, so every run is scored against the same attacker networks
# as the committed ones (their sets are made again on the GPU). What comes back in $OUT/results/paper/:
# each run finished in the call (metrics.json, config.yaml, event file), each unfinished one's
# log; checkpoints stay behind (a run is lost when the call ends first). $OUT/summary.txt lists them.
# Copy the finished runs into results/paper/ and commit them (docs/reproduction.md, "On a GPU machine").
#
# Needs what gpu_check.sh needs (.whl/, .mnist/ or MNIST_DIR; refused in one line otherwise). Knobs:
# LIMIT (s from the script's start, 540), PARALLEL (runs per table at once, 4), TABLES ("4 2"),
# RUNS (all), EXTRA (more flags; split on spaces, never globbed). Exit status: 0 when every table
# ended or ran out of time (summary.txt says which), 1 when a table failed, 2 when refused.
set -uo pipefail
start=$(date +%s)
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
LIMIT=${LIMIT:-540}
PARALLEL=${PARALLEL:-4}
TABLES=${TABLES:-4 2}
COMMITTED=${COMMITTED:-results/paper}  # the committed runs and networks (a knob for the tests)
mkdir -p "$OUT/results"
source benchmarks/gpu_env.sh

# The finished runs travel with the tree (git): their metrics.json and config.yaml make advlit reproduce
# skip them (after checking their settings); nothing of the unfinished ones is taken.
$PY - "$OUT/results/paper" "$COMMITTED" <<'PY'
import shutil, sys
from pathlib import Path
out, committed = Path(sys.argv[1]), Path(sys.argv[2])
for metrics in committed.glob("table*/*/metrics.json"):
    (out / metrics.parent.relative_to(committed)).mkdir(parents=True, exist_ok=True)
    for name in ("metrics.json", "config.yaml"):
        shutil.copy(metrics.parent / name, out / metrics.parent.relative_to(committed) / name)
shutil.copy(committed / "PROFILE", out / "PROFILE")
PY
[ $? = 0 ] || refuse "the committed runs do not copy into $OUT"
$PY -m advlit networks seed "$COMMITTED/networks" || refuse "the committed networks do not seed the cache"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1

read -ra runs <<< "${RUNS:-}"
read -ra extra <<< "${EXTRA:-}"
left=$(( LIMIT - ($(date +%s) - start) ))
[ "$left" -gt 30 ] || refuse "LIMIT=$LIMIT s leaves no time after the set-up"
declare -A pids
for t in $TABLES; do
  timeout -k 10 --signal=INT "$left" $PY -m advlit reproduce --table "$t" --profile paper \
    --results "$OUT/results" --parallel "$PARALLEL" ${runs[@]+--runs "${runs[@]}"} --data.data_dir "$DATA" \
    --data.download false --data.progress false --trainer.enable_progress_bar false ${extra[@]+"${extra[@]}"} \
    > "$OUT/table$t.txt" 2>&1 &
  pids[$t]=$!
done
failed=0
declare -A rcs
for t in $TABLES; do
  wait "${pids[$t]}"; rcs[$t]=$?
  # 124/137 is the time limit only when the limit has passed (137 before it: killed, e.g. out of memory)
  case ${rcs[$t]} in
    124|137) [ $(( $(date +%s) - start )) -ge $(( LIMIT - 2 )) ] || rcs[$t]="${rcs[$t]} before the time limit" ;;
  esac
  case ${rcs[$t]} in 0|124|137) ;; *) failed=1 ;; esac
done
find "$OUT/results" -name checkpoints -type d -prune -exec rm -rf {} +
{
  echo "gpu_paper: $(( $(date +%s) - start )) s (limit $LIMIT s), PARALLEL=$PARALLEL per table"
  for t in $TABLES; do
    case ${rcs[$t]} in
      0) echo "table$t: ended (advlit reproduce exit status 0)" ;;
      124|137) echo "table$t: stopped at the time limit (exit status ${rcs[$t]})" ;;
      *) echo "table$t: FAILED (exit status ${rcs[$t]}; its output: table$t.txt)" ;;
    esac
    # every run that failed, those cut short by the time limit included (they end with an interrupt)
    grep -h ": FAILED" "$OUT/table$t.txt" | sed "s/^/table$t: /"
    sent=0
    for run in "$OUT"/results/paper/table$t/*/; do
      [ -d "$run" ] || continue
      name=table$t/$(basename "$run")
      if [ -f "$COMMITTED/$name/metrics.json" ]; then rm -rf "$run"  # finished before: not sent back
      elif [ -f "$run/metrics.json" ]; then echo "$name: finished"; sent=1
      else echo "$name: unfinished (its output: table$t.txt, or $name.log with PARALLEL > 1)"; sent=1; fi
    done
    [ "$sent" = 1 ] || echo "table$t: no run made in this call (none left, or it failed before one began)"
  done
} | tee "$OUT/summary.txt"
exit "$failed"
