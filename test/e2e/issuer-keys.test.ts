/**
 * Issuer keys end to end (issue 10 part 3): the `tandem cloud` process restarts with its encrypted key and
 * refuses to start without its secret or with a wrong one; a rotation reaches a real lock over MQTT
 * (retained anchor topic under the lock's own tree, [TANDEM-MQTT-4] ACL), whose signed ack reaches the
 * bridge; after the overlap the new key signs and the old key's tokens are refused with the solenoid still.
 * Real processes for the CLI; the cloud in-process with the lock's real MQTT client for the rotation.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJwk, generateKeyPair } from '../../protocol/src/keys.js';
import { verifyRevocationUpdate } from '../../protocol/src/revocation.js';
import { Status } from '../../protocol/src/status.js';
import { mintToken } from '../../protocol/src/token.js';
import type { Cloud } from '../../cloud-bridge/src/cloud.js';
import { startCloud } from '../../cloud-bridge/src/cloud.js';
import { generateIssuerSecret } from '../../cloud-bridge/src/keyring.js';
import type { LockMqttClient } from '../../firmware-sim/src/mqtt/lock-mqtt-client.js';
import { LOCK, claims } from '../../firmware-sim/test/lock-harness.js';
import { lockMqttClient, makeCloudLock, registerLock } from './fixtures/cloud-lock.js';
import type { Lock } from '../../firmware-sim/test/lock-harness.js';
import { waitFor } from '../../firmware-sim/test/mqtt-fixture.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SECRET = generateIssuerSecret();
const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tandem-issuer-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The environment of a child process, with the keyring secret set to `secret` or removed. */
function envWith(secret: string | undefined): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TANDEM_ISSUER_SECRET;
  return secret === undefined ? env : { ...env, TANDEM_ISSUER_SECRET: secret };
}

/** Runs `tandem cloud` until it prints its start line, then stops it with SIGTERM; returns the issuer kid. */
async function startAndStop(dir: string, secret: string): Promise<string> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'cli/main.ts', 'cloud', '--data-dir', dir, '--port', '0'],
    { cwd: ROOT, env: envWith(secret), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  try {
    for (let i = 0; i < 600 && !/issuer (cloud-[0-9a-f]{8})/.test(out); i++) {
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const kid = /issuer (cloud-[0-9a-f]{8})/.exec(out)?.[1];
    if (kid === undefined) throw new Error(`tandem cloud did not start: ${out}${err}`);
    return kid;
  } finally {
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }
}

function cloudOnce(dir: string, secret: string | undefined) {
  return spawnSync(
    process.execPath,
    ['--import', 'tsx', 'cli/main.ts', 'cloud', '--data-dir', dir, '--port', '0'],
    {
      cwd: ROOT,
      env: envWith(secret),
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
}

describe('tandem cloud with its issuer key encrypted at rest', () => {
  it('restarts with the same key; a wrong or missing secret stops it with a coded error, never a new key', async () => {
    const dir = tempDir();
    const kid = await startAndStop(dir, SECRET);
    expect(await startAndStop(dir, SECRET)).toBe(kid);

    const wrong = cloudOnce(dir, generateIssuerSecret());
    expect(wrong.status).toBe(3);
    expect(wrong.stderr).toMatch(
      /^ERR_CLOUD_SECRET_WRONG: TANDEM_ISSUER_SECRET does not decrypt issuer key cloud-/m,
    );
    const missing = cloudOnce(dir, undefined);
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/^ERR_CLOUD_SECRET_MISSING: TANDEM_ISSUER_SECRET is not set/m);
  }, 120_000);

  it('a fresh data directory without the secret is refused before anything is written', () => {
    const dir = tempDir();
    const r = cloudOnce(dir, undefined);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/ERR_CLOUD_SECRET_MISSING: .*--insecure-plaintext-key/);
    expect(existsSync(join(dir, 'issuer.keyring.json'))).toBe(false);
  }, 60_000);
});

describe('tandem cloud issuer encrypt | rotate | status', () => {
  const issuerCli = (dir: string, secret: string | undefined, ...args: string[]) =>
    spawnSync(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'cloud', 'issuer', ...args, '--data-dir', dir],
      {
        cwd: ROOT,
        env: envWith(secret),
        encoding: 'utf8',
        timeout: 60_000,
      },
    );

  it('migrates a plaintext issuer.jwk.json by command, keeps its kid, then rotates on the file', () => {
    const dir = tempDir();
    const key = generateKeyPair('EdDSA');
    writeFileSync(join(dir, 'issuer.jwk.json'), JSON.stringify(exportJwk(key, 'cloud-0ld0ld00')), {
      mode: 0o600,
    });
    const noSecret = issuerCli(dir, undefined, 'encrypt');
    expect(noSecret.status).toBe(3);
    expect(noSecret.stderr).toMatch(/^ERR_CLOUD_SECRET_MISSING: TANDEM_ISSUER_SECRET is not set/m);
    const enc = issuerCli(dir, SECRET, 'encrypt');
    expect(enc.stderr).toBe('');
    expect(enc.stdout).toMatch(
      /^encrypted .*issuer\.jwk\.json into .*issuer\.keyring\.json \(kid cloud-0ld0ld00\)$/m,
    );
    expect(existsSync(join(dir, 'issuer.jwk.json'))).toBe(false);
    const rot = issuerCli(dir, SECRET, 'rotate', '--overlap', '1h');
    expect(rot.status).toBe(0);
    expect(rot.stdout).toMatch(
      /^rotated: cloud-[0-9a-f]{8} signs from the end of the overlap; no cloud is running/m,
    );
    expect(rot.stdout).toMatch(/^anchor version 1; private keys encrypted \(A256GCM\)$/m);
    expect(rot.stdout).toMatch(/^current {2}cloud-0ld0ld00 created .* retire-after /m);
    expect(rot.stdout).toMatch(/^next {5}cloud-[0-9a-f]{8} created /m);
    const again = issuerCli(dir, SECRET, 'rotate');
    expect(again.status).toBe(1); // refused (cli/README.md, "Exit codes")
    expect(again.stderr).toMatch(/^ERR_CLOUD_KEY_ROTATION: a rotation is in progress/m);
  }, 120_000);
});

