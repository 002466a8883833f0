/** `unicorn pull <org/name>[@revision]`: a model from the Hugging Face Hub into the cache other tools share. */
import { Command } from 'commander';
import { hubCacheDir, hubEndpoint, hubOffline, hubToken } from '../engine/hub/env.js';
import { type PullResult, pullModel } from '../engine/hub/pull.js';
import { parseRepoRef, refText } from '../engine/hub/repo-id.js';
import { escapeControl } from '../engine/text/escape.js';
import { collect } from '../ui/args.js';
import { formatBytes, jsonForTerminal } from '../ui/format.js';
import { TransferProgress } from '../ui/transfer-progress.js';

function summary(r: PullResult, name: string): string {
  const short = r.commit.slice(0, 12);
  if (r.offline) return `${name}: in the cache at ${short} (HF_HUB_OFFLINE: the Hub was not asked)\n  ${r.dir}\n`;
  const bytes = r.files.reduce((a, f) => a + f.size, 0);
  const how =
    r.cachedFiles === r.files.length
      ? 'already in the cache'
      : `${formatBytes(r.downloadedBytes)} downloaded${r.cachedFiles > 0 ? `, ${r.cachedFiles} file${r.cachedFiles === 1 ? '' : 's'} already cached` : ''}`;
  return `${name}: ${r.files.length} files, ${formatBytes(bytes)} at ${short} (${how})\n  ${r.dir}\n  run it: unicorn run ${name} "your prompt"\n`;
}

export function pullCommand(): Command {
  return new Command('pull')
    .description('download a model from the Hugging Face Hub into the shared cache (resumable, verified); run, chat, serve... then take its name')
    .argument('<model>', 'org/name, optionally @revision (a branch, tag or commit), e.g. google/gemma-3-4b-it')
    .option('--include <glob>', 'also download files matching this pattern (repeatable), e.g. "*.md"', collect)
    .option('--exclude <glob>', 'do not download files matching this pattern (repeatable)', collect)
    .option('--json', 'print the result as JSON (no progress display)')
    .action(async (arg: string, o: { include?: string[]; exclude?: string[]; json?: boolean }) => {
      const ref = parseRepoRef(arg);
      const name = refText(ref);
      const progress = new TransferProgress(process.stderr, process.stderr.isTTY === true && o.json !== true);
      let finished = false;
      // Ctrl-C (through the CLI's signal handler) ends the process: say what was kept.
      const onExit = (code: number) => {
        if (finished || code < 128) return;
        progress.finish();
        process.stderr.write(
          `unicorn: ${escapeControl(name)}: interrupted; the files downloaded so far, and the partial one(s), are kept in the cache\n  fix: run \`unicorn pull ${escapeControl(name)}\` again to resume\n`,
        );
      };
      process.on('exit', onExit);
      let r: PullResult;
      try {
        r = await pullModel(ref, {
          cacheDir: hubCacheDir(),
          endpoint: hubEndpoint(),
          token: hubToken(),
          offline: hubOffline(),
          ...(o.include === undefined ? {} : { include: o.include }),
          ...(o.exclude === undefined ? {} : { exclude: o.exclude }),
          onEvent: progress.onEvent,
        });
      } finally {
        finished = true;
        progress.finish();
        process.off('exit', onExit);
      }
      if (o.json === true) {
        process.stdout.write(`${jsonForTerminal({ ...r, files: r.files.map((f) => ({ file: f.file, size: f.size, etag: f.etag, lfs: f.lfs })) })}\n`);
      } else {
        process.stdout.write(
          summary(r, name)
            .split('\n')
            .map((l) => escapeControl(l))
            .join('\n'),
        );
      }
    });
}
