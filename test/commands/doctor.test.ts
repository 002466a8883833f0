/** unicorn doctor: the checks over recorded and documented snapshots, and the command for real here. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { modelNeeds } from '../../src/commands/doctor.js';
import { type Check, runChecks } from '../../src/engine/doctor/checks.js';
import { ConfigError } from '../../src/engine/errors.js';
import { kvCacheBytes } from '../../src/engine/models/memory.js';
import { readModelSpec } from '../../src/engine/models/model-dir.js';
import type { Snapshot } from '../../src/engine/doctor/probe.js';
import { BIN, FIXTURES, scratchDir } from '../support/paths.js';
import { ryzenSnapshot } from '../support/ryzen-snapshot.js';

const recorded = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, 'doctor', name), 'utf8')) as Snapshot;
const find = (checks: Check[], name: string) => {
  const c = checks.find((x) => x.name === name || x.name.startsWith(name));
  assert.ok(c !== undefined, `no check ${name} in ${checks.map((x) => x.name).join(', ')}`);
  return c;
};

describe('doctor checks', () => {
  test('a tuned Ryzen AI laptop (780M, 16 GB carve-out, GTT raised, NPU on): all PASS, the model fits', () => {
    const checks = runChecks(ryzenSnapshot('tuned'), { dir: 'gemma-3-27b-mixed', weights: 17.6e9, kvCache: 1.11e9, ctx: 8192 });
    assert.deepEqual(
      checks.filter((c) => c.status === 'FAIL' || c.status === 'WARN').map((c) => `${c.name}: ${c.evidence}`),
      [],
    );
    assert.match(find(checks, 'CPU').evidence, /Ryzen 9 8945HS .* Hawk Point/);
    assert.match(find(checks, 'card1 VRAM').evidence, /16\.0 GiB/);
    assert.match(find(checks, 'card1 GTT').evidence, /44\.0 GiB \(amdgpu\.gttsize 45056, ttm\.pages_limit 11534336\)/);
    assert.equal(find(checks, 'model fits').status, 'PASS');
    assert.match(find(checks, 'NPU device').evidence, /Phoenix \/ Hawk Point NPU at 0000:c6:00\.1/);
    assert.equal(find(checks, 'amdxdna driver').status, 'PASS');
    assert.match(find(checks, 'XRT').evidence, /2\.19\.0/);
    assert.match(find(checks, 'power mode').evidence, /Default/);
    assert.match(find(checks, 'NPU execution').evidence, /does not run models on the NPU yet/);
  });
  test('the same laptop with BIOS defaults: small carve-out, NPU disabled, old kernel, low memlock; each with its fix', () => {
    const checks = runChecks(ryzenSnapshot('bios-defaults'), { dir: 'gemma-3-27b-mixed', weights: 17.6e9, kvCache: 1.11e9, ctx: 8192 });
    const vram = find(checks, 'card1 VRAM');
    assert.equal(vram.status, 'WARN');
    assert.match(vram.fix!, /UMA Frame Buffer Size/);
    const gtt = find(checks, 'card1 GTT');
    assert.equal(gtt.status, 'WARN');
    assert.match(gtt.fix!, /amdgpu\.gttsize=\d+ ttm\.pages_limit=\d+/);
    assert.equal(find(checks, 'model fits').status, 'PASS', '0.5 + 24 GB still holds 18.7 GB');
    const kernel = find(checks, 'kernel');
    assert.equal(kernel.status, 'WARN');
    assert.match(kernel.evidence, /6\.5.*needs 6\.10/);
    const npu = find(checks, 'NPU device');
    assert.equal(npu.status, 'WARN');
    assert.match(npu.fix!, /BIOS: look for "IPU Control"/);
    assert.equal(find(checks, 'memlock').status, 'WARN');
    const big = runChecks(ryzenSnapshot('bios-defaults'), { dir: 'gemma-3-27b', weights: 54e9, kvCache: 1.11e9, ctx: 8192 });
    const fits = find(big, 'model fits');
    assert.equal(fits.status, 'FAIL');
    assert.match(fits.fix!, /unicorn quantize/);
  });
  test('--model counts the chosen KV cache type (--kv-cache), names it, and offers q8 where the cache is f16 and the heads take it', () => {
    const dir = path.join(FIXTURES, 'models', 'gemma3-text'); // head_dim 32
    const spec = readModelSpec(dir);
    const ctx = spec.maxPositionEmbeddings;
    const f16 = modelNeeds(dir, 4096, 'f16');
    const q8 = modelNeeds(dir, 4096, 'q8');
    assert.equal(f16.ctx, ctx, 'the context is capped at the model maximum');
    assert.equal(f16.kvCache, kvCacheBytes(spec, ctx, 'f16'));
    assert.equal(q8.kvCache, kvCacheBytes(spec, ctx, 'q8'));
    assert.equal(modelNeeds(dir, 4096).kvCache, f16.kvCache, 'f16 by default');
    assert.equal(f16.kvCacheQ8, q8.kvCache, 'the q8 figure to suggest');
    assert.equal(q8.kvCacheQ8, undefined);
    assert.match(find(runChecks(ryzenSnapshot('tuned'), q8), 'model fits').evidence, /KV cache q8 0\.0 GB at --ctx 256\)/);
    const big = { dir: 'gemma-3-27b', weights: 54e9, ctx: 8192 };
    const fix = (needs: Parameters<typeof runChecks>[1]) => find(runChecks(ryzenSnapshot('bios-defaults'), needs), 'model fits').fix!;
    assert.match(fix({ ...big, kvCache: 1.11e9, kvType: 'f16', kvCacheQ8: 0.62e9 }), /--kv-cache q8 \(KV cache 0\.6 GB\)/);
    assert.doesNotMatch(fix({ ...big, kvCache: 0.62e9, kvType: 'q8' }), /--kv-cache/);
    // head_dim 16: q8 is refused as run would refuse it, and never offered.
    const llama = path.join(FIXTURES, 'models', 'llama');
    assert.throws(
      () => modelNeeds(llama, 4096, 'q8'),
      (e: unknown) => e instanceof ConfigError && /head_dim 16 is not a multiple of 32/.test(e.message),
    );
    assert.equal(modelNeeds(llama, 4096).kvCacheQ8, undefined);
  });
  test('the NVIDIA H100 machine (recorded on the device): all PASS, no APU or NPU facts', () => {
    const checks = runChecks(recorded('h100-nvidia.json'));
    assert.deepEqual(
      checks.filter((c) => c.status === 'FAIL' || c.status === 'WARN'),
      [],
    );
    assert.match(find(checks, 'devices').evidence, /NVIDIA H100 80GB HBM3 \(discrete-gpu/);
    assert.match(find(checks, 'self-test').evidence, /GB\/s, \d+% of a \d+ GB\/s copy/);
    assert.equal(find(checks, 'amdgpu').status, 'INFO');
    assert.match(find(checks, 'NPU device').evidence, /no AMD NPU/);
  });
  test('this kind of machine (recorded here): lavapipe only is a WARN with the fix, not a failure', () => {
    const checks = runChecks(recorded('debian-lavapipe.json'));
    const dev = find(checks, 'devices');
    assert.equal(dev.status, 'WARN');
    assert.match(dev.fix!, /mesa-vulkan-drivers/);
    assert.equal(checks.filter((c) => c.status === 'FAIL').length, 0);
  });
  test('a machine without the Vulkan loader or any driver fails with the package to install', () => {
    const base = recorded('debian-lavapipe.json');
    const noLoader = runChecks({
      ...base,
      vulkan: { loader: false, error: 'libvulkan.so.1: cannot open shared object file', devices: [], chosen: null, selfTest: null },
    });
    assert.match(find(noLoader, 'loader').fix!, /apt install libvulkan1/);
    const noDriver = runChecks({
      ...base,
      dirs: { ...base.dirs, '/usr/share/vulkan/icd.d': [], '/etc/vulkan/icd.d': null },
      vulkan: { loader: true, error: 'no Vulkan device', devices: [], chosen: null, selfTest: null },
    });
    assert.equal(find(noDriver, 'drivers (ICDs)').status, 'FAIL');
    assert.match(find(noDriver, 'drivers (ICDs)').fix!, /mesa-vulkan-drivers/);
  });
});

test('unicorn doctor for real here: a table, --json, --snapshot that --from reads back; exit code 1 on a failure', () => {
  const snap = path.join(scratchDir('doctor'), 'snap.json');
  const env = { ...process.env, UNICORN_VALIDATION: '0' };
  const r = spawnSync(process.execPath, [BIN, 'doctor', '--snapshot', snap], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /VULKAN\n {2}PASS {2}loader/);
  assert.match(r.stdout, /PASS {2}self-test/);
  const again = spawnSync(process.execPath, [BIN, 'doctor', '--from', snap, '--json'], { encoding: 'utf8', env });
  const j = JSON.parse(again.stdout) as { checks: Check[] };
  assert.ok(j.checks.some((c) => c.name === 'self-test' && c.status === 'PASS'));
  // A model that cannot fit: exit code 1.
  const bad = path.join(scratchDir('doctor'), 'ryzen.json');
  fs.writeFileSync(bad, JSON.stringify(ryzenSnapshot('tuned')));
  const fail = spawnSync(process.execPath, [BIN, 'doctor', '--from', bad, '--model', path.join(FIXTURES, 'models', 'llama'), '--json'], {
    encoding: 'utf8',
    env,
  });
  assert.equal(fail.status, 0, 'a tiny model fits the laptop');
  const broken = ryzenSnapshot('tuned');
  fs.writeFileSync(
    bad,
    JSON.stringify({ ...broken, vulkan: { ...broken.vulkan, selfTest: { ...broken.vulkan.selfTest!, ok: false, detail: 'wrong result' } } }),
  );
  assert.equal(spawnSync(process.execPath, [BIN, 'doctor', '--from', bad], { encoding: 'utf8', env }).status, 1);
});

describe('doctor --from on snapshots that are not what they claim', () => {
  const env = { ...process.env, UNICORN_VALIDATION: '0' };
  const doctor = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, 'doctor', ...args], { encoding: 'utf8', env, timeout: 60_000, killSignal: 'SIGKILL' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  test('a snapshot of the wrong shape says which field is wrong, and what it should be', () => {
    const dir = scratchDir('doctor');
    const good = recorded('debian-lavapipe.json') as unknown as Record<string, unknown>;
    const vk = good['vulkan'] as Record<string, unknown>;
    const dev = (vk['devices'] as Record<string, unknown>[])[0]!;
    const cases: [unknown, RegExp][] = [
      [null, /not a unicorn doctor snapshot: the file should be an object, but is null/],
      [[1, 2], /the file should be an object, but is an array/],
      [{ schema: 1 }, /takenAt should be a string, but is missing/],
      [{ ...good, schema: '1' }, /schema should be the number 1, but is the string "1"/],
      [{ ...good, schema: 2 }, /snapshot schema 2, this unicorn reads schema 1/],
      [{ ...good, vulkan: null }, /vulkan should be an object, but is null/],
      [{ ...good, files: { '/proc/meminfo': 7 } }, /files\["\/proc\/meminfo"\] should be a string, but is the number 7/],
      [{ ...good, vulkan: { ...vk, devices: [{ ...dev, heaps: null }] } }, /vulkan\.devices\[0\]\.heaps should be an array, but is null/],
      [{ ...good, vulkan: { ...vk, selfTest: { ok: 'yes' } } }, /vulkan\.selfTest\.device should be a string/],
    ];
    const file = path.join(dir, 'snap.json');
    for (const [value, want] of cases) {
      fs.writeFileSync(file, JSON.stringify(value));
      const r = doctor(['--from', file]);
      assert.equal(r.code, 1, `${JSON.stringify(value).slice(0, 80)}: exit ${r.code}\n${r.err}`);
      assert.match(r.err, want);
      assert.doesNotMatch(r.err, /internal error/);
      assert.equal(r.out, '');
    }
    fs.writeFileSync(file, '{"schema": 1, "takenAt": ');
    assert.match(doctor(['--from', file]).err, /unicorn: .*snap\.json: not a snapshot: not valid JSON/);
    assert.match(doctor(['--from', dir]).err, /unicorn: .*: is a directory, not a regular file/);
  });

  test('control characters in a snapshot (screen clears, title changes, C1 escapes) are printed as visible escapes', () => {
    const evil = recorded('debian-lavapipe.json');
    const nasty = '\u001b[2J\u001b]0;owned\u0007\u009b31m';
    const snap = {
      ...evil,
      files: { ...evil.files, '/proc/cpuinfo': `model name\t: Evil CPU ${nasty}\n` },
      vulkan: { ...evil.vulkan, devices: evil.vulkan.devices.map((d) => ({ ...d, name: `GPU ${nasty}` })) },
    };
    const file = path.join(scratchDir('doctor'), 'evil.json');
    fs.writeFileSync(file, JSON.stringify(snap));
    for (const args of [
      ['--from', file],
      ['--from', file, '--json'],
    ]) {
      const r = doctor(args);
      assert.equal(r.code, 0, r.err);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(r.out, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, `${args.join(' ')}: no raw control character on stdout`);
      assert.match(r.out, args.includes('--json') ? /Evil CPU \\u001b\[2J/ : /Evil CPU \\x1b\[2J\\x1b\]0;owned\\x07\\x9b31m/);
    }
  });

  test('--snapshot into a missing folder or under /proc is a clear write error; nothing is left behind', () => {
    const dir = scratchDir('doctor');
    for (const target of [path.join(dir, 'no', 'such', 'snap.json'), '/proc/self/snap.json', dir]) {
      const r = doctor(['--from', path.join(FIXTURES, 'doctor', 'debian-lavapipe.json'), '--snapshot', target]);
      assert.equal(r.code, 1, `${target}: ${r.err}`);
      assert.match(r.err, /unicorn: cannot write /);
      assert.doesNotMatch(r.err, /internal error/);
    }
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});
