// Prints the node_modules folders (relative to node_modules/) of unicorn's runtime dependencies,
// nested ones included, as npm resolved them: what scripts/device/pack-runtime.sh copies.
import { execFileSync } from 'node:child_process';
const out = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { encoding: 'utf8' });
const mods = out
  .split('\n')
  .map((p) => p.slice(p.indexOf('node_modules/') + 'node_modules/'.length))
  .filter((p, i, all) => p !== '' && out.split('\n')[i]?.includes('node_modules/') && p !== 'node' && !p.startsWith('node/'));
// Parents first; a nested module is copied with its parent anyway.
const top = [...new Set(mods)].filter((m) => !mods.some((o) => o !== m && m.startsWith(`${o}/node_modules/`)));
console.log(top.sort().join('\n'));
