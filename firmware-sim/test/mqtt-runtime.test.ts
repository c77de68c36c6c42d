// The MQTT link as configured and provisioned on a lock: the config file's mqtt section checked field by
// field, the password made on the lock (mode 0600) and shown once on the console ([TANDEM-MQTT-13]), and the
// assembled runtime connecting with it to a broker that checks it.
import { mkdtempSync, rmSync, statSync, chmodSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { StreamConsole } from '../../hardware/src/serial/stream-console.js';
import { DEFAULT_CONFIG, parseLockFileConfig } from '../src/config/lock-config.js';
import type { LockFileConfig } from '../src/config/lock-config.js';
import { loadOrCreateMqttPassword, readMqttPassword } from '../src/mqtt/credentials.js';
import { simulatedHardware } from '../src/runtime/hardware.js';
import { LockRuntime } from '../src/runtime/lock-runtime.js';
import { world } from '../../protocol/test/fixtures.js';
import { TestBroker, waitFor } from './mqtt-fixture.js';

const dirs: string[] = [];
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tandem-mqtt-'));
  dirs.push(d);
  return d;
}

describe('mqtt config section', () => {
  it('fills in the defaults and is absent unless given', () => {
    expect(parseLockFileConfig({}).mqtt).toBeUndefined();
    expect(parseLockFileConfig({ mqtt: { url: 'mqtts://broker.example:8883' } }).mqtt).toEqual({
      url: 'mqtts://broker.example:8883',
      uncertaintyBoundS: 60,
      reconnectInitialMs: 1000,
      reconnectMaxMs: 300_000,
      keepaliveS: 60,
    });
    for (const url of ['mqtt://10.0.0.2', 'ws://broker:8080/mqtt', 'wss://broker.example/mqtt']) {
      expect(parseLockFileConfig({ mqtt: { url } }).mqtt?.url).toBe(url);
    }
  });

  it.each([
    ['no url', { keepaliveS: 30 }, /"mqtt.url" is required/],
    [
      'another scheme',
      { url: 'http://broker' },
      /"mqtt.url" must use mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\//,
    ],
    ['not a URL', { url: 'broker:1883 x' }, /"mqtt.url" must use|"mqtt.url" must be a URL/],
    ['credentials in the URL', { url: 'mqtt://lock:secret@broker' }, /"mqtt.url" must not hold credentials/],
    ['an unknown key', { url: 'mqtt://b', password: 'x' }, /"mqtt.password" is not a known setting/],
    [
      'TLS files without TLS',
      { url: 'mqtt://b', caFile: '/etc/ca.pem' },
      /"mqtt.caFile" only applies to mqtts/,
    ],
    [
      'a certificate without its key',
      { url: 'mqtts://b', certFile: '/c.pem' },
      /"mqtt.keyFile" must be given/,
    ],
    [
      'a backoff upside down',
      { url: 'mqtt://b', reconnectInitialMs: 5000, reconnectMaxMs: 1000 },
      /"mqtt.reconnectMaxMs" \(1000\) must not be below/,
    ],
    [
      'a zero bound',
      { url: 'mqtt://b', uncertaintyBoundS: 0 },
      /"mqtt.uncertaintyBoundS" must be an integer from 1 to 86400/,
    ],
    ['a list', [], /"mqtt" must be an object/],
  ])('refuses %s with ERR_CONFIG_INVALID naming the field', (_, mqtt, message) => {
    let error: unknown;
    try {
      parseLockFileConfig({ mqtt });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'ERR_CONFIG_INVALID' });
    expect((error as Error).message).toMatch(message);
  });
});

describe('MQTT password file', () => {
  it('is 32 random bytes in hex, mode 0600, made once and then read back', async () => {
    const path = join(tempDir(), 'mqtt-password');
    const password = await loadOrCreateMqttPassword(path);
    expect(password).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateMqttPassword(path)).toBe(password);
    expect(await readMqttPassword(join(tempDir(), 'none'))).toBeUndefined();
  });

  it('refuses a file others can read, or one that is not 64 hex digits', async () => {
    const path = join(tempDir(), 'mqtt-password');
    await loadOrCreateMqttPassword(path);
    chmodSync(path, 0o644);
    await expect(readMqttPassword(path)).rejects.toMatchObject({
      code: 'ERR_MQTT_CREDENTIALS',
      message: expect.stringMatching(/readable by others \(mode 644\): run chmod 600/),
    });
    writeFileSync(path, 'hunter2\n', { mode: 0o600 });
    chmodSync(path, 0o600);
    await expect(loadOrCreateMqttPassword(path)).rejects.toMatchObject({
      code: 'ERR_MQTT_CREDENTIALS',
      message: expect.stringMatching(/must hold 64 hex digits/),
    });
  });
});

