/** unicorn doctor: the checks over recorded and documented snapshots, and the command for real here. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { type Check, runChecks } from '../../src/engine/doctor/checks.js';
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
    assert.deepEqual(checks.filter((c) => c.status === 'FAIL' || c.status === 'WARN').map((c) => `${c.name}: ${c.evidence}`), []);
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
  test('the NVIDIA H100 machine (recorded on the device): all PASS, no APU or NPU facts', () => {
    const checks = runChecks(recorded('h100-nvidia.json'));
    assert.deepEqual(checks.filter((c) => c.status === 'FAIL' || c.status === 'WARN'), []);
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
    const noLoader = runChecks({ ...base, vulkan: { loader: false, error: 'libvulkan.so.1: cannot open shared object file', devices: [], chosen: null, selfTest: null } });
    assert.match(find(noLoader, 'loader').fix!, /apt install libvulkan1/);
    const noDriver = runChecks({ ...base, dirs: { ...base.dirs, '/usr/share/vulkan/icd.d': [], '/etc/vulkan/icd.d': null }, vulkan: { loader: true, error: 'no Vulkan device', devices: [], chosen: null, selfTest: null } });
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
  const fail = spawnSync(process.execPath, [BIN, 'doctor', '--from', bad, '--model', path.join(FIXTURES, 'models', 'llama'), '--json'], { encoding: 'utf8', env });
  assert.equal(fail.status, 0, 'a tiny model fits the laptop');
  const broken = ryzenSnapshot('tuned');
  fs.writeFileSync(bad, JSON.stringify({ ...broken, vulkan: { ...broken.vulkan, selfTest: { ...broken.vulkan.selfTest!, ok: false, detail: 'wrong result' } } }));
  assert.equal(spawnSync(process.execPath, [BIN, 'doctor', '--from', bad], { encoding: 'utf8', env }).status, 1);
});
