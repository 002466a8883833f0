#!/usr/bin/env bash
# Flash attention for prefill on the device machine, beside llama.cpp in the same run. Part 1 (`8b`):
# which tilings pass the check, the attention kernels' tests on the GPU; the bf16 logits against
# transformers' with either kernel; Llama 3.1 8B shapes in int4 at pp512 / pp4096 / pp16384 (the prefill
# batch profiled per kernel) with the flash kernel, the plain one at pp4096, a sweep of tilings; int8 and
# bf16 at pp512 / pp4096; llama.cpp Q4_0 and Q8_0 at the same prompts. Part 2 (`gemma`): Gemma 3 4B
# (head_dim 256, sliding windows) logits against transformers' and pp512 / pp4096. Most important first:
# a call that runs out of time still has them in $OUT/flash.log.
#
#   source scripts/device/setup.sh && bash scripts/device/flash.sh 8b|gemma|all
set -uo pipefail
log=${OUT:-/tmp}/flash.log
source "$(dirname "$0")/steps.sh"
what=${1:-all}
[ "$what" = all ] && { bash "$0" 8b; bash "$0" gemma; exit; }
case "$what" in
  8b)
    step check node scripts/device/attention-check.mjs
    step tests node --test dist/test/engine/kernels/attention-coop.test.js dist/test/engine/kernels/ops.test.js
    src=/dev/shm/l8
    step make python3 -u scripts/device/real_size.py make --config test/fixtures/configs/llama3.1-8b-published.json --out $src
    step compare-bf16 node dist/bench/compare-logits.js $src
    UNICORN_ATTENTION=plain step compare-bf16-plain node dist/bench/compare-logits.js $src
    step quantize-int4 node bin/unicorn quantize $src /tmp/l8-int4 --scheme int4 --no-eval
    step bench-int4-pp512 node bin/unicorn bench /tmp/l8-int4 -p 512 -n 16 --profile
    step bench-int4-pp4096 node bin/unicorn bench /tmp/l8-int4 -p 4096 -n 16 --profile
    UNICORN_BATCH=1024 step bench-int4-b1024-pp4096 node bin/unicorn bench /tmp/l8-int4 -p 4096 -n 16
    step bench-int4-pp16384 node bin/unicorn bench /tmp/l8-int4 -p 16384 -n 4 --profile
    UNICORN_BATCH=1024 step bench-int4-b1024-pp16384 node bin/unicorn bench /tmp/l8-int4 -p 16384 -n 4
    UNICORN_ATTENTION=plain step bench-int4-plain-pp4096 node bin/unicorn bench /tmp/l8-int4 -p 4096 -n 4
    # Tilings: prefetch off, fewer subgroups with and without prefetch: speed and KL.
    for t in 4,32,0,0 2,32,1,0 2,32,0,0; do
      UNICORN_ATTENTION_TILE=$t step "bench-int4-tile-$t-pp4096" node bin/unicorn bench /tmp/l8-int4 -p 4096 -n 4
      UNICORN_ATTENTION_TILE=$t step "compare-bf16-tile-$t" node dist/bench/compare-logits.js $src
    done
    rm -rf /tmp/l8-int4
    step quantize-int8 node bin/unicorn quantize $src /tmp/l8-int8 --scheme int8 --no-eval
    step bench-int8-pp512 node bin/unicorn bench /tmp/l8-int8 -p 512 -n 16
    step bench-int8-pp4096 node bin/unicorn bench /tmp/l8-int8 -p 4096 -n 16
    rm -rf /tmp/l8-int8
    step bench-bf16-pp512 node bin/unicorn bench $src -p 512 -n 16
    step bench-bf16-pp4096 node bin/unicorn bench $src -p 4096 -n 16
    rm -rf $src
    peer q4_0 512 4096 16384
    peer q8_0 512 4096
    ;;
  gemma)
    src=/dev/shm/g4
    step make python3 -u scripts/device/real_size.py make --config test/fixtures/configs/gemma3-4b-published.json --out $src
    step compare-bf16 node dist/bench/compare-logits.js $src
    UNICORN_ATTENTION=plain step compare-bf16-plain node dist/bench/compare-logits.js $src
    step bench-bf16-pp4096 node bin/unicorn bench $src -p 4096 -n 16 --profile
    UNICORN_ATTENTION=plain step bench-bf16-plain-pp4096 node bin/unicorn bench $src -p 4096 -n 16
    step bench-bf16-pp512 node bin/unicorn bench $src -p 512 -n 16
    ;;
esac
echo "== $(date +%T) done" | tee -a "$log"
