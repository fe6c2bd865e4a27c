#!/usr/bin/env bash
# The GPU figures the docs lack, in one call of a lent GPU machine (about 8 minutes): the training
# and scoring benchmark for LeNet5 and ResNet18, the attack benchmark, and the projected GPU time of
# Table 3 at the paper's settings (advlit reproduce --plan measures its speeds on the GPU).
#
# Set-up here, once (docs/reproduction.md, "On a lent GPU"): .whl/ holds the jsonargparse wheels the
# GPU machine lacks and .mnist/ the four gzipped MNIST files; both are git-ignored and carried.
# Each figure lands in $OUT/<name>.txt (or ./gpu_out/ where $OUT is unset).
set -uo pipefail
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
DATA=/tmp/advlit_mnist
mkdir -p $DATA/MNIST/raw
for f in .mnist/*.gz; do gunzip -c "$f" > "$DATA/MNIST/raw/$(basename "$f" .gz)"; done
export ADVLIT_CACHE=/tmp/advlit_cache

run() {  # run NAME SECONDS COMMAND...: one figure, its own time limit, its output in $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee "$OUT/$name.txt"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.txt"
  echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.txt"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$OUT/gpu.txt"
run bench_train_lenet5 100 $PY -m advlit.bench train --arch lenet5 --data_dir $DATA --accelerator gpu
run bench_train_resnet18 140 $PY -m advlit.bench train --arch resnet18 --data_dir $DATA --accelerator gpu --repeats 1
run bench_attacks 140 $PY -m advlit.bench attacks --data_dir $DATA --device cuda
run plan_table3_paper 90 $PY -m advlit reproduce --table 3 --profile paper --plan --results /tmp/advlit_results \
  --data.data_dir $DATA --data.download false
