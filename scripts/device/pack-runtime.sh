#!/usr/bin/env bash
# Fills .device/ (ignored) with what a run on the device machine needs and it lacks: Node 22 and the
# Vulkan loader (../shared/device/pack.sh), plus the runtime npm modules unicorn loads (koffi and its
# native binary, commander), small enough to travel with the working tree (limit 64 MiB).
# Run here, once per change of dependencies:  bash scripts/device/pack-runtime.sh && npm run build
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .git/info
[ -f .device/node.xz ] || bash ../shared/device/pack.sh
rm -rf .device/nm && mkdir -p .device/nm
cp -r node_modules/koffi node_modules/@koromix node_modules/commander .device/nm/
du -sh .device
