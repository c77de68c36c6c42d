/**
 * End to end across processes: this process serves a virtual radio on a Unix socket and runs the lock
 * runtime (LockAuthority behind BlenoLockPeripheral, firmware-sim/src/runtime/radio-lock.ts) on device 0; `tandem
 * unlock|relock|status --radio` runs as a child process on device 1, as a tester drives a simulated lock.
 * Real time (the radio is shared between processes), short intervals to keep the run quick; nothing asserts
 * on durations.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  VirtualRadio,
  installVirtualHci,
  loadBleno,
  serveRadio,
} from '../../hardware/src/virtual-radio/index.js';
import type { RadioServer } from '../../hardware/src/virtual-radio/index.js';
import { newKeyFile, readKeyFile, writeKeyFile } from '../../gateway/src/key-file.js';
import { SystemClock } from '../../hardware/src/clock.js';
import { NOW, issuerProvisioning, tokenWorld } from '../../gateway/test/helpers.js';
import { mintToken } from '../../protocol/src/token.js';
import { startRadioLock } from '../../firmware-sim/src/runtime/radio-lock.js';
import type { RadioLock } from '../../firmware-sim/src/runtime/radio-lock.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LOCK_ID = 'lock-7f3a';
const dir = mkdtempSync(join(tmpdir(), 'tandem-rider-cli-'));
const socketPath = join(dir, 'radio.sock');
const radio = new VirtualRadio({
  linkLayerPayload: 27,
  connectionIntervalMs: 7.5,
  advertisingIntervalMs: 20,
  attMtuCap: 185,
  supervisionTimeoutMs: 500,
});
installVirtualHci(radio);
const bleno = loadBleno({ deviceId: 0 });
const world = tokenWorld();
let server: RadioServer | null = null;
let lock: RadioLock;
const keyPath = join(dir, 'bianca.json');
const tokenPath = join(dir, 'bianca.hex');
const expiredPath = join(dir, 'expired.hex');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tandem(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', ...args],
      { cwd: ROOT, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const ble = (verb: string, ...extra: string[]): Promise<Run> =>
  tandem(
    verb,
    LOCK_ID,
    '--key',
    keyPath,
    '--radio',
    socketPath,
    '--device-id',
    '1',
    '--timeout',
    '3s',
    ...extra,
  );

beforeAll(async () => {
  server = await serveRadio(radio, socketPath);
  lock = await startRadioLock({
    loadBleno: () => bleno,
    clock: new SystemClock(),
    lockId: LOCK_ID,
    ...issuerProvisioning(world, LOCK_ID, NOW),
  });
  const file = newKeyFile();
  await writeKeyFile(keyPath, file);
  const claims = {
    iss: 'tandem',
    sub: 'adam',
    aud: LOCK_ID,
    iat: NOW - 60,
    nbf: NOW - 60,
    exp: NOW + 86_400,
    cnf: file.key.publicKey,
    scope: ['unlock', 'lock', 'status'],
  };
  const token = mintToken(
    { ...claims, cti: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]) },
    world.issuer,
    world.kid,
  );
  writeFileSync(tokenPath, Buffer.from(token).toString('hex') + '\n');
  const expired = mintToken(
    {
      ...claims,
      cti: Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9]),
      nbf: NOW - 7200,
      iat: NOW - 7200,
      exp: NOW - 3600,
    },
    world.issuer,
    world.kid,
  );
  writeFileSync(expiredPath, Buffer.from(expired).toString('hex') + '\n');
});

afterAll(async () => {
  await lock.stop();
  await server?.close();
  radio.close();
  rmSync(dir, { recursive: true, force: true });
});

async function locked(): Promise<void> {
  if (lock.authority.snapshot().state !== 'locked') await lock.relock();
}

describe('tandem unlock / relock / status over a served virtual radio', { timeout: 120_000 }, () => {
  it('unlocks (exit 0), remembers the verified chain in the key file, and repeats in one ATT write', async () => {
    const first = await ble('unlock', '--token', tokenPath);
    expect(first.stderr).toBe('');
    expect(first.stdout).toBe(`${LOCK_ID}: unlocked, state unlocked\nstatus OK (0x00): accepted and done\n`);
    expect(first.code).toBe(0);
    expect((await readKeyFile(keyPath)).locks[LOCK_ID]?.verified).toHaveLength(1);

    await lock.relock();
    let peer = '';
    lock.peripheral.once('connect', (p) => (peer = p));
    const repeat = await ble('unlock', '--token', tokenPath, '--json');
    expect(repeat.code).toBe(0);
    expect(JSON.parse(repeat.stdout)).toMatchObject({ status: 'OK', state: 'unlocked', usedChainRef: true });
    // Counted by the lock's GATT session: the repeat request was one ATT write.
    expect(lock.peripheral.connectionStats(peer)?.writes.request).toBe(1);
  });

  it('relocks and reports the state (exit 0)', async () => {
    // The shackle sprang open at the unlock: the rider pushes it back in, then locks.
    await lock.relock();
    const relock = await ble('relock', '--token', tokenPath);
    expect(relock.stdout).toBe(`${LOCK_ID}: relocked, state locked\nstatus OK (0x00): accepted and done\n`);
    expect(relock.code).toBe(0);
    const status = await ble('status', '--token', tokenPath);
    expect(status.stdout).toBe(`${LOCK_ID}: state locked\nstatus OK (0x00): accepted and done\n`);
    expect(status.code).toBe(0);
  });

  it('prints EXPIRED with its meaning and exits 1 for an expired token, without a pulse', async () => {
    await locked();
    const pulses = lock.pulses.length;
    const r = await ble('unlock', '--token', expiredPath);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${LOCK_ID}: refused, state locked\nstatus EXPIRED (0x15): the token has expired\n`,
    );
    expect(lock.pulses.length).toBe(pulses);
  });

  it('exits 3 when the outcome is unknown: the lock pulsed, then the phone left range for good', async () => {
    await locked();
    const pulses = lock.pulses.length;
    lock.onPulse = () => {
      lock.onPulse = undefined;
      radio.setInRange(1, false);
    };
    const r = await ble('unlock', '--token', tokenPath);
    radio.setInRange(1, true);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /the outcome is unknown: the lock may have acted\. Run `tandem status lock-7f3a/,
    );
    expect(lock.pulses.length).toBe(pulses + 1);
    expect(lock.authority.snapshot().state).toBe('unlocked');
  });

  it('exits 4 when no lock carries the tag, and 2 for a usage error', async () => {
    const r = await tandem(
      'unlock',
      'lock-absent',
      '--key',
      keyPath,
      '--token',
      tokenPath,
      '--radio',
      socketPath,
      '--device-id',
      '1',
      '--timeout',
      '1s',
    );
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      /^ERR_GW_LOCK_NOT_FOUND: no lock advertising the tag of lock-absent within 1000 ms/,
    );
    const u = await tandem('unlock', LOCK_ID, '--token', tokenPath);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/missing required option --key/);
  });
});
