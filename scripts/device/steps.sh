# Sourced by the device scripts: step <name> <command...> runs a command, appending its output to $log
# as it runs (a call that hits its time limit still returns it), between a start line and its exit;
# peer <type> <prompt>... runs llama.cpp (../shared/peer, copied to .device/peer) on a GGUF of Llama 3.1
# 8B's shape.
step() {
  local name=$1
  shift
  local t0=$SECONDS
  echo "== $(date +%T) $name: $*" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$log"
}
peer() { # llama.cpp on a GGUF of Llama 3.1 8B's shape: peer <type> <prompt>...
  local q=$1
  shift
  [ -d /tmp/peer ] || { mkdir -p /tmp/peer && tar -C /tmp/peer -xJf .device/peer/peer.tar.xz && cp .device/peer/*.mjs /tmp/peer/; }
  step "gguf-$q" python3 .device/peer/gguf_llama.py --out /tmp/l8-$q.gguf --type $q --vocab 128256 --ctx 131072
  for p in "$@"; do step "llama.cpp-$q-pp$p" sh -c "cd /tmp/peer && node nlc_bench.mjs /tmp/l8-$q.gguf vulkan 16 $p"; done
  rm -f /tmp/l8-$q.gguf
}
