#!/usr/bin/env bash
# The prefill batch (UNICORN_BATCH) measured on the device machine: Llama 3.1 8B shapes in int4 at 256,
# 512 and 1024 tokens per batch, pp512 and pp4096, llama.cpp's Q4_0 pp512 in the same run, and the
# logits against transformers' (cooperative and tiled kernels; a batch of 1024 against the default).
#   source scripts/device/setup.sh && bash scripts/device/batch-probe.sh
set -uo pipefail
log=${OUT:-/tmp}/batch.log
source "$(dirname "$0")/steps.sh"
src=/dev/shm/l8
step make python3 -u scripts/device/real_size.py make --config test/fixtures/configs/llama3.1-8b-published.json --out $src
step quantize-int4 node bin/unicorn quantize $src /tmp/l8-int4 --scheme int4 --no-eval
for b in 256 512 1024; do for p in 512 4096; do UNICORN_BATCH=$b step bench-int4-b$b-pp$p node bin/unicorn bench /tmp/l8-int4 -p $p -n 16; done; done
UNICORN_BATCH=1024 step bench-bf16-b1024-pp512 node bin/unicorn bench $src -p 512 -n 16
mkdir -p /tmp/peer && tar -C /tmp/peer -xJf .device/peer/peer.tar.xz && cp .device/peer/*.mjs /tmp/peer/
step gguf python3 .device/peer/gguf_llama.py --out /tmp/l8-q4_0.gguf --type q4_0 --vocab 128256 --ctx 131072
step llama.cpp-pp512 sh -c "cd /tmp/peer && node nlc_bench.mjs /tmp/l8-q4_0.gguf vulkan 16 512"
step compare-int4 node dist/bench/compare-logits.js /tmp/l8-int4 --reference=$src
UNICORN_MATMUL=tiled step compare-int4-tiled node dist/bench/compare-logits.js /tmp/l8-int4 --reference=$src
UNICORN_BATCH=1024 step compare-bf16-b1024 node dist/bench/compare-logits.js $src
