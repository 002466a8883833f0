#!/usr/bin/env bash
# The q8 KV cache on the device machine, beside llama.cpp's q8_0 cache in the same run: the kernel and
# KV-cache tests on the GPU; decode attention per layer over f16 and q8 caches (npm run bench:attention);
# Llama 3.1 8B shapes in int4, decode after prompts of 4k / 16k / 32k tokens (and 512) with each cache
# (prefill beside it); llama.cpp Q4_0 with F16 and Q8_0 caches at the same prompts; Gemma 3 4B mixed
# with each cache after 4k and 16k. Most important
# first: a call that runs out of time still has them in $OUT/kv-cache.log.
#
#   source scripts/device/setup.sh && bash scripts/device/kv-cache.sh a|b   (a: tests, attention, 4k and 32k; b: tests, 512 and 16k, Gemma 3 4B mixed at 4k and 16k)
set -uo pipefail
log=${OUT:-/tmp}/kv-cache.log
source "$(dirname "$0")/steps.sh"
peer_kv() { # llama.cpp decode after a prompt with a cache type: peer_kv <F16|Q8_0> <gen tokens> <prompt>...
  local kv=$1 n=$2
  shift 2
  [ -d /tmp/peer ] || { mkdir -p /tmp/peer && tar -C /tmp/peer -xJf .device/peer/peer.tar.xz && cp .device/peer/*.mjs scripts/device/nlc-bench-kv.mjs /tmp/peer/; }
  [ -f /tmp/l8-q4_0.gguf ] || step gguf-q4_0 python3 .device/peer/gguf_llama.py --out /tmp/l8-q4_0.gguf --type q4_0 --vocab 128256 --ctx 131072
  for p in "$@"; do step "llama.cpp-q4_0-kv-$kv-tg$n-after-$p" sh -c "cd /tmp/peer && node nlc-bench-kv.mjs /tmp/l8-q4_0.gguf vulkan $n $p $kv"; done
}
what=${1:-a}
step tests node --test dist/test/engine/kernels/ops.test.js dist/test/engine/kernels/attention-coop.test.js dist/test/engine/models/kv-cache.test.js
[ "$what" = a ] && step attention node dist/bench/attention.js --shapes=8b,4b --contexts=1024,4096,16384,32768,131072
src=/dev/shm/l8
step make python3 -u scripts/device/real_size.py make --config test/fixtures/configs/llama3.1-8b-published.json --out $src --no-reference
step quantize-int4 node bin/unicorn quantize $src /tmp/l8-int4 --scheme int4 --no-eval
rm -rf $src
[ "$what" = a ] && prompts="4096 32768" || prompts="512 16384"
for p in $prompts; do
  for kv in f16 q8; do step "int4-$kv-$p" node bin/unicorn bench /tmp/l8-int4 -p $p -n 32 --kv-cache $kv; done
done
peer_kv F16 32 $prompts
peer_kv Q8_0 32 $prompts
if [ "$what" = b ]; then
  src=/dev/shm/g4
  step make-gemma python3 -u scripts/device/real_size.py make --config test/fixtures/configs/gemma3-4b-published.json --out $src --no-reference
  step quantize-mixed node bin/unicorn quantize $src /tmp/g4-mixed --scheme mixed --no-eval
  rm -rf $src
  for p in 4096 16384; do
    for kv in f16 q8; do step "gemma-mixed-$kv-$p" node bin/unicorn bench /tmp/g4-mixed -p $p -n 32 --kv-cache $kv; done
  done
fi
