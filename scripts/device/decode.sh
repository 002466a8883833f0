#!/usr/bin/env bash
# Decode on the device machine, beside llama.cpp in the same run: the kernels' tests on the GPU; decode
# attention per layer (npm run bench:attention, both kernels and split counts); Llama 3.1 8B shapes in
# int4, decode after prompts of 512 / 4k / 16k / 32k tokens (profiled per kernel at 512 and 4k; the
# per-head attention kernel at 4k beside the default); llama.cpp Q4_0 at the same prompts (`8b`).
# Gemma 3 4B mixed after 512 (profiled; per head beside it) and 4k (`gemma`; llama.cpp's GGUF writer
# here makes Llama-architecture files only). Most important first: a call that runs out of time still
# has them in $OUT/decode.log.
#
#   source scripts/device/setup.sh && bash scripts/device/decode.sh 8b|gemma|all
set -uo pipefail
log=${OUT:-/tmp}/decode.log
source "$(dirname "$0")/steps.sh"
# llama.cpp decode after a prompt: peer_tg <type> <gen tokens> <prompt>...
peer_tg() {
  local q=$1 n=$2
  shift 2
  [ -d /tmp/peer ] || { mkdir -p /tmp/peer && tar -C /tmp/peer -xJf .device/peer/peer.tar.xz && cp .device/peer/*.mjs /tmp/peer/; }
  [ -f /tmp/l8-$q.gguf ] || step "gguf-$q" python3 .device/peer/gguf_llama.py --out /tmp/l8-$q.gguf --type $q --vocab 128256 --ctx 131072
  for p in "$@"; do step "llama.cpp-$q-tg$n-after-$p" sh -c "cd /tmp/peer && node nlc_bench.mjs /tmp/l8-$q.gguf vulkan $n $p"; done
}
what=${1:-all}
[ "$what" = all ] && { bash "$0" 8b; bash "$0" gemma; exit; }
if [ "$what" = gemma ]; then
  src=/dev/shm/g4
  step make-gemma python3 -u scripts/device/real_size.py make --config test/fixtures/configs/gemma3-4b-published.json --out $src --no-reference
  step quantize-mixed node bin/unicorn quantize $src /tmp/g4-mixed --scheme mixed --no-eval
  rm -rf $src
  step gemma-mixed-512 node bin/unicorn bench /tmp/g4-mixed -p 512 -n 128 --profile
  UNICORN_DECODE_ATTENTION=per-head step gemma-mixed-512-per-head node bin/unicorn bench /tmp/g4-mixed -p 512 -n 128
  step gemma-mixed-4096 node bin/unicorn bench /tmp/g4-mixed -p 4096 -n 64
  rm -rf /tmp/g4-mixed
  exit
fi
step tests node --test dist/test/engine/kernels/ops.test.js
step attention node dist/bench/attention.js --shapes=8b,4b
src=/dev/shm/l8
step make python3 -u scripts/device/real_size.py make --config test/fixtures/configs/llama3.1-8b-published.json --out $src --no-reference
step quantize-int4 node bin/unicorn quantize $src /tmp/l8-int4 --scheme int4 --no-eval
rm -rf $src
step int4-512 node bin/unicorn bench /tmp/l8-int4 -p 512 -n 128 --profile
step int4-4096 node bin/unicorn bench /tmp/l8-int4 -p 4096 -n 64 --profile
UNICORN_DECODE_ATTENTION=per-head step int4-4096-per-head node bin/unicorn bench /tmp/l8-int4 -p 4096 -n 64
peer_tg q4_0 64 512 4096
step int4-16384 node bin/unicorn bench /tmp/l8-int4 -p 16384 -n 32
peer_tg q4_0 64 16384
step int4-32768 node bin/unicorn bench /tmp/l8-int4 -p 32768 -n 32
peer_tg q4_0 64 32768
