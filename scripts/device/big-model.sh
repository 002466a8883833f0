#!/usr/bin/env bash
# A model at full size on the device machine, end to end: make the random-weight bf16 checkpoint from a
# published config (with transformers' reference logits), load it (read-back check), bench it, compare its
# logits with transformers', then for each scheme asked: quantize, bench, compare, delete. Every step's
# output goes to $OUT/big-model.log as it runs (a call that hits its time limit still returns it).
#
#   source scripts/device/setup.sh && bash scripts/device/big-model.sh <config.json> <src dir> <schemes...>
#   e.g. bash scripts/device/big-model.sh test/fixtures/configs/gemma3-27b-published.json /dev/shm/g27 bf16 mixed int4 int8
#
# "bf16" among the schemes benches and compares the checkpoint itself. A Gemma 3 27B is 54 GB in bf16:
# on the H200 machine put it in /dev/shm (RAM), the quantized copies go to /tmp (disk), one at a time.
# UNICORN_BIG_SKIP_MAKE=1 reuses a checkpoint already there.
set -uo pipefail
config=$1 src=$2
shift 2
log=${OUT:-/tmp}/big-model.log
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
source "$(dirname "$0")/steps.sh"
if [ "${UNICORN_BIG_SKIP_MAKE:-0}" != 1 ]; then
  step make python3 -u scripts/device/real_size.py make --config "$config" --out "$src"
fi
du -sh "$src" | tee -a "$log"
for scheme in "$@"; do
  if [ "$scheme" = bf16 ]; then
    dir=$src
  else
    dir=/tmp/big-$scheme
    rm -rf "$dir"
    step "quantize-$scheme" node bin/unicorn quantize "$src" "$dir" --scheme "$scheme" --no-eval
    du -sh "$dir" | tee -a "$log"
    step "load-$scheme" node bin/unicorn --debug load "$dir"
  fi
  [ "$scheme" = bf16 ] && step load-bf16 node bin/unicorn --debug load "$dir"
  step "bench-$scheme" node bin/unicorn --debug bench "$dir" -p 512 -n 64
  step "compare-$scheme" node dist/bench/compare-logits.js "$dir" --reference="$src" --decode
  [ "$scheme" = bf16 ] || rm -rf "$dir"
done
echo "== $(date +%T) done" | tee -a "$log"
