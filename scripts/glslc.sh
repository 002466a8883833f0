#!/usr/bin/env bash
# Prints the path of the glslc the shaders are built with: shaderc 2025.2 (it compiles
# GL_KHR_cooperative_matrix, which the prefill matmul needs; the version is pinned as SHADER_COMPILER in
# src/engine/kernels/table.ts, and every variant's hash names it). $UNICORN_GLSLC if set, else the
# system's glslc if it is that version, else shaderc 2025.2 from Debian 13
# ("trixie"), fetched once into .tools/glslc (ignored; ~20 MB): `apt-get download` of glslc and the
# libraries it needs (it wants glibc 2.38; Debian 12 has 2.36) with a private apt state, unpacked with
# `dpkg -x`, and run through its own dynamic loader by the wrapper .tools/glslc/glslc. Needs dpkg and
# apt-get (any Debian or Ubuntu) and the network to a Debian mirror, once.
#   node scripts/build-shaders.mjs runs this; by hand: "$(bash scripts/glslc.sh)" --version
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tools=$repo/.tools/glslc
probe() { # a glslc that compiles a cooperative-matrix kernel
  local tmp; tmp=$(mktemp -d)
  cat >"$tmp/p.comp" <<'GLSL'
#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
void main() { coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> a = coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>(0.0); }
GLSL
  "$1" --target-env=vulkan1.2 -o "$tmp/p.spv" "$tmp/p.comp" >/dev/null 2>&1 && rm -rf "$tmp" || { rm -rf "$tmp"; return 1; }
}
want="shaderc 2025.2"
version() { "$1" --version 2>/dev/null | head -n 1; }
if [ -n "${UNICORN_GLSLC:-}" ]; then
  case "$(version "$UNICORN_GLSLC")" in "$want"*) ;; *) echo "glslc.sh: UNICORN_GLSLC=$UNICORN_GLSLC is '$(version "$UNICORN_GLSLC")', not $want" >&2; exit 1 ;; esac
  probe "$UNICORN_GLSLC" || { echo "glslc.sh: UNICORN_GLSLC=$UNICORN_GLSLC does not compile GL_KHR_cooperative_matrix" >&2; exit 1; }
  echo "$UNICORN_GLSLC"; exit 0
fi
if command -v glslc >/dev/null 2>&1; then case "$(version glslc)" in "$want"*) probe "$(command -v glslc)" && { command -v glslc; exit 0; } ;; esac; fi
if [ -x "$tools/glslc" ] && probe "$tools/glslc"; then echo "$tools/glslc"; exit 0; fi

command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 || {
  echo "glslc.sh: no $want here, and without apt-get and dpkg it cannot fetch one; install glslc from shaderc 2025.2 and set UNICORN_GLSLC to it" >&2; exit 1; }
source "$repo/scripts/debian-mirror.sh"
echo "glslc.sh: fetching glslc (shaderc 2025.2) from Debian 13 at $mirror into .tools/glslc (once)" >&2
tmp=$tools.tmp
rm -rf "$tmp" && mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial" "$tmp/debs" "$tmp/root"
echo "deb $mirror trixie main" >"$tmp/apt/sources.list"
opts=(-o "Dir::State=$tmp/apt" -o "Dir::State::status=/dev/null" -o "Dir::Cache=$tmp/apt/cache" -o "Dir::Etc::SourceList=$tmp/apt/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")
apt-get "${opts[@]}" -q update >"$tmp/apt.log" 2>&1 || { tail -n 5 "$tmp/apt.log" >&2; exit 1; }
(cd "$tmp/debs" && apt-get "${opts[@]}" -q download glslc libshaderc1 libc6 libstdc++6 libgcc-s1 >>"$tmp/apt.log" 2>&1) || { tail -n 5 "$tmp/apt.log" >&2; exit 1; }
for d in "$tmp"/debs/*.deb; do dpkg -x "$d" "$tmp/root"; done
# The unpacked glibc's own dynamic loader (usr/lib/<multiarch>/ld-linux-*.so.*), for this machine's architecture.
loader=$(cd "$tmp/root" && ls usr/lib/*/ld-linux*.so.* | head -n 1)
lib=$tools/root/$(dirname "$loader")
cat >"$tmp/glslc" <<WRAP
#!/bin/sh
exec "$tools/root/$loader" --library-path "$lib" "$tools/root/usr/bin/glslc" "\$@"
WRAP
chmod +x "$tmp/glslc"
rm -rf "$tmp/apt" "$tmp/debs" "$tools" && mv "$tmp" "$tools"
probe "$tools/glslc" || { echo "glslc.sh: the fetched glslc does not run here" >&2; exit 1; }
echo "$tools/glslc"
