/**
 * The resident server's runtime folder as an attacker on the same machine sees it. Without
 * XDG_RUNTIME_DIR the folder is $TMPDIR/unicorn-<uid>, a name anyone can create first. These tests
 * create it first (or put things in it) the way another user would, and check that no command talks
 * to a server it did not check, writes through a symlink, or fails with "internal error".
 *
 * "Another user" is simulated: as root, files are chown-ed to nobody (65534), and a non-root victim
 * is run with uid 65534; those cases are skipped where the tests do not run as root. Each test has
 * its own TMPDIR, removed at the end, and ends every process it started.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { modelFixture, scratchDir } from '../../support/paths.js';
import { type CliResult, cli, fakeServer, keptPid, kill, modelStem } from './harness.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const model = modelFixture('llama');
const stem = modelStem(model);
const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** A private TMPDIR for one scenario, and the environment that makes unicorn use it (no XDG_RUNTIME_DIR). */
function scenario(): { tmp: string; env: NodeJS.ProcessEnv; folder: (uid?: number) => string } {
  const tmp = scratchDir('hijack');
  roots.push(tmp);
  const env = { ...process.env, UNICORN_VALIDATION: '0', XDG_RUNTIME_DIR: '', TMPDIR: tmp };
  return { tmp, env, folder: (uid = process.getuid?.() ?? 0) => path.join(tmp, `unicorn-${uid}`) };
}

/** A refusal: exit 1, one clear line naming the runtime folder or socket, no "internal error". */
function refused(r: CliResult, what: RegExp, label: string): void {
  assert.equal(r.code, 1, `${label}: exit ${r.code}\n${r.out}\n${r.err}`);
  assert.match(r.err, what, label);
  assert.doesNotMatch(r.err, /internal error/, label);
  assert.match(r.err, /fix: /, `${label}: says what to do`);
  assert.doesNotMatch(r.out, /ATTACKER|FAKE/, `${label}: nothing from the fake server is printed`);
}

/** Every command that uses the runtime folder, pointed at a folder it must refuse. */
async function everyCommandRefuses(env: NodeJS.ProcessEnv, what: RegExp, o: { uid?: number; gid?: number } = {}): Promise<void> {
  const pids: (number | undefined)[] = [];
  try {
    const runs: [string, string[]][] = [
      ['run', ['run', model, 'the secret prompt', '-n', '4', '--temp', '0']],
      ['ps', ['ps']],
      ['load --keep', ['load', model, '--keep', '--json']],
      ['serve', ['serve', model, '--port', '0']],
      ['stop', ['stop']],
    ];
    for (const [label, args] of runs) {
      const r = await cli(args, { env, timeoutMs: 30_000, ...o });
      if (label === 'load --keep') pids.push(keptPid(r));
      refused(r, what, label);
    }
  } finally {
    for (const p of pids) kill(p);
  }
}

test('a runtime folder of mode 0777 is refused by run, ps, load --keep, serve and stop: nothing is sent to the server in it', async () => {
  const s = scenario();
  const dir = s.folder();
  fs.mkdirSync(dir);
  fs.chmodSync(dir, 0o777);
  const fake = await fakeServer(path.join(dir, `${stem}.sock`));
  try {
    await everyCommandRefuses(s.env, /runtime folder .*unicorn-\d+ is not safe: its mode is 0777/);
    assert.equal(fake.connections(), 0, 'no command connected to the socket in the open folder');
  } finally {
    await fake.close();
  }
  assert.equal(fs.statSync(dir).mode & 0o777, 0o777, 'the folder was left as it was (not chmod-ed into use)');
});

test(
  "a runtime folder that another user made first (with a symlinked log and their socket in it) is refused: root's prompt never reaches them, nothing is written through the link",
  { skip: !isRoot && 'needs root to make a folder owned by another user' },
  async () => {
    const s = scenario();
    const dir = s.folder();
    const victim = path.join(s.tmp, 'precious.txt');
    fs.writeFileSync(victim, 'precious\n');
    fs.mkdirSync(dir);
    fs.symlinkSync(victim, path.join(dir, `${stem}.log`));
    const sock = path.join(dir, `${stem}.sock`);
    const fake = await fakeServer(sock);
    fs.chmodSync(sock, 0o777);
    fs.lchownSync(sock, NOBODY, NOBODY);
    fs.lchownSync(path.join(dir, `${stem}.log`), NOBODY, NOBODY);
    fs.chmodSync(dir, 0o777);
    fs.chownSync(dir, NOBODY, NOBODY);
    try {
      await everyCommandRefuses(s.env, /runtime folder .*unicorn-0 is not safe: it belongs to uid 65534, not to you \(uid 0\)/);
      assert.equal(fake.connections(), 0, "the attacker's socket was never connected to");
      assert.doesNotMatch(fake.received(), /secret/);
    } finally {
      await fake.close();
    }
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious\n', "the symlinked log's target is untouched");
  },
);