describe('LockRuntime with an mqtt section', () => {
  it('connects as its lock id with its own password once provisioned, and shows the password once', async () => {
    const seen: { username?: string; password?: string }[] = [];
    let expected = '';
    const broker = await TestBroker.start(0, {
      authenticate: (_client, username, password, done) => {
        seen.push({ username: username ?? '', password: password?.toString() ?? '' });
        done(null, username === 'lock-7f3a' && password?.toString() === expected);
      },
    });
    cleanup.push(() => broker.kill());
    const dataDir = tempDir();
    const config: LockFileConfig = {
      ...DEFAULT_CONFIG,
      dataDir,
      mqtt: parseLockFileConfig({ mqtt: { url: broker.url } }).mqtt!,
    };
    const clock = new ManualClock(0);
    const input = new PassThrough();
    const output = new PassThrough();
    const lines: string[] = [];
    output.on('data', (d: Buffer) =>
      lines.push(
        ...d
          .toString()
          .split('\r\n')
          .filter((l) => l.length > 0),
      ),
    );
    const runtime = await LockRuntime.open({
      config,
      hardware: simulatedHardware(clock, config.hardware),
      clock,
      console: new StreamConsole({ stream: Duplex.from({ readable: input, writable: output }) }),
      simulated: true,
    });
    cleanup.push(() => runtime.close());
    const say = async (line: string) => {
      const before = lines.length;
      input.write(line + '\n');
      await waitFor(() => lines.length > before, `an answer to ${line}`);
      return lines.slice(before).join('\n');
    };
    expect(await say('status')).toMatch(/mqtt=off/);
    const shown = await say('mqtt password');
    const [, password] = /^OK username=- password=([0-9a-f]{64})$/.exec(shown)!;
    expected = password!;
    expect(statSync(join(dataDir, 'mqtt-password')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dataDir, 'mqtt-password'), 'utf8').trim()).toBe(password);
    expect(await say('mqtt password')).toMatch(
      /^ERR ERR_CONSOLE_CLOSED the MQTT password was shown once already/,
    );

    const w = world();
    await say('provision lock-id lock-7f3a');
    await say(
      `provision anchor add 01 EdDSA ${Buffer.from(w.issuer.publicKey.raw).toString('hex')} issuer tandem`,
    );
    await waitFor(() => runtime.mqtt?.status().link === 'up', 'the link');
    expect(seen.at(-1)).toEqual({ username: 'lock-7f3a', password });
    expect(await say('status')).toMatch(/mqtt=up/);
    expect(await say('mqtt')).toMatch(
      /^OK mqtt=up url=mqtt:\/\/127\.0\.0\.1:\d+ username=lock-7f3a attempt=0 connects=1/,
    );
    expect(await say('provision show')).toMatch(/mqtt=mqtt:\/\/127\.0\.0\.1:\d+ username=lock-7f3a/);

    // The simulated fuel gauge ([TANDEM-MQTT-14]): no reading until a tester sets one; then the status shows it.
    expect(await say('status')).toMatch(/battery=none/);
    expect(await say('sim battery 64')).toBe('OK battery=64');
    expect(runtime.battery?.level).toBe(64);
    expect(await say('status')).toMatch(/battery=64/);
    expect(await say('sim battery 101')).toMatch(/^ERR ERR_CONSOLE_USAGE percent 101 is above 100/);
    expect(await say('sim battery -1')).toMatch(
      /^ERR ERR_CONSOLE_USAGE <percent> must be an integer from 0 to 100/,
    );
    expect(runtime.battery?.level).toBe(64);
  });

  it('a broker that refuses the credentials leaves the link down with the reason on the console', async () => {
    const broker = await TestBroker.start(0, { authenticate: (_c, _u, _p, done) => done(null, false) });
    cleanup.push(() => broker.kill());
    const dataDir = tempDir();
    const config: LockFileConfig = {
      ...DEFAULT_CONFIG,
      dataDir,
      mqtt: parseLockFileConfig({ mqtt: { url: broker.url } }).mqtt!,
    };
    const clock = new ManualClock(0);
    const runtime = await LockRuntime.open({
      config,
      hardware: simulatedHardware(clock, config.hardware),
      clock,
      simulated: true,
    });
    cleanup.push(() => runtime.close());
    const w = world();
    await runtime.stores.config.set('identity.lockId', 'lock-7f3a');
    await runtime.anchors.add({
      kid: Uint8Array.of(1),
      alg: 'EdDSA',
      key: w.issuer.publicKey.raw,
      role: 'issuer',
      name: 'tandem',
    });
    await runtime.reload();
    await waitFor(() => runtime.mqtt?.status().attempt === 1, 'a refused connection');
    expect(runtime.status()).toMatchObject({ mqtt: 'down' });
    expect(String(runtime.status().mqttError)).toMatch(/Not authorized|Bad username or password/i);
  });
});
