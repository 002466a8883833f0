# Sourced by the device scripts: step <name> <command...> runs a command, appending its output to $log
# as it runs (a call that hits its time limit still returns it), between a start line and its exit.
step() {
  local name=$1
  shift
  local t0=$SECONDS
  echo "== $(date +%T) $name: $*" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$log"
}
