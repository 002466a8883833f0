/** `unicorn list`: the models in the Hugging Face cache, and those resident in a server, with size, format and quantization. */
import { Command } from 'commander';
import { listCache } from '../engine/hub/cache.js';
import { quantization, weightFormat } from '../engine/hub/describe.js';
import { hubCacheDir } from '../engine/hub/env.js';
import { listResident } from '../engine/server/client.js';
import { escapeControl } from '../engine/text/escape.js';
import { formatBytes, jsonForTerminal, table } from '../ui/format.js';

export function listCommand(): Command {
  return new Command('list')
    .description('list the models in the Hugging Face cache (from unicorn pull, huggingface-cli, transformers...) and the resident ones')
    .option('--json', 'print JSON for scripts')
    .action(async (o: { json?: boolean }) => {
      const cacheDir = hubCacheDir();
      const cached = listCache(cacheDir).map((m) => ({
        model: m.repo,
        refs: m.refs,
        commit: m.commit,
        path: m.dir,
        bytes: m.bytes,
        format: weightFormat(m.files.map((f) => f.file)),
        quantization: quantization(m.dir),
        complete: m.missing.length === 0,
      }));
      const resident = (await listResident()).map((r) => ({
        model: r.info.model,
        pid: r.info.pid,
        device: r.info.device,
        bytes: r.info.bytes,
        quantization: quantization(r.info.model),
      }));
      if (o.json === true) {
        process.stdout.write(`${jsonForTerminal({ cache: cacheDir, cached, resident }, 2)}\n`);
        return;
      }
      const out: string[] = [];
      if (cached.length === 0) out.push(`no models in the Hugging Face cache (${cacheDir}); get one with: unicorn pull <org/name>`);
      else {
        out.push(`cached (${cacheDir}):`);
        const rows = cached.map((m) => [
          m.refs.length === 0 || m.refs.includes('main') ? m.model : `${m.model}@${m.refs[0]}`,
          m.commit.slice(0, 12),
          formatBytes(m.bytes),
          m.format,
          m.quantization,
          m.complete ? '' : 'incomplete: unicorn pull it again',
        ]);
        out.push(
          ...table(['model', 'commit', 'size', 'format', 'quantization', ''], rows, [false, false, true])
            .split('\n')
            .map((l) => `  ${escapeControl(l)}`),
        );
      }
      if (resident.length > 0) {
        out.push('', 'resident (unicorn load --keep; unicorn stop unloads):');
        const rows = resident.map((r) => [r.model, String(r.pid), r.device, formatBytes(r.bytes), r.quantization]);
        out.push(
          ...table(['model', 'pid', 'device', 'size', 'quantization'], rows, [false, true, false, true])
            .split('\n')
            .map((l) => `  ${escapeControl(l)}`),
        );
      }
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