test('a runtime folder that is a symlink, or a plain file, is refused', async () => {
  const s = scenario();
  const elsewhere = path.join(s.tmp, 'elsewhere');
  fs.mkdirSync(elsewhere, { mode: 0o700 });
  const fake = await fakeServer(path.join(elsewhere, `${stem}.sock`));
  fs.symlinkSync(elsewhere, s.folder());
  try {
    const r = await cli(['run', model, 'the secret prompt', '-n', '4', '--temp', '0'], { env: s.env, timeoutMs: 30_000 });
    refused(r, /runtime folder .* is not safe: it is a symlink/, 'run');
    refused(await cli(['ps'], { env: s.env, timeoutMs: 30_000 }), /it is a symlink/, 'ps');
    assert.equal(fake.connections(), 0);
  } finally {
    await fake.close();
  }
  fs.unlinkSync(s.folder());
  fs.writeFileSync(s.folder(), 'not a folder');
  refused(await cli(['ps'], { env: s.env, timeoutMs: 30_000 }), /runtime folder .* is not safe: it is not a directory/, 'ps on a file');
});

test(
  'a non-root user whose runtime folder another user made gets a clear error from run, ps, load --keep, serve and stop (not "internal error: EPERM")',
  { skip: !isRoot && 'needs root to run a command as another user' },
  async () => {
    const s = scenario();
    fs.chmodSync(s.tmp, 0o755); // the victim (nobody) must reach its TMPDIR
    const dir = s.folder(NOBODY);
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o777); // made by root, open to all: the victim cannot chmod it
    await everyCommandRefuses({ ...s.env, HOME: s.tmp }, /runtime folder .*unicorn-65534 is not safe: it belongs to uid 0, not to you \(uid 65534\)/, {
      uid: NOBODY,
      gid: NOBODY,
    });
  },
);

test("in a private runtime folder, a symlink at the log's name is not written through; load --keep and stop work", async () => {
  const s = scenario();
  const victim = path.join(s.tmp, 'precious.txt');
  fs.writeFileSync(victim, 'precious\n');
  fs.mkdirSync(s.folder(), { mode: 0o700 });
  fs.symlinkSync(victim, path.join(s.folder(), `${stem}.log`));
  const keep = await cli(['load', model, '--keep', '--json'], { env: s.env });
  try {
    assert.equal(keep.code, 0, keep.err);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious\n', "the link's target is untouched");
    const log = path.join(s.folder(), `${stem}.log`);
    assert.ok(!fs.lstatSync(log).isSymbolicLink(), "the server's log replaced the link");
    assert.match(fs.readFileSync(log, 'utf8'), /serving/);
    const stop = await cli(['stop'], { env: s.env });
    assert.equal(stop.code, 0, stop.err);
  } finally {
    kill(keptPid(keep));
  }
  assert.deepEqual(fs.readdirSync(s.folder()), [], 'a clean stop leaves no socket, lock or log');
});

test("a socket that is a plain file, a symlink to someone's socket, or another user's socket is never talked to: run refuses it, ps does not list it", async () => {
  const s = scenario();
  fs.mkdirSync(s.folder(), { mode: 0o700 });
  const sock = path.join(s.folder(), `${stem}.sock`);
  // A plain file where the socket goes.
  fs.writeFileSync(sock, '');
  refused(
    await cli(['run', model, 'the secret prompt', '-n', '4', '--temp', '0'], { env: s.env, timeoutMs: 30_000 }),
    /refusing to talk to the resident server at .*: it is not a socket/,
    'run, plain file',
  );
  const ps = await cli(['ps'], { env: s.env, timeoutMs: 30_000 });
  assert.equal(ps.code, 0, ps.err);
  assert.match(ps.out, /no resident models/);
  assert.match(ps.err, /warning: not listing .*: it is not a socket/);
  assert.ok(fs.existsSync(sock), 'a client removes nothing');
  fs.unlinkSync(sock);
  // A symlink to a live socket elsewhere (the attacker's).
  const elsewhere = path.join(s.tmp, 'attacker.sock');
  const fake = await fakeServer(elsewhere);
  fs.symlinkSync(elsewhere, sock);
  try {
    refused(
      await cli(['run', model, 'the secret prompt', '-n', '4', '--temp', '0'], { env: s.env, timeoutMs: 30_000 }),
      /refusing to talk to the resident server at .*: it is a symlink/,
      'run, symlink',
    );
    const ps2 = await cli(['ps', '--json'], { env: s.env, timeoutMs: 30_000 });
    assert.deepEqual(JSON.parse(ps2.out), [], 'ps lists no fake server');
    assert.equal(fake.connections(), 0);
  } finally {
    await fake.close();
  }
  fs.unlinkSync(sock);
  if (!isRoot) return; // another user's socket needs root to make
  const theirs = await fakeServer(sock);
  fs.lchownSync(sock, NOBODY, NOBODY);
  try {
    refused(
      await cli(['run', model, 'the secret prompt', '-n', '4', '--temp', '0'], { env: s.env, timeoutMs: 30_000 }),
      /refusing to talk to the resident server at .*: it belongs to uid 65534, not to you/,
      "run, another user's socket",
    );
    const ps3 = await cli(['ps', '--json'], { env: s.env, timeoutMs: 30_000 });
    assert.deepEqual(JSON.parse(ps3.out), [], 'ps lists no fake server');
    assert.equal(theirs.connections(), 0);
  } finally {
    await theirs.close();
  }
});
