/**
 * Serial console contract against: StreamConsole over an in-memory pair; SerialportConsole over
 * @serialport/binding-mock; PtyConsole over a real socat pseudo-terminal pair (skipped, with the reason,
 * when socat is missing); and SerialportConsole on a real UART when TANDEM_HW_SERIAL names it.
 */
import { spawnSync } from 'node:child_process';
import { Duplex, PassThrough } from 'node:stream';
import { flushMicrotasks } from '../src/clock.js';
import { PtyConsole } from '../src/serial/pty-console.js';
import { SerialportConsole, loadMockBinding, mockPortOpener } from '../src/serial/serialport-console.js';
import type { OpenedPort } from '../src/serial/serialport-console.js';
import { StreamConsole } from '../src/serial/stream-console.js';
import { serialContract } from './contract/serial-contract.js';
import type { SerialPeer } from './contract/serial-contract.js';
import type { SerialPort } from 'serialport';

const MAX = 64;

/** Resolve when `read()` contains `text`, checking after every event-loop turn. */
async function waitUntil(read: () => string, text: string): Promise<string> {
  while (!read().includes(text)) await flushMicrotasks();
  return read();
}

serialContract(
  'StreamConsole over an in-memory duplex',
  async () => {
    const toConsole = new PassThrough();
    const fromConsole = new PassThrough();
    let received = '';
    fromConsole.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    const peer: SerialPeer = {
      send: async (bytes) => {
        toConsole.write(typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
      },
      waitFor: (text) => waitUntil(() => received, text),
    };
    const stream = Duplex.from({ readable: toConsole, writable: fromConsole });
    return { console: new StreamConsole({ stream, maxLineLength: MAX }), maxLineLength: MAX, peer };
  },
  { hasPeer: true },
);

interface MockPortBindingLike {
  emitData(data: Buffer | string): void;
  readonly recording: Buffer;
}

let mockPorts = 0;
serialContract(
  'SerialportConsole over @serialport/binding-mock',
  async () => {
    const path = `/dev/ttyTANDEM${mockPorts++}`;
    // MockBinding.createPort(path, { echo, record }) on the instance serialport itself uses.
    const MockBinding = await loadMockBinding();
    MockBinding.createPort(path, { echo: false, record: true });
    let opened: OpenedPort | undefined;
    const console = new SerialportConsole({
      path,
      maxLineLength: MAX,
      openPort: async (options) => {
        opened = await mockPortOpener(options);
        return opened;
      },
    });
    const binding = (): MockPortBindingLike =>
      (opened?.stream as unknown as { port: MockPortBindingLike }).port;
    const peer: SerialPeer = {
      send: async (bytes) => {
        binding().emitData(Buffer.from(bytes));
        await flushMicrotasks();
      },
      waitFor: (text) => waitUntil(() => binding().recording.toString('utf8'), text),
    };
    return { console, maxLineLength: MAX, peer, cleanup: async () => MockBinding.reset() };
  },
  { hasPeer: true },
);

const socat = spawnSync('socat', ['-V'], { stdio: 'ignore' });
const socatMissing =
  socat.error !== undefined ? 'needs socat for a pseudo-terminal pair: sudo apt install socat' : undefined;

serialContract(
  'PtyConsole over a socat pseudo-terminal pair',
  async () => {
    const console = new PtyConsole({ maxLineLength: MAX });
    let tester: { port: SerialPort; received: string } | undefined;
    const attach = async (): Promise<NonNullable<typeof tester>> => {
      if (tester !== undefined) return tester;
      const { SerialPort: Port } = await import('serialport');
      const port = new Port({ path: console.peerPath ?? '', baudRate: 115200, autoOpen: false });
      await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
      const attached = { port, received: '' };
      port.on('data', (chunk: Buffer) => {
        attached.received += chunk.toString('utf8');
      });
      tester = attached;
      return attached;
    };
    const peer: SerialPeer = {
      send: async (bytes) => {
        const t = await attach();
        await new Promise<void>((resolve, reject) =>
          t.port.write(Buffer.from(bytes), (e) => (e ? reject(e) : t.port.drain(() => resolve()))),
        );
      },
      waitFor: async (text) => {
        const t = await attach();
        return waitUntil(() => t.received, text);
      },
    };
    const origOpen = console.open.bind(console);
    return {
      console: Object.assign(console, {
        open: async () => {
          await origOpen();
          await attach();
        },
      }),
      maxLineLength: MAX,
      peer,
      cleanup: async () => {
        const port = tester?.port;
        if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
      },
    };
  },
  { hasPeer: true, ...(socatMissing === undefined ? {} : { skip: socatMissing }) },
);

const uart = process.env.TANDEM_HW_SERIAL;
serialContract(
  `SerialportConsole on ${uart ?? '<uart>'}`,
  async () => ({
    console: new SerialportConsole({ path: uart ?? '', maxLineLength: MAX }),
    maxLineLength: MAX,
  }),
  {
    hasPeer: false,
    loopback: process.env.TANDEM_HW_SERIAL_LOOPBACK === '1',
    ...(uart === undefined
      ? {
          skip: 'needs a UART: set TANDEM_HW_SERIAL=/dev/serial0 (and TANDEM_HW_SERIAL_LOOPBACK=1 with TXD GPIO14 wired to RXD GPIO15)',
        }
      : {}),
  },
);
