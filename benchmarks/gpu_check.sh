#!/usr/bin/env bash
# The GPU checks and figures, in one call of a GPU machine (under 10 minutes on one GPU): the tests
# that use CUDA (pytest -m cuda), the training, scoring and attack benchmarks, and one paper-profile
# row end to end (Table 2 Clean on the committed networks), its metrics.json left in $OUT/run/.
#
# Needs (docs/reproduction.md, "On a GPU machine"): a CUDA GPU that torch sees; .mnist/ with the four
# gzipped MNIST files (or MNIST_DIR pointing at a folder torchvision's MNIST reads); .whl/ with any
# wheels the machine lacks (jsonargparse...), both git-ignored and carried. It refuses to start, with
# one line, when one is missing. Each figure lands in $OUT/<name>.txt (./gpu_out/ where $OUT is unset);
# the exit status is the number of checks that failed.
set -uo pipefail
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
mkdir -p "$OUT"
source benchmarks/gpu_env.sh

failed=0
run() {  # run NAME SECONDS COMMAND...: one check, its own time limit, its output in $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee "$OUT/$name.txt"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.txt"
  local code=${PIPESTATUS[0]}
  echo "== $name: exit $code" | tee -a "$OUT/$name.txt"
  [ "$code" = 0 ] || failed=$((failed + 1))
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$OUT/gpu.txt"
run tests_cuda 120 $PY -m pytest -q -m cuda -p no:cacheprovider tests
run bench_train_lenet5 90 $PY -m advlit.bench train --arch lenet5 --data_dir $DATA --accelerator gpu
run bench_attacks 90 $PY -m advlit.bench attacks --data_dir $DATA --device cuda
run networks_seed 30 $PY -m advlit networks seed results/paper/networks
run paper_table2_clean 300 $PY -m advlit reproduce --table 2 --profile paper --runs clean --results "$OUT/run" \
  --data.data_dir $DATA --data.download false --data.progress false --trainer.enable_progress_bar false
echo "gpu_check: $failed check(s) failed; outputs in $OUT" | tee "$OUT/summary.txt"
exit $failed
