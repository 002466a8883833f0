import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { blobPath, findSnapshot, incompletePath, repoFolder } from '../../../src/engine/hub/cache.js';
import { type PullEvent, type PullOptions, pullModel } from '../../../src/engine/hub/pull.js';
import { parseRepoRef } from '../../../src/engine/hub/repo-id.js';
import { openModel } from '../../../src/engine/models/model-dir.js';
import { type HubRepo, type HubServer, TOKEN, commitOf, gitBlobId, sha256, startHub } from '../../support/hub-server.js';
import { modelFixture, scratchDir } from '../../support/paths.js';

function fixtureFiles(name: string): Map<string, Buffer> {
  const dir = modelFixture(name);
  return new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

/** The fixture as a Hub repo, with the files a real one has that unicorn must not download. */
function withExtras(files: Map<string, Buffer>): Map<string, Buffer> {
  const out = new Map(files);
  out.set('README.md', Buffer.from('# a model\n'));
  out.set('pytorch_model.bin', Buffer.alloc(3000, 1));
  out.set('model.gguf', Buffer.alloc(2000, 2));
  out.set('original/consolidated.pth', Buffer.alloc(1000, 3));
  out.set('onnx/model.onnx', Buffer.alloc(1000, 4));
  return out;
}

/** The llama fixture cut in two shards with an index, and a stray consolidated.safetensors the index does not name. */
function sharded(): Map<string, Buffer> {
  const files = fixtureFiles('llama');
  const st = files.get('model.safetensors')!;
  files.delete('model.safetensors');
  // Shard bytes need not parse for the pull: it moves files, the loader reads them.
  files.set('model-00001-of-00002.safetensors', st.subarray(0, 1000));
  files.set('model-00002-of-00002.safetensors', st.subarray(1000));
  files.set(
    'model.safetensors.index.json',
    Buffer.from(JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } })),
  );
  files.set('consolidated.safetensors', Buffer.alloc(5000, 7));
  return files;
}

const repos = new Map<string, HubRepo>([
  ['test-org/gemma-mm', { files: withExtras(fixtureFiles('gemma3-mm')), commit: commitOf('gemma-mm'), refs: ['v1.0'] }],
  ['test-org/qwen', { files: fixtureFiles('qwen2'), commit: commitOf('qwen') }],
  ['test-org/sharded', { files: sharded(), commit: commitOf('sharded') }],
  ['test-org/gated', { files: fixtureFiles('llama'), commit: commitOf('gated'), gated: true }],
  [
    'test-org/bert',
    {
      files: new Map([
        ['config.json', Buffer.from(JSON.stringify({ architectures: ['BertForMaskedLM'], model_type: 'bert' }))],
        ['model.safetensors', Buffer.alloc(4096, 9)],
      ]),
      commit: commitOf('bert'),
    },
  ],
  ['test-org/drop', { files: fixtureFiles('llama'), commit: commitOf('drop') }],
  ['test-org/corrupt', { files: fixtureFiles('qwen2'), commit: commitOf('corrupt') }],
  ['test-org/etag', { files: fixtureFiles('qwen2'), commit: commitOf('etag') }],
  ['test-org/resume', { files: fixtureFiles('gemma3-text'), commit: commitOf('resume') }],
  [
    'test-org/dupes',
    { files: new Map([...fixtureFiles('llama'), ['added_tokens.json', fixtureFiles('llama').get('generation_config.json')!]]), commit: commitOf('dupes') },
  ],
]);

let hub: HubServer;
before(async () => {
  hub = await startHub(repos, {}, new Map([['old-org/qwen', 'test-org/qwen']]));
});
after(() => hub.close());

function options(cacheDir: string, more: Partial<PullOptions> = {}): PullOptions {
  return { cacheDir, endpoint: hub.endpoint, retryDelayMs: 0, ...more };
}

