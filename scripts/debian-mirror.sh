# Sourced by .ci/mesa-current.sh and scripts/glslc.sh: sets $mirror to the Debian mirror apt already
# uses here (deb822 URIs: lines or one-line deb sources), else deb.debian.org.
mirror=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
  grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break }}') |
  grep -E '/debian/?$' | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