describe('a key rotation reaches a lock over MQTT (TANDEM-ANCHOR-6, TANDEM-ANCHOR-7)', () => {
  const dir = tempDir();
  const PASSWORD = randomBytes(32).toString('hex');
  let cloud: Cloud;
  let lock: Lock;
  let client: LockMqttClient;
  const now = (): number => Math.floor(Date.now() / 1000);
  const token = (signer = cloud.issuer) =>
    mintToken(
      claims(lock.w, { nbf: now() - 60, iat: now() - 60, exp: now() + 3600, schedule: undefined }),
      signer.key,
      signer.kid,
    );

  beforeAll(async () => {
    cloud = await startCloud({
      dataDir: dir,
      issuerSecret: SECRET,
      mqtt: { port: 0 },
      brokerPersistence: { kind: 'memory' },
      beaconIntervalMs: 0,
      keyCheckIntervalMs: 3_600_000,
      log: () => undefined,
    });
    lock = await makeCloudLock(cloud.keyring.snapshot());
    await registerLock(cloud.store, lock, PASSWORD);
    client = lockMqttClient(lock, cloud.mqttUrl, PASSWORD, { resendAfterMs: 300 });
    await client.start();
    await waitFor(() => lock.authority.snapshot().uncertainty !== null, 'a beacon bound to the lock’s nonce');
  });

  afterAll(async () => {
    await client?.stop(200);
    await cloud?.close();
  });

  it('the new anchor lands and is acknowledged; after the overlap only the new key opens the lock', async () => {
    const old = cloud.keyring.snapshot();
    const revoked = await cloud.bridge.revoke(LOCK, randomBytes(12), now() + 3600);
    await waitFor(() => lock.stores.revocations.version >= revoked.version, 'the revocation update');

    const next = await cloud.bridge.rotateKeys(0);
    await waitFor(() => lock.anchors.version === 1, 'the anchor update over MQTT');
    await waitFor(() => cloud.bridge.anchorAcks.get(LOCK)?.version === 1, 'the signed anchor ack');
    expect(lock.anchors.list().map((a) => new TextDecoder().decode(a.kid))).toContain(next);
    // Pre-publication: the old key still signs until the overlap ends.
    expect(cloud.issuer.kidText).toBe(old.kidText);
    expect(Status[(await lock.send(lock.request({ chain: [token()] }))).status]).toBe('OK');
    await lock.relock();

    expect(await cloud.bridge.advanceKeys()).toBe(true);
    expect(cloud.issuer.kidText).toBe(next);
    await waitFor(() => lock.anchors.version === 2, 'the retirement of the old key');
    await waitFor(() => cloud.bridge.anchorAcks.get(LOCK)?.version === 2, 'the second anchor ack');
    expect(lock.anchors.issuerKey(old.kid)).toBeUndefined();
    // What stays retained was signed again by the new key, at the same version.
    const held = await cloud.store.getRevocation(LOCK);
    expect(held?.version).toBe(revoked.version);
    expect(() =>
      verifyRevocationUpdate(
        held!.bytes,
        (k) => (Buffer.from(k).toString() === next ? cloud.issuer.key.publicKey : undefined),
        LOCK,
      ),
    ).not.toThrow();

    const pulses = lock.pulses.length;
    const refused = await lock.send(lock.request({ chain: [token(old)] }));
    expect(Status[refused.status]).toBe('UNKNOWN_SIGNER');
    expect(refused.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(pulses);
    expect(Status[(await lock.send(lock.request({ chain: [token()] }))).status]).toBe('OK');
    expect(lock.pulses).toHaveLength(pulses + 1);
  });
});
