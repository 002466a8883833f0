/** `unicorn inspect <model dir | file.safetensors>`: what a checkpoint holds and what it will need. */
import { Command, Option } from 'commander';
import { kvCacheOption, positive } from '../ui/args.js';
import { UnicornError } from '../engine/errors.js';
import { type InspectReport, inspectTarget } from '../engine/inspect.js';
import { resolveModelArg } from '../engine/hub/model-arg.js';
import { type KvCacheType, kvCacheBytes } from '../engine/models/memory.js';
import { type ModelPlan, describeStep, modelPlan } from '../engine/plan.js';
import type { ModelSpec, Rope } from '../engine/models/spec.js';
import { DEFAULT_INT4_GROUP, INT4_GROUPS } from '../engine/quant/layouts.js';
import { escapeControl } from '../engine/text/escape.js';
import { formatBytes, formatCount, formatNumber, jsonForTerminal, table } from '../ui/format.js';

function ropeText(r: Rope): string {
  const s = r.scaling;
  const scale =
    s.kind === 'none'
      ? ''
      : s.kind === 'linear'
        ? ` linear ×${s.factor}`
        : ` llama3 ×${s.factor} (low ${s.lowFreqFactor}, high ${s.highFreqFactor}, original ${s.originalMaxPositions})`;
  return `θ ${formatNumber(r.theta)}${scale}`;
}

function specLines(spec: ModelSpec, report: NonNullable<InspectReport['model']>): [string, string][] {
  const sliding = spec.layers.filter((l) => l.attention === 'sliding');
  const global = spec.layers.filter((l) => l.attention === 'full');
  const skippedVision = report.skipped.filter((s) => s.reason === 'vision');
  const arch = `${spec.architecture} (${spec.family}${spec.multimodal ? `, text model only: vision tower skipped, ${skippedVision.length} tensors, ${formatBytes(skippedVision.reduce((a, s) => a + s.byteLength, 0))} never read` : ''})`;
  const layers =
    sliding.length === 0
      ? `${spec.numLayers}, all global attention`
      : `${spec.numLayers}: ${sliding.length} sliding (window ${spec.slidingWindow}), ${global.length} global`;
  const ropes =
    sliding.length > 0 && global.length > 0 ? `global ${ropeText(global[0]!.rope)} · local ${ropeText(sliding[0]!.rope)}` : ropeText(spec.layers[0]!.rope);
  const cap = (v: number | null) => (v === null ? 'none' : String(v));
  return [
    ['architecture', arch],
    ['layers', layers],
    [
      'sizes',
      `hidden ${spec.hiddenSize} · intermediate ${spec.intermediateSize} · heads ${spec.numHeads} / kv ${spec.numKvHeads} · head_dim ${spec.headDim} · vocab ${spec.vocabSize}`,
    ],
    [
      'attention',
      `scores × 1/sqrt(${spec.queryPreAttnScalar}) · softcap ${cap(spec.attnLogitSoftcap)}, final ${cap(spec.finalLogitSoftcap)}${spec.qkNorm ? ' · q/k norm' : ''}${spec.qkvBias ? ' · q/k/v bias' : ''}`,
    ],
    ['rope', ropes],
    [
      'norms',
      `RMSNorm${spec.normWeightOffset === 1 ? ' (1 + w)' : ''} eps ${spec.rmsNormEps.toExponential()} · ${spec.activation === 'gelu_tanh' ? 'GELU-tanh' : 'SiLU'} gated MLP · ${spec.tieWordEmbeddings ? 'tied' : 'separate'} output embedding${spec.embeddingScale !== 1 ? ` · embeddings × sqrt(${spec.hiddenSize})` : ''}`,
    ],
    [
      'tokens',
      `bos ${spec.bosTokenId ?? '-'} · eos ${spec.eosTokenIds.join(', ') || '-'} · pad ${spec.padTokenId ?? '-'} · chat template ${spec.chatTemplate === null ? 'none' : 'yes'} · max positions ${spec.maxPositionEmbeddings}`,
    ],
    ['parameters', `${formatCount(report.parameters)} (text model)`],
  ];
}

