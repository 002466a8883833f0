/** `unicorn serve <model>`: an OpenAI-compatible HTTP API on the model (a resident server's, or loaded here). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { type ApiBackend, checkListen, isLoopbackHost, startApi } from '../engine/api/http.js';
import { localBackend, residentBackend } from '../engine/api/backends.js';
import { modelOrBundled } from '../engine/bundled.js';
import { UnicornError } from '../engine/errors.js';
import type { KvCacheType } from '../engine/models/memory.js';
import { count, kvCacheOption, number, positive } from '../ui/args.js';
import { openModelSource } from '../ui/model-source.js';

interface ServeFlags {
  host: string;
  port: number;
  apiKey?: string;
  alias?: string;
  ctx?: number;
  kvCache?: KvCacheType;
  gpu?: string;
  device: 'gpu' | 'cpu';
  maxBody: number;
  maxQueue: number;
  cors?: string;
  allowedHosts?: string;
  quiet?: boolean;
}

const pkg = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

export function serveCommand(): Command {
  return new Command('serve')
    .description('OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /health) on a model')
    .argument(
      '[model]',
      'model directory or cached Hub model name (org/name[@rev]) (a resident one, from unicorn load --keep, is used without loading it again); none: the bundled kjv-tiny',
    )
    .option('--host <address>', 'address to listen on (0.0.0.0: every interface; then set --api-key)', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', count, 8080)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1 (default: $UNICORN_API_KEY)')
    .option('--alias <id>', 'model id clients use (default: the directory name)')
    .option('--ctx <n>', "context length in tokens when loading here (default: 4096 or the model's maximum)", positive)
    .addOption(kvCacheOption('how the KV cache stores keys and values when loading here'))
    .option('--gpu <index|name>', 'which GPU (default: $UNICORN_GPU, else the best one)')
    .addOption(new Option('--device <kind>', 'gpu, or cpu for the TypeScript reference path').choices(['gpu', 'cpu']).default('gpu'))
    .option('--max-body <MB>', 'largest request body', number, 8)
    .option('--max-queue <n>', 'requests that may wait behind the running one', positive, 64)
    .option(
      '--cors <origins>',
      'allow browsers from these origins, comma-separated (e.g. http://localhost:3000, or *); without it, requests from web pages are refused',
    )
    .option(
      '--allowed-hosts <names>',
      "Host header names to accept besides IP addresses, localhost, *.localhost, *.local, *.internal and this machine's hostname, comma-separated, or * (default: $UNICORN_ALLOWED_HOSTS)",
    )
    .option('--quiet', 'no line per request')
    .action(async (given: string | undefined, flags: ServeFlags) => {
      const modelDir = modelOrBundled(given);
      if (!(flags.maxBody > 0)) throw new UnicornError(`--max-body ${flags.maxBody}: must be above 0 MB`);
      if (flags.port > 65535) throw new UnicornError(`--port ${flags.port}: ports go up to 65535`);
      if (!fs.existsSync(modelDir)) throw new UnicornError(`${modelDir}: no such model directory`);
      const apiKey = flags.apiKey ?? (process.env['UNICORN_API_KEY'] || undefined);
      const allowedHosts = (flags.allowedHosts ?? process.env['UNICORN_ALLOWED_HOSTS'] ?? '')
        .split(',')
        .map((h) => h.trim())
        .filter((h) => h !== '');
      const modelId = flags.alias ?? path.basename(path.resolve(modelDir));
      const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

      await checkListen(flags.host, flags.port);
      let backend: ApiBackend;
      let close = () => {};
      const source = await openModelSource(modelDir, flags, { say: log });
      if (source.kind === 'resident') {
        // Each request connects anew (see residentBackend): this connection only found the server.
        source.close();
        backend = residentBackend(modelDir, source.info, modelId);
      } else {
        const runner = source.runner;
        if (runner.codec === null) {
          runner.close();
          throw new UnicornError(`${modelDir}: no tokenizer.json, so the API cannot take text`);
        }
        backend = localBackend(runner, modelId);
        close = () => runner.close();
      }
      const api = await startApi(backend, {
        host: flags.host,
        port: flags.port,
        maxBodyBytes: Math.round(flags.maxBody * 1024 * 1024),
        maxQueue: flags.maxQueue,
        version: pkg.version,
        allowedHosts,
        ...(apiKey === undefined ? {} : { apiKey }),
        ...(flags.cors === undefined ? {} : { cors: flags.cors }),
        ...(flags.quiet === true ? {} : { log }),
      }).catch((e: unknown) => {
        close();
        throw e;
      });
      if (!isLoopbackHost(flags.host) && apiKey === undefined)
        log(`warning: listening on ${flags.host} without --api-key: anyone who can reach this machine can use the model`);
      process.stdout.write(
        `serving ${modelId} at ${api.url}/v1 (OpenAI-compatible${apiKey === undefined ? '' : ', API key required'}${backend.chat ? '' : '; no chat template: /v1/completions only'}) · Ctrl-C stops\n`,
      );
      // Until Ctrl-C (the process exits with 130; the model's memory goes with it).
      await new Promise<never>(() => {});
    });
}
