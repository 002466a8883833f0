// Prints the node_modules folders that unicorn's runtime dependencies need (the closure of
// package.json's "dependencies", without the `node` binary package), for scripts/device/pack-runtime.sh.
import * as fs from 'node:fs';
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const seen = new Set();
const visit = (name) => {
  if (seen.has(name) || name === 'node') return;
  const dir = `node_modules/${name}`;
  if (!fs.existsSync(dir)) return; // optional dependency for another platform
  seen.add(name);
  const p = JSON.parse(fs.readFileSync(`${dir}/package.json`, 'utf8'));
  for (const d of Object.keys({ ...p.dependencies, ...p.optionalDependencies })) visit(d);
};
for (const d of Object.keys(pkg.dependencies)) visit(d);
console.log([...seen].sort().join('\n'));
