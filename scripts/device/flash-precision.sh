#!/usr/bin/env bash
# Flash attention's precision and its price on the device, beside the plain kernel, in one run: which
# tilings pass the check; the kernels against an f64 reference; the kernels' tests; Llama 3.1 8B bf16
# logits against transformers' with the default tiling, with Q and P in two f16 parts
# (UNICORN_ATTENTION_TILE=2,32,1,1) and with the plain kernel; int4 prefill at 4k and 16k with each;
# Gemma 3 4B bf16 (head_dim 256) logits and pp512 / pp4096, flash and plain.
#   source scripts/device/setup.sh && bash scripts/device/flash-precision.sh
set -uo pipefail
log=${OUT:-/tmp}/flash-precision.log
source "$(dirname "$0")/steps.sh"
step check node scripts/device/attention-check.mjs
step precision node scripts/device/attention-precision.mjs 128 512
step precision-growing node scripts/device/attention-precision.mjs 128 512 --grow
step tests node --test dist/test/engine/kernels/attention-coop.test.js
src=/dev/shm/l8
step make python3 -u scripts/device/real_size.py make --config test/fixtures/configs/llama3.1-8b-published.json --out $src
step compare-bf16 node dist/bench/compare-logits.js $src --decode
UNICORN_ATTENTION_TILE=2,32,1,1 step compare-bf16-split node dist/bench/compare-logits.js $src
UNICORN_ATTENTION=plain step compare-bf16-plain node dist/bench/compare-logits.js $src
step quantize-int4 node bin/unicorn quantize $src /tmp/l8-int4 --scheme int4 --no-eval
rm -rf $src
for p in 4096 16384; do
  step bench-int4-pp$p node bin/unicorn bench /tmp/l8-int4 -p $p -n 4
  UNICORN_ATTENTION_TILE=2,32,1,1 step bench-int4-split-pp$p node bin/unicorn bench /tmp/l8-int4 -p $p -n 4
done
rm -rf /tmp/l8-int4
src=/dev/shm/g4
step make-gemma python3 -u scripts/device/real_size.py make --config test/fixtures/configs/gemma3-4b-published.json --out $src
step compare-gemma node dist/bench/compare-logits.js $src --decode
UNICORN_ATTENTION=plain step compare-gemma-plain node dist/bench/compare-logits.js $src
step bench-gemma-pp512 node bin/unicorn bench $src -p 512 -n 16
step bench-gemma-pp4096 node bin/unicorn bench $src -p 4096 -n 16 --profile
UNICORN_ATTENTION=plain step bench-gemma-plain-pp4096 node bin/unicorn bench $src -p 4096 -n 16
echo "== $(date +%T) done" | tee -a "$log"
