#!/usr/bin/env bash
# Prefill on the device machine, unicorn beside llama.cpp in one run: Llama 3.1 8B shapes (random
# weights from the published config, with transformers' reference logits), unicorn int4, int8 and bf16
# against llama.cpp's Vulkan backend (../shared/peer, copied to .device/peer) on Q4_0 and Q8_0 GGUFs of
# the same shape; pp512 and pp4096 with the prefill batch profiled per kernel; the tiled kernel beside the
# cooperative one; the logits against transformers' on both. Most important first: a call that runs out
# of time still has them in $OUT/prefill.log.
#
#   source scripts/device/setup.sh && bash scripts/device/prefill.sh
set -uo pipefail
log=${OUT:-/tmp}/prefill.log
source "$(dirname "$0")/steps.sh"
src=/dev/shm/l8
step make python3 -u scripts/device/real_size.py make --config test/fixtures/configs/llama3.1-8b-published.json --out $src
step quantize-int4 node bin/unicorn quantize $src /tmp/l8-int4 --scheme int4 --no-eval
step bench-int4-pp512 node bin/unicorn bench /tmp/l8-int4 -p 512 -n 16 --profile
UNICORN_MATMUL=tiled step bench-int4-tiled-pp512 node bin/unicorn bench /tmp/l8-int4 -p 512 -n 16
peer q4_0 512 4096
step bench-int4-pp4096 node bin/unicorn bench /tmp/l8-int4 -p 4096 -n 16 --profile
step compare-bf16 node dist/bench/compare-logits.js $src
UNICORN_MATMUL=tiled step compare-bf16-tiled node dist/bench/compare-logits.js $src
step bench-bf16-pp512 node bin/unicorn bench $src -p 512 -n 16
step quantize-int8 node bin/unicorn quantize $src /tmp/l8-int8 --scheme int8 --no-eval
step bench-int8-pp512 node bin/unicorn bench /tmp/l8-int8 -p 512 -n 16
peer q8_0 512
step compare-int4 node dist/bench/compare-logits.js /tmp/l8-int4 --reference=$src
echo "== $(date +%T) done" | tee -a "$log"
