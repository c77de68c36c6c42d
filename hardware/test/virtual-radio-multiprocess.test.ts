/**
 * Two processes meet on one virtual radio: this process serves the radio on a Unix socket in os.tmpdir()
 * and runs noble; a child process (node --import tsx) runs the bleno lock through connectRadio().
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  VirtualRadio,
  connectRadio,
  createNoble,
  installVirtualHci,
  serveRadio,
} from '../src/virtual-radio/index.js';
import type { RadioServer } from '../src/virtual-radio/index.js';
import { collectNotifications, findLock, openLock, testValue, within } from './virtual-radio-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-radio-'));
const socketPath = join(dir, 'radio.sock');
// Real time across processes; short intervals keep the run quick.
const radio = new VirtualRadio({
  linkLayerPayload: 27,
  connectionIntervalMs: 7.5,
  attMtuCap: 185,
  advertisingIntervalMs: 20,
});
installVirtualHci(radio);
const noble = createNoble({ deviceId: 1 });
let server: RadioServer | null = null;
let child: ChildProcess | null = null;

function startChild(): { child: ChildProcess; lines: string[]; line: (prefix: string) => Promise<string> } {
  const script = fileURLToPath(new URL('./virtual-radio-child-lock.ts', import.meta.url));
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  const proc = spawn(process.execPath, ['--import', 'tsx', script, socketPath], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: Array<{ prefix: string; resolve: (l: string) => void }> = [];
  let buf = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(l);
      for (const w of waiters.splice(0)) {
        if (l.startsWith(w.prefix)) w.resolve(l);
        else waiters.push(w);
      }
    }
  });
  proc.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const line = (prefix: string): Promise<string> => {
    const seen = lines.find((l) => l.startsWith(prefix));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => waiters.push({ prefix, resolve }));
  };
  return { child: proc, lines, line };
}

beforeAll(async () => {
  server = await serveRadio(radio, socketPath);
});

afterAll(async () => {
  if (child !== null && child.exitCode === null) child.kill('SIGKILL');
  await server?.close();
  radio.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('virtual radio across processes', () => {
  it('refuses a second process on a device id another link drives', async () => {
    const a = await connectRadio(socketPath);
    const b = await connectRadio(socketPath);
    const refused = once(b, 'error');
    const chA = a.open(7, () => undefined);
    const chB = b.open(7, () => undefined);
    const [err] = (await within('refusal', 5000, refused)) as [{ code: string }];
    expect(err.code).toBe('ERR_RADIO_DEVICE_IN_USE');
    expect(chA.isUp()).toBe(true);
    expect(chB.isUp()).toBe(false);
    await a.close();
    await b.close();
  });

  it('connects noble here to a bleno lock in a child process, transfers 300 bytes, and sees it vanish', async () => {
    const started = startChild();
    child = started.child;
    const ready = await within('child lock ready', 20_000, started.line('ready '));
    expect(ready).toBe(`ready ${radio.addressOf(0)}`);

    const peripheral = await within('discovery', 10_000, findLock(noble));
    expect(peripheral.address).toBe(radio.addressOf(0));
    const data = await within('connect', 10_000, openLock(peripheral));
    expect(peripheral.mtu).toBe(185);
    await within('child accept', 10_000, started.line(`accept ${radio.addressOf(1)}`));

    const value = testValue(300, 9);
    await within('subscribe', 10_000, data.subscribeAsync());
    const notified = collectNotifications(data, value.length);
    await within('write', 10_000, data.writeAsync(value, false));
    expect(await within('notify', 10_000, notified)).toEqual(value);
    expect(await within('read', 10_000, data.readAsync())).toEqual(value);

    // The lock process dies: its controller leaves the air, noble sees a supervision timeout.
    const gone = once(peripheral, 'disconnect') as Promise<[number]>;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    const [reason] = await within('supervision timeout', 10_000, gone);
    expect(reason).toBe(0x08);
    const info = radio.connections().at(-1)!;
    expect(info.disconnectReason).toBe(0x08);
  });
});
