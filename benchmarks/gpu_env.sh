# Sourced by the GPU scripts (gpu_check.sh, gpu_paper.sh): advlit's dependencies, a CUDA GPU and MNIST,
# each refused in one line (exit status 2) when missing; then PYTHONPATH, $DATA and the cache are set.
# Needs $OUT (where the refusal is written) and $PY. ALLOW_CPU=1 skips the GPU check (to try a script here).
refuse() { echo "$(basename "$0"): refused: $*" | tee "$OUT/refused.txt" >&2; exit 2; }

if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || refuse "the wheels in .whl/ do not install"
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
$PY -c "import torch, lightning, jsonargparse, torchmetrics, advlit.cli" 2>/dev/null \
  || refuse "advlit's dependencies do not import (put the missing wheels in .whl/)"
if [ "${ALLOW_CPU:-0}" != 1 ]; then
  $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || refuse "torch sees no CUDA GPU"
fi
if [ -n "${MNIST_DIR:-}" ]; then
  DATA=$MNIST_DIR
else
  DATA=/tmp/advlit_mnist
  mkdir -p $DATA/MNIST/raw
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f ".mnist/$f.gz" ] || refuse ".mnist/$f.gz is missing (or set MNIST_DIR)"
    gunzip -c ".mnist/$f.gz" > "$DATA/MNIST/raw/$f" || refuse ".mnist/$f.gz does not unpack"
  done
fi
[ -f "$DATA/MNIST/raw/t10k-labels-idx1-ubyte" ] || refuse "no MNIST under $DATA/MNIST/raw"
export ADVLIT_CACHE=${ADVLIT_CACHE:-/tmp/advlit_cache} ADVLIT_MNIST=$DATA
