#!/usr/bin/env bash
# Prefill on the device machine, unicorn beside llama.cpp in one run: Llama 3.1 8B shapes (random
# weights from the published config), unicorn int4, int8 and bf16 against llama.cpp's Vulkan backend
# (../shared/peer, copied to .device/peer) on Q4_0 and Q8_0 GGUFs of the same shape; pp512 and pp4096,
# the prefill batch profiled per kernel. Output goes to $OUT/prefill.log as it runs.
#
#   source scripts/device/setup.sh && bash scripts/device/prefill.sh [512,4096]
#
# UNICORN_PREFILL_TILED=1 also benches int4 on the tiled (pre-cooperative-matrix) kernel.
set -uo pipefail
prompts=${1:-512,4096}
log=${OUT:-/tmp}/prefill.log
step() {
  local name=$1
  shift
  local t0=$SECONDS
  echo "== $(date +%T) $name: $*" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$log"
}
src=/dev/shm/l8
step make python3 -u scripts/device/real_size.py make --config test/fixtures/configs/llama3.1-8b-published.json --out $src --no-reference
step quantize-int4 node bin/unicorn quantize $src /tmp/l8-int4 --scheme int4 --no-eval
step quantize-int8 node bin/unicorn quantize $src /tmp/l8-int8 --scheme int8 --no-eval
for p in ${prompts//,/ }; do
  for m in int4 int8 bf16; do
    dir=/tmp/l8-$m
    [ $m = bf16 ] && dir=$src
    step "bench-$m-pp$p" node bin/unicorn bench $dir -p $p -n 16 --profile
    [ $m = int4 ] && [ "${UNICORN_PREFILL_TILED:-0}" = 1 ] && UNICORN_MATMUL=tiled step "bench-$m-tiled-pp$p" node bin/unicorn bench $dir -p $p -n 16
  done
done
mkdir -p /tmp/peer && tar -C /tmp/peer -xJf .device/peer/peer.tar.xz && cp .device/peer/*.mjs /tmp/peer/
for q in q4_0 q8_0; do
  step "gguf-$q" python3 .device/peer/gguf_llama.py --out /tmp/l8-$q.gguf --type $q --vocab 128256 --ctx 131072
  for p in ${prompts//,/ }; do
    [ $q = q8_0 ] && [ $p != 512 ] && continue
    step "llama.cpp-$q-pp$p" sh -c "cd /tmp/peer && node nlc_bench.mjs /tmp/l8-$q.gguf vulkan 16 $p"
  done
  rm -f /tmp/l8-$q.gguf
done
echo "== $(date +%T) done" | tee -a "$log"
