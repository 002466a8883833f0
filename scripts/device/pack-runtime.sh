#!/usr/bin/env bash
# Fills .device/ (ignored) with what a run on the device machine needs and it lacks: Node 22 and the
# Vulkan loader (../shared/device/pack.sh), plus the runtime npm modules unicorn loads (the closure of
# package.json's dependencies), and the real tokenizers of the @lenml dev packages (xz'ed) that
# scripts/fixtures/make_text_fixtures.py reads; small enough to travel with the working tree (64 MiB).
# Run here, once per change of dependencies:  bash scripts/device/pack-runtime.sh && npm run build
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .git/info
[ -f .device/node.xz ] || bash ../shared/device/pack.sh
rm -rf .device/nm && mkdir -p .device/nm
for m in $(node scripts/device/runtime-modules.mjs); do mkdir -p ".device/nm/$(dirname "$m")"; cp -r "node_modules/$m" ".device/nm/$m"; done
# Compressed: the modules (ink's dependencies above all) would not fit the carry limit as they are.
tar -C .device -cJf .device/nm.tar.xz nm && rm -rf .device/nm
rm -rf .device/tokenizers && mkdir -p .device/tokenizers
for t in gemma3 qwen2_5 llama3_1; do
  mkdir -p .device/tokenizers/$t
  xz -T2 -6 -c node_modules/@lenml/tokenizer-$t/models/tokenizer.json > .device/tokenizers/$t/tokenizer.json.xz
  cp node_modules/@lenml/tokenizer-$t/models/tokenizer_config.json .device/tokenizers/$t/
done
du -sh .device
