#!/usr/bin/env bash
# Runs a command in this checkout inside a Debian 13 ("trixie") root with the current Mesa from
# trixie-backports (26.1: lavapipe on LLVM 19, with VK_KHR_cooperative_matrix and subgroup size control),
# so that CI tests on a current driver as well as on Debian 12's Mesa 22.3. Needs root (debootstrap,
# chroot, bind mounts) and the Debian mirror this machine's apt uses.
#
#   bash .ci/mesa-current.sh '<command run from the checkout, e.g. node --test ...>'
#
# The root is built once (~60 s, ~700 MB) and cached in $UNICORN_CI_CACHE (default /var/cache/unicorn-ci),
# under a name that changes with the package list below; a root that failed half-way is never used.
# Node 22 and node_modules come from the checkout (npm ci ran on the host), mounted at the same path.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${UNICORN_CI_CACHE:-/var/cache/unicorn-ci}
packages='mesa-vulkan-drivers libvulkan1 vulkan-validationlayers tmux'
name=trixie-$(printf '%s' "v1 $packages" | sha256sum | cut -c1-12)
root=$cache/$name

source "$repo/scripts/debian-mirror.sh"

if [ ! -e "$root/.ready" ]; then
  command -v debootstrap >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null; }
  mkdir -p "$cache"
  rm -rf "$root.tmp"
  echo "mesa-current: building a Debian 13 root with Mesa from trixie-backports in $root (once)" >&2
  debootstrap --variant=minbase trixie "$root.tmp" "$mirror" >"$cache/$name.log" 2>&1 || { tail -n 20 "$cache/$name.log" >&2; exit 1; }
  echo "deb $mirror trixie-backports main" >"$root.tmp/etc/apt/sources.list.d/backports.list"
  chroot "$root.tmp" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t trixie-backports $packages && apt-get clean" >>"$cache/$name.log" 2>&1 || { tail -n 20 "$cache/$name.log" >&2; exit 1; }
  touch "$root.tmp/.ready"
  mv "$root.tmp" "$root"
fi

# One session in the root at a time: a second one's cleanup would unmount the first one's /proc and /dev.
exec 9>"$root.lock"
flock 9

# The checkout at its own path inside the root, with /proc, /dev (ptys for the tmux test) and /sys.
mnt=$root$repo
mkdir -p "$mnt"
cleanup() {
  for m in "$mnt" "$root/sys" "$root/dev" "$root/proc"; do
    mountpoint -q "$m" && umount -R "$m" 2>/dev/null || umount -lR "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT
mount --bind "$repo" "$mnt"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
chroot "$root" sh -c "dpkg-query -W -f='mesa-current: \${Package} \${Version}\n' mesa-vulkan-drivers" >&2
# A clean environment: the host's (NODE_EXTRA_CA_CERTS and friends) names files the root lacks.
status=0
chroot "$root" env -i PATH="$repo/node_modules/.bin:/usr/bin:/bin" HOME=/root TERM="${TERM:-xterm}" LANG=C.UTF-8 CI="${CI:-}" \
  ${LP_NATIVE_VECTOR_WIDTH:+LP_NATIVE_VECTOR_WIDTH=$LP_NATIVE_VECTOR_WIDTH} sh -c "cd '$repo' && $1" || status=$?
rm -rf "$root"/tmp/unicorn-* 2>/dev/null || true
exit $status