describe('pullModel against a local Hub', () => {
  test('downloads only what unicorn needs, into the huggingface_hub layout, and the snapshot opens as a model', async () => {
    const cache = scratchDir('hub-pull');
    const ref = parseRepoRef('test-org/gemma-mm');
    const r = await pullModel(ref, options(cache, { token: TOKEN }));
    const repo = repos.get('test-org/gemma-mm')!;
    assert.equal(r.commit, repo.commit);
    const folder = repoFolder(cache, 'test-org/gemma-mm');
    assert.equal(path.basename(folder), 'models--test-org--gemma-mm');
    assert.deepEqual(r.files.map((f) => f.file).sort(), [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    assert.equal(fs.readFileSync(path.join(folder, 'refs', 'main'), 'utf8'), repo.commit);
    for (const [file, body] of repo.files) {
      const link = path.join(folder, 'snapshots', repo.commit, file);
      if (!r.files.some((f) => f.file === file)) {
        assert.equal(fs.existsSync(link), false, `${file} is not downloaded`);
        continue;
      }
      // huggingface_hub's layout: a relative link to blobs/<etag>, sha256 for LFS files, the git blob id otherwise.
      const etag = file.endsWith('.safetensors') ? sha256(body) : gitBlobId(body);
      assert.equal(fs.readlinkSync(link), path.join('..', '..', 'blobs', etag));
      assert.deepEqual(fs.readFileSync(link), body);
    }
    assert.deepEqual(
      fs.readdirSync(path.join(folder, 'blobs')).filter((b) => b.endsWith('.incomplete')),
      [],
    );
    // The token went to the endpoint, never to the CDN the LFS file was redirected to.
    const cdn = hub.log.filter((l) => l.server === 'cdn');
    assert.ok(cdn.length > 0, 'the safetensors file came through the redirect');
    assert.ok(cdn.every((l) => l.authorization === undefined));
    assert.ok(hub.log.filter((l) => l.server === 'hub').every((l) => l.authorization === `Bearer ${TOKEN}`));
    // Read back through the same layout rules, and opened as any model directory.
    const snap = findSnapshot(cache, ref);
    assert.equal(snap.dir, r.dir);
    const model = openModel(snap.dir);
    assert.equal(model.spec.architecture, 'Gemma3ForConditionalGeneration');
    model.checkpoint.close();
    // A second pull finds everything in the cache and downloads nothing.
    const before = hub.log.length;
    const again = await pullModel(ref, options(cache));
    assert.equal(again.downloadedBytes, 0);
    assert.equal(again.cachedFiles, again.files.length);
    assert.deepEqual(
      hub.log.slice(before).map((l) => l.path),
      [`/api/models/test-org/gemma-mm/revision/main?blobs=true`],
    );
  });

  test('a tag is resolved to its commit and recorded under refs/', async () => {
    const cache = scratchDir('hub-tag');
    const r = await pullModel(parseRepoRef('test-org/gemma-mm@v1.0'), options(cache));
    const folder = repoFolder(cache, 'test-org/gemma-mm');
    assert.equal(fs.readFileSync(path.join(folder, 'refs', 'v1.0'), 'utf8'), r.commit);
    assert.equal(fs.existsSync(path.join(folder, 'refs', 'main')), false);
    // A commit is its own revision: no ref is written for it.
    const byCommit = await pullModel(parseRepoRef(`test-org/gemma-mm@${r.commit}`), options(cache));
    assert.equal(byCommit.dir, r.dir);
    assert.deepEqual(fs.readdirSync(path.join(folder, 'refs')), ['v1.0']);
  });

  test('a sharded checkpoint: the index and the shards it names, not a stray consolidated file; --include and --exclude', async () => {
    const cache = scratchDir('hub-sharded');
    const r = await pullModel(parseRepoRef('test-org/sharded'), options(cache));
    const got = r.files.map((f) => f.file);
    assert.ok(got.includes('model.safetensors.index.json'));
    assert.ok(got.includes('model-00001-of-00002.safetensors') && got.includes('model-00002-of-00002.safetensors'));
    assert.ok(!got.includes('consolidated.safetensors'));
    const more = await pullModel(parseRepoRef('test-org/sharded'), options(cache, { include: ['consolidated.*'], exclude: ['generation_config.json'] }));
    assert.ok(more.files.some((f) => f.file === 'consolidated.safetensors'));
    assert.ok(!more.files.some((f) => f.file === 'generation_config.json'));
  });

  test('a connection dropped mid-file is resumed with a Range request and the file verified', async () => {
    const cache = scratchDir('hub-drop');
    hub.faults.drop = new Map([['model.safetensors', { after: 100_000, times: 1 }]]);
    const events: PullEvent[] = [];
    try {
      const r = await pullModel(parseRepoRef('test-org/drop'), options(cache, { onEvent: (e) => events.push(e) }));
      assert.equal(findSnapshot(cache, parseRepoRef('test-org/drop')).dir, r.dir);
    } finally {
      hub.faults.drop = undefined;
    }
    const body = repos.get('test-org/drop')!.files.get('model.safetensors')!;
    assert.ok(events.some((e) => e.kind === 'retry' && e.file === 'model.safetensors'));
    const cdn = hub.log.filter((l) => l.server === 'cdn' && l.path === `/cdn/${sha256(body)}`);
    // Resumed where the partial file ends: at most the bytes sent before the drop (a client drops what it had not read yet).
    assert.equal(cdn.length, 2);
    assert.equal(cdn[0]!.range, undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(cdn[1]!.range ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 100_000, `resumed at ${cdn[1]!.range}`);
    assert.deepEqual(fs.readFileSync(path.join(repoFolder(cache, 'test-org/drop'), 'snapshots', commitOf('drop'), 'model.safetensors')), body);
  });

  test('out of retries: a resumable partial file, no snapshot, a message saying to run again; the next pull resumes it', async () => {
    const cache = scratchDir('hub-drop2');
    const ref = parseRepoRef('test-org/drop');
    const body = repos.get('test-org/drop')!.files.get('model.safetensors')!;
    hub.faults.drop = new Map([['model.safetensors', { after: 150_000, times: 1 }]]);
    let kept = 0;
    try {
      await assert.rejects(pullModel(ref, options(cache, { retries: 0 })), (e: Error & { hint?: string }) => {
        const m = /^model\.safetensors: the connection .*\((\d+) of 411552 bytes kept in .*\.incomplete\)$/.exec(e.message);
        assert.ok(m !== null, e.message);
        kept = Number(m[1]);
        assert.equal(e.hint, 'run `unicorn pull test-org/drop` again: it resumes where this stopped');
        return true;
      });
    } finally {
      hub.faults.drop = undefined;
    }
    const folder = repoFolder(cache, 'test-org/drop');
    assert.ok(kept > 0 && kept <= 150_000);
    assert.equal(fs.statSync(incompletePath(folder, sha256(body))).size, kept);
    assert.equal(fs.existsSync(path.join(folder, 'snapshots')), false, 'no snapshot for run to load');
    assert.throws(
      () => findSnapshot(cache, ref),
      (e: Error & { hint?: string }) => /is not \(completely\) downloaded/.test(e.message) && e.hint === 'download it with `unicorn pull test-org/drop`',
    );
    const start = hub.log.length;
    const r = await pullModel(ref, options(cache));
    assert.equal(r.downloadedBytes, body.byteLength - kept);
    assert.ok(hub.log.slice(start).some((l) => l.server === 'cdn' && l.range === `bytes=${kept}-`));
    assert.deepEqual(fs.readFileSync(blobPath(folder, sha256(body))), body);
    assert.equal(fs.existsSync(incompletePath(folder, sha256(body))), false);
  });

  test('a partial file left by an earlier run (or by huggingface_hub) is resumed, and the whole file hashed', async () => {
    const cache = scratchDir('hub-resume');
    const body = repos.get('test-org/resume')!.files.get('model.safetensors')!;
    const folder = repoFolder(cache, 'test-org/resume');
    fs.mkdirSync(path.join(folder, 'blobs'), { recursive: true });
    // A wrong first byte in the partial part: only the sha256 over the whole file can catch it.
    const prefix = Buffer.from(body.subarray(0, 4096));
    fs.writeFileSync(incompletePath(folder, sha256(body)), prefix);
    const r = await pullModel(parseRepoRef('test-org/resume'), options(cache));
    assert.equal(r.downloadedBytes, body.byteLength - 4096 + r.files.filter((f) => f.file !== 'model.safetensors').reduce((a, f) => a + f.size, 0));
    prefix[0] = prefix[0]! ^ 1;
    const cache2 = scratchDir('hub-resume-bad');
    const folder2 = repoFolder(cache2, 'test-org/resume');
    fs.mkdirSync(path.join(folder2, 'blobs'), { recursive: true });
    fs.writeFileSync(incompletePath(folder2, sha256(body)), prefix);
    await assert.rejects(
      pullModel(parseRepoRef('test-org/resume'), options(cache2)),
      /model\.safetensors: the download is corrupt \(sha256 [0-9a-f]{64}, the Hub says/,
    );
    assert.equal(fs.existsSync(incompletePath(folder2, sha256(body))), false, 'a corrupt partial file is not kept to resume');
  });

  test('a wrong hash is refused: nothing under the final name, no snapshot', async () => {
    const cache = scratchDir('hub-corrupt');
    hub.faults.corrupt = new Set(['model.safetensors']);
    try {
      await assert.rejects(pullModel(parseRepoRef('test-org/corrupt'), options(cache)), (e: Error) => {
        assert.match(e.message, /model\.safetensors: the download is corrupt .*it was deleted/);
        return true;
      });
    } finally {
      hub.faults.corrupt = undefined;
    }
    const folder = repoFolder(cache, 'test-org/corrupt');
    const body = repos.get('test-org/corrupt')!.files.get('model.safetensors')!;
    assert.equal(fs.existsSync(blobPath(folder, sha256(body))), false);
    assert.equal(fs.existsSync(path.join(folder, 'snapshots')), false);
  });

  test("an ETag that is not the model info's is refused", async () => {
    const cache = scratchDir('hub-etag');
    hub.faults.wrongEtag = new Set(['tokenizer.json']);
    try {
      await assert.rejects(
        pullModel(parseRepoRef('test-org/etag'), options(cache)),
        /tokenizer\.json: the Hub's ETag [0-9a-f]+ is not the [0-9a-f]+ its model info gave/,
      );
    } finally {
      hub.faults.wrongEtag = undefined;
    }
  });

  test('gated, missing repo, missing revision: one clear message each', async () => {
    const cache = scratchDir('hub-errors');
    await assert.rejects(pullModel(parseRepoRef('test-org/gated'), options(cache)), (e: Error & { hint?: string }) => {
      assert.match(e.message, /test-org\/gated is a gated model: its licence must be accepted on its Hub page/);
      assert.match(e.hint ?? '', new RegExp(`accept the licence at ${hub.endpoint}/test-org/gated, then set HF_TOKEN`));
      return true;
    });
    await pullModel(parseRepoRef('test-org/gated'), options(cache, { token: TOKEN }));
    await assert.rejects(
      pullModel(parseRepoRef('test-org/nope'), options(cache)),
      /test-org\/nope does not exist on .*, or it is private or gated and needs a token \(HTTP 401\)/,
    );
    await assert.rejects(
      pullModel(parseRepoRef('test-org/nope'), options(cache, { token: TOKEN })),
      /test-org\/nope does not exist on .*, or the token has no access to it \(HTTP 404\)/,
    );
    await assert.rejects(pullModel(parseRepoRef('test-org/qwen@nobranch'), options(cache)), /test-org\/qwen has no revision "nobranch" \(HTTP 404\)/);
  });

  test('an architecture unicorn does not run is refused from config.json, before any weight is requested', async () => {
    const cache = scratchDir('hub-bert');
    const start = hub.log.length;
    await assert.rejects(
      pullModel(parseRepoRef('test-org/bert'), options(cache)),
      /unknown architecture \(architectures \["BertForMaskedLM"\].*\); unicorn runs Gemma3ForConditionalGeneration, /,
    );
    assert.deepEqual(
      hub.log.slice(start).map((l) => l.path),
      ['/api/models/test-org/bert/revision/main?blobs=true', `/test-org/bert/resolve/${commitOf('bert')}/config.json`],
    );
  });

  test('not enough disk space is refused before the weights are requested', async () => {
    const cache = scratchDir('hub-space');
    const start = hub.log.length;
    await assert.rejects(
      pullModel(parseRepoRef('test-org/qwen'), options(cache, { freeBytes: () => 1000 })),
      /test-org\/qwen needs \d+ more bytes .* and only 0\.00 GB are free/,
    );
    assert.ok(!hub.log.slice(start).some((l) => l.path.endsWith('model.safetensors')));
    assert.equal(fs.existsSync(path.join(repoFolder(cache, 'test-org/qwen'), 'snapshots')), false);
  });

  test('HF_HUB_OFFLINE: the cache answers without a request; a model not there is an error', async () => {
    const cache = scratchDir('hub-offline');
    await pullModel(parseRepoRef('test-org/qwen'), options(cache));
    const start = hub.log.length;
    const r = await pullModel(parseRepoRef('test-org/qwen'), options(cache, { offline: true }));
    assert.equal(r.offline, true);
    assert.equal(r.commit, commitOf('qwen'));
    await assert.rejects(
      pullModel(parseRepoRef('test-org/sharded'), options(cache, { offline: true })),
      /HF_HUB_OFFLINE is set, and test-org\/sharded is not in the Hugging Face cache/,
    );
    assert.equal(hub.log.length, start);
  });

  test('a file another live process is downloading is refused (its lock); a stale lock is taken over', async () => {
    const cache = scratchDir('hub-lock');
    const body = repos.get('test-org/qwen')!.files.get('model.safetensors')!;
    const locks = path.join(cache, '.locks', 'models--test-org--qwen');
    fs.mkdirSync(locks, { recursive: true });
    const lock = path.join(locks, `${sha256(body)}.unicorn.lock`);
    // The lock as another live process's pull leaves it (server/lock.ts's record: its pid and start time).
    fs.writeFileSync(lock, JSON.stringify({ pid: process.ppid, start: null }));
    await assert.rejects(pullModel(parseRepoRef('test-org/qwen'), options(cache)), /model\.safetensors is being downloaded by another process \(pid \d+/);
    // A process id that is not running: the lock is stale; so is a file that is not a lock record.
    fs.writeFileSync(lock, JSON.stringify({ pid: 2147483646, start: null }));
    await pullModel(parseRepoRef('test-org/qwen'), options(cache));
    assert.deepEqual(fs.readdirSync(locks), [], 'every lock is released');
    fs.rmSync(path.join(cache, 'models--test-org--qwen'), { recursive: true, force: true });
    fs.mkdirSync(locks, { recursive: true });
    fs.writeFileSync(lock, '2147483646');
    await pullModel(parseRepoRef('test-org/qwen'), options(cache));
    assert.deepEqual(fs.readdirSync(locks), [], 'every lock is released');
  });

  test('a renamed repo: the relative redirects are followed with the token, and the ETag read after them', async () => {
    const cache = scratchDir('hub-renamed');
    const start = hub.log.length;
    const r = await pullModel(parseRepoRef('old-org/qwen'), options(cache, { token: TOKEN }));
    assert.equal(r.commit, commitOf('qwen'));
    const hubSide = hub.log.slice(start).filter((l) => l.server === 'hub');
    assert.ok(hubSide.some((l) => l.path.startsWith('/test-org/qwen/resolve/')));
    assert.ok(hubSide.every((l) => l.authorization === `Bearer ${TOKEN}`));
    assert.ok(fs.existsSync(path.join(repoFolder(cache, 'old-org/qwen'), 'snapshots', commitOf('qwen'), 'model.safetensors')));
  });

  test('a request that gets no reply at all (the server hung up) is retried like a dropped body', async () => {
    const cache = scratchDir('hub-hangup');
    hub.faults.hangUp = new Map([['model.safetensors', 1]]);
    const events: PullEvent[] = [];
    try {
      await pullModel(parseRepoRef('test-org/qwen'), options(cache, { onEvent: (e) => events.push(e) }));
    } finally {
      hub.faults.hangUp = undefined;
    }
    const retries = events.filter((e) => e.kind === 'retry');
    assert.equal(retries.length, 1);
    assert.match(retries[0]!.kind === 'retry' ? retries[0]!.why : '', /could not reach http:\/\/127\.0\.0\.1:\d+: the connection was reset/);
  });

  test('two files with the same bytes share one blob, downloaded once', async () => {
    const cache = scratchDir('hub-dupes');
    const start = hub.log.length;
    const r = await pullModel(parseRepoRef('test-org/dupes'), options(cache));
    const snap = path.join(repoFolder(cache, 'test-org/dupes'), 'snapshots', r.commit);
    assert.equal(fs.readlinkSync(path.join(snap, 'added_tokens.json')), fs.readlinkSync(path.join(snap, 'generation_config.json')));
    const gets = hub.log.slice(start).filter((l) => /\/(added_tokens|generation_config)\.json$/.test(l.path));
    assert.equal(gets.length, 1);
  });
});