export function renderInspect(r: InspectReport, opts: { tensors: boolean; filter?: RegExp }): string {
  const out: string[] = [];
  const kv: [string, string][] = [['model', `${r.path} (${r.files.length} file${r.files.length === 1 ? '' : 's'}, ${formatBytes(r.totalBytes)} of tensors)`]];
  if (r.model !== undefined) kv.push(...specLines(r.model.spec, r.model));
  else kv.push(['architecture', 'unknown: no config.json beside the weights, showing tensors only']);
  const total = r.totalBytes || 1;
  kv.push(['dtypes', r.dtypes.map((d) => `${d.dtype} ${d.tensors} tensors ${formatBytes(d.bytes)} (${((100 * d.bytes) / total).toFixed(0)}%)`).join(' · ')]);
  const meta = Object.entries(r.metadata);
  if (meta.length > 0) kv.push(['metadata', meta.map(([k, v]) => `${k}=${v.length > 40 ? `${v.slice(0, 37)}...` : v}`).join(' · ')]);
  const w = Math.max(...kv.map(([k]) => k.length));
  // Tensor names, metadata and config values come from the files: each value and cell printed with
  // escapes (before the tables are laid out, so their own line breaks stay line breaks).
  for (const [k, v] of kv) out.push(`${k.padEnd(w)}  ${escapeControl(v)}`);
  if (r.model !== undefined) {
    const m = r.model.memory;
    // The KV cache both ways (--kv-cache f16, the default, and q8) side by side, where the heads take q8.
    const q8 = m.rowsQ8;
    const kvText = q8 === null ? `KV cache f16; no q8: ${(m.q8Refusal ?? '').replace(/^--kv-cache q8: /, '').replace(/ \(.*\)$/, '')}` : 'KV cache f16 and q8';
    out.push(
      '',
      `memory at --ctx ${m.ctx} (${kvText}${r.model.spec.slidingWindow !== null ? '; sliding layers keep only their window' : ''}; int4 groups of ${m.group})`,
    );
    out.push(
      table(
        ['scheme', 'weights', 'kv cache f16', 'total f16', ...(q8 === null ? [] : ['kv cache q8', 'total q8'])],
        m.rows.map((row, i) => [
          row.scheme,
          formatBytes(row.weights),
          formatBytes(row.kvCache),
          formatBytes(row.total),
          ...(q8 === null ? [] : [formatBytes(q8[i]!.kvCache), formatBytes(q8[i]!.total)]),
        ]),
        [false, true, true, true, true, true],
      )
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  }
  if (opts.tensors) {
    const rows = r.tensors.filter((t) => opts.filter === undefined || opts.filter.test(t.name));
    out.push(
      '',
      table(
        ['tensor', 'dtype', 'shape', 'bytes', 'status', 'file'],
        rows.map((t) =>
          [t.name, t.format === t.dtype ? t.dtype : `${t.dtype} ${t.format}`, `[${t.shape.join(', ')}]`, formatBytes(t.bytes), t.status, t.file].map((c) =>
            escapeControl(c),
          ),
        ),
        [false, false, false, true, false, false],
      ),
    );
    out.push(`${rows.length} of ${r.tensors.length} tensors`);
  }
  return out.join('\n');
}

/** The plan as text: per pass, the totals, then layer 0's fused steps and the dispatches they lower to. */
export function renderPlan(p: ModelPlan): string {
  const out = [
    `plan of ${p.model} on ${p.device} (fusion ${p.fusion ? 'on; UNICORN_NO_FUSION=1 turns it off' : 'off (UNICORN_NO_FUSION=1)'}; KV cache ${p.kvCache}; recorded, not run)`,
  ];
  for (const [what, pass] of [
    ['decode step (1 token, greedy)', p.decode],
    [`prefill batch (${p.prefill.tokens} tokens)`, p.prefill],
  ] as const) {
    out.push('', `${what}: ${pass.dispatches} dispatches, ${pass.barriers} barriers in the whole pass; layer 0:`);
    out.push('  fused steps', ...pass.layerSteps.map((s) => `    ${describeStep(s)}`));
    out.push('  dispatches and barriers', ...pass.layerLines.map((l) => `    ${l}`));
  }
  return out.map((l) => escapeControl(l)).join('\n');
}

function toJson(r: InspectReport, opts: { tensors: boolean; filter?: RegExp }): unknown {
  const tensors = r.tensors.filter((t) => opts.filter === undefined || opts.filter.test(t.name));
  return {
    ...r,
    model:
      r.model === undefined
        ? null
        : {
            ...r.model,
            kvCacheBytesPerToken: kvCacheBytes(r.model.spec, 1),
            kvCacheBytesPerTokenQ8: r.model.memory.rowsQ8 === null ? null : kvCacheBytes(r.model.spec, 1, 'q8'),
          },
    tensors: opts.tensors || opts.filter !== undefined ? tensors : undefined,
  };
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description("show a checkpoint's architecture, tensors, dtypes and memory plan (reads headers only)")
    .argument('<model>', 'model directory (config.json + safetensors), a .safetensors file, or a Hub model name (org/name[@rev]) in the cache')
    .option('--tensors', 'list every tensor')
    .option('--filter <regex>', 'only tensors whose name matches (implies --tensors)')
    .option('--ctx <n>', 'context length for the KV cache estimate', positive, 4096)
    .addOption(new Option('--group <n>', 'INT4 group size for the estimates').choices(INT4_GROUPS.map(String)).default(String(DEFAULT_INT4_GROUP)))
    .option('--plan', "load the model onto the GPU and show one layer's fused steps and dispatches, for decode and prefill (recorded, not run)")
    .option('--gpu <index|name>', 'which GPU, with --plan (default: $UNICORN_GPU, else the best one)')
    .addOption(kvCacheOption('with --plan, the KV cache the plan is recorded for (the memory plan shows both)'))
    .option('--json', 'print JSON for scripts')
    .action(
      (
        given: string,
        o: { tensors?: boolean; filter?: string; ctx: number; group: string; json?: boolean; plan?: boolean; gpu?: string; kvCache?: KvCacheType },
        cmd: Command,
      ) => {
        const model = resolveModelArg(given);
        if (o.plan === true) {
          // The context only sizes the KV cache here: the model's own default unless --ctx was given.
          const ctxGiven = cmd.getOptionValueSource('ctx') === 'cli';
          const plan = modelPlan(model, {
            ...(ctxGiven ? { ctx: o.ctx } : {}),
            ...(o.gpu === undefined ? {} : { gpu: o.gpu }),
            ...(o.kvCache === undefined ? {} : { kvCache: o.kvCache }),
          });
          process.stdout.write(o.json === true ? `${jsonForTerminal(plan, 2)}\n` : `${renderPlan(plan)}\n`);
          return;
        }
        let filter: RegExp | undefined;
        if (o.filter !== undefined) {
          try {
            filter = new RegExp(o.filter);
          } catch (e) {
            throw new UnicornError(`--filter ${JSON.stringify(o.filter)} is not a valid regular expression (${e instanceof Error ? e.message : String(e)})`);
          }
        }
        const report = inspectTarget(model, { ctx: o.ctx, group: Number(o.group) });
        const view = { tensors: o.tensors === true || filter !== undefined, ...(filter === undefined ? {} : { filter }) };
        process.stdout.write(o.json === true ? `${jsonForTerminal(toJson(report, view), 2)}\n` : `${renderInspect(report, view)}\n`);
      },
    );
}
