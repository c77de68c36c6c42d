/**
 * Multi-process link: one process owns the {@link VirtualRadio} (air, controllers, clock) and serves it on a
 * Unix domain socket or a 127.0.0.1 TCP port; other processes reach their controllers through it, the split
 * being at the HCI transport, like a UART or USB cable between host and controller.
 *
 * Framing (all integers big-endian): `u32 length | u8 type | body`, where `length` counts type and body.
 *
 * | type | direction | body |
 * | --- | --- | --- |
 * | 0x01 HELLO | client → server | UTF-8 JSON `{"protocol":"tandem-radio","version":1}` |
 * | 0x02 WELCOME | server → client | UTF-8 JSON `{"version":1,"devices":[ids]}` |
 * | 0x10 OPEN | client → server | `u16 devId` |
 * | 0x11 OPENED | server → client | `u16 devId, u8 status` (0 ok, 1 device driven by another link) |
 * | 0x20 HCI | both | `u16 devId, HCI packet` (packet type octet first, as on the HCI socket) |
 * | 0x30 CLOSE | client → server | `u16 devId` |
 *
 * When a client's connection ends, its devices disappear from the air: their peers see a supervision
 * timeout (Disconnection Complete 0x08), exactly as when a lock loses power.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import createDebug from 'debug';
import type { HostSink } from './air.js';
import { VirtualRadioError } from './errors.js';
import type { HciChannel, HciProvider, VirtualRadio } from './radio.js';

const debug = createDebug('tandem:radio:link');

const T = { HELLO: 0x01, WELCOME: 0x02, OPEN: 0x10, OPENED: 0x11, HCI: 0x20, CLOSE: 0x30 } as const;
const PROTOCOL = 'tandem-radio';
const VERSION = 1;
/** Largest frame accepted: an HCI ACL packet is at most 5 + 65535 octets. */
const MAX_FRAME = 70_000;

/** Where a radio is served: a Unix socket path, or a TCP port on 127.0.0.1 (0 picks a free one). */
export type RadioEndpoint = { path: string } | { port: number; host?: '127.0.0.1' };

function frame(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head.writeUInt8(type, 4);
  return Buffer.concat([head, body]);
}

function u16(devId: number, rest?: Buffer): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(devId, 0);
  return rest === undefined ? b : Buffer.concat([b, rest]);
}

/** Splits a byte stream into frames. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (type: number, body: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len < 1 || len > MAX_FRAME) {
        throw new VirtualRadioError(
          'ERR_RADIO_PROTOCOL',
          `radio link frame length ${len} outside 1..${MAX_FRAME}`,
        );
      }
      if (this.buf.length < 4 + len) return;
      const type = this.buf.readUInt8(4);
      const body = this.buf.subarray(5, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      this.onFrame(type, body);
    }
  }
}

function listenArgs(endpoint: RadioEndpoint): net.ListenOptions {
  if ('path' in endpoint) return { path: endpoint.path };
  return { port: endpoint.port, host: '127.0.0.1' };
}

/** A running radio server. */
export interface RadioServer {
  /** The endpoint clients connect to (with the actual port when 0 was asked). */
  readonly endpoint: RadioEndpoint;
  /** Stop accepting, drop every client (their devices disappear from the air). Idempotent. */
  close(): Promise<void>;
}

/**
 * Serve `radio` to other processes. Listens only on a Unix socket path or 127.0.0.1. A stale Unix socket
 * file must be removed by the caller first (use a fresh path under `os.tmpdir()`).
 */
export async function serveRadio(
  radio: VirtualRadio,
  endpoint: RadioEndpoint | string,
): Promise<RadioServer> {
  const ep: RadioEndpoint = typeof endpoint === 'string' ? { path: endpoint } : endpoint;
  const owners = new Map<number, net.Socket>();
  const clients = new Set<net.Socket>();

  const server = net.createServer((sock) => {
    clients.add(sock);
    const channels = new Map<number, HciChannel>();
    const send = (type: number, body: Buffer): void => {
      if (!sock.destroyed) sock.write(frame(type, body));
    };
    const dropDevice = (devId: number): void => {
      channels.get(devId)?.close();
      channels.delete(devId);
      if (owners.get(devId) === sock) owners.delete(devId);
      radio.removeDevice(devId);
    };
    const reader = new FrameReader((type, body) => {
      switch (type) {
        case T.HELLO: {
          const hello = JSON.parse(body.toString('utf8')) as { protocol?: string; version?: number };
          if (hello.protocol !== PROTOCOL || hello.version !== VERSION) {
            throw new VirtualRadioError(
              'ERR_RADIO_PROTOCOL',
              `radio link: unsupported hello ${body.toString('utf8')}`,
            );
          }
          send(T.WELCOME, Buffer.from(JSON.stringify({ version: VERSION, devices: radio.deviceIds() })));
          return;
        }
        case T.OPEN: {
          const devId = body.readUInt16BE(0);
          const owner = owners.get(devId);
          if (
            (owner !== undefined && owner !== sock) ||
            (owner === undefined && radio.deviceIds().includes(devId))
          ) {
            send(T.OPENED, u16(devId, Buffer.from([1])));
            return;
          }
          owners.set(devId, sock);
          if (!channels.has(devId)) {
            channels.set(
              devId,
              radio.open(devId, (packet) => send(T.HCI, u16(devId, packet))),
            );
          }
          debug('client opened hci%d', devId);
          send(T.OPENED, u16(devId, Buffer.from([0])));
          return;
        }
        case T.HCI: {
          const devId = body.readUInt16BE(0);
          channels.get(devId)?.write(Buffer.from(body.subarray(2)));
          return;
        }
        case T.CLOSE:
          dropDevice(body.readUInt16BE(0));
          return;
        default:
          throw new VirtualRadioError(
            'ERR_RADIO_PROTOCOL',
            `radio link: unknown frame type 0x${type.toString(16)}`,
          );
      }
    });
    sock.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        debug('client sent a bad frame, dropping it: %s', (err as Error).message);
        sock.destroy();
      }
    });
    sock.on('error', (err) => debug('client socket error: %s', err.message));
    sock.on('close', () => {
      clients.delete(sock);
      for (const devId of [...channels.keys()]) dropDevice(devId);
      debug('client gone');
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new VirtualRadioError(
          'ERR_RADIO_LINK',
          `cannot serve the radio on ${JSON.stringify(ep)}: ${err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(listenArgs(ep), () => resolve());
  });
  // After listening, a server error (rare: e.g. EMFILE on accept) must not crash the process.
  server.on('error', (err) => debug('radio server error: %s', err.message));
  const addr = server.address();
  const actual: RadioEndpoint = typeof addr === 'object' && addr !== null ? { port: addr.port } : ep;
  debug('serving radio on %o', actual);

  let closing: Promise<void> | null = null;
  return {
    endpoint: actual,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        for (const c of clients) c.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

/** Events of {@link RemoteRadio}. */
export interface RemoteRadioEvents {
  error: [VirtualRadioError];
  close: [];
}

/**
 * Client end of the link: an {@link HciProvider} whose controllers live in the serving process. Pass it to
 * {@link installVirtualHci}. Emits `error` (ERR_RADIO_DEVICE_IN_USE, ERR_RADIO_LINK) and `close`.
 */
export class RemoteRadio extends EventEmitter<RemoteRadioEvents> implements HciProvider {
  private readonly sock: net.Socket;
  private readonly sinks = new Map<number, HostSink>();
  private readonly refused = new Set<number>();
  private remoteDevices: number[] = [];
  private connected = true;

  /** Use {@link connectRadio}. */
  constructor(sock: net.Socket, devices: number[]) {
    super();
    this.sock = sock;
    this.remoteDevices = devices;
    sock.on('close', () => {
      this.connected = false;
      this.emit('close');
    });
  }

  /** Called by {@link connectRadio} for frames after WELCOME. */
  handleFrame(type: number, body: Buffer): void {
    if (type === T.HCI) {
      this.sinks.get(body.readUInt16BE(0))?.(Buffer.from(body.subarray(2)));
    } else if (type === T.OPENED) {
      const devId = body.readUInt16BE(0);
      if (body.readUInt8(2) !== 0) {
        this.refused.add(devId);
        this.fail(
          new VirtualRadioError(
            'ERR_RADIO_DEVICE_IN_USE',
            `hci${devId} is already driven by another process; give each stack its own device id (BLENO_HCI_DEVICE_ID / NOBLE_HCI_DEVICE_ID)`,
          ),
        );
      }
    } else {
      throw new VirtualRadioError(
        'ERR_RADIO_PROTOCOL',
        `radio link: unexpected frame type 0x${type.toString(16)}`,
      );
    }
  }

  /** Report a failure to `error` listeners (or the debug log when there are none). */
  fail(err: VirtualRadioError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else debug('%s', err.message);
  }

  open(devId: number, sink: HostSink): HciChannel {
    if (!this.connected)
      throw new VirtualRadioError('ERR_RADIO_CLOSED', 'radio link is closed; connectRadio() again');
    this.sinks.set(devId, sink);
    this.refused.delete(devId);
    this.sock.write(frame(T.OPEN, u16(devId)));
    return {
      write: (packet) => {
        if (this.connected) this.sock.write(frame(T.HCI, u16(devId, packet)));
      },
      isUp: () => this.connected && !this.refused.has(devId),
      close: () => {
        if (this.sinks.get(devId) === sink) this.sinks.delete(devId);
        if (this.connected) this.sock.write(frame(T.CLOSE, u16(devId)));
      },
    };
  }

  deviceIds(): number[] {
    return [...new Set([...this.remoteDevices, ...this.sinks.keys()])];
  }

  /** Close the link; this process's devices disappear from the air. Idempotent. */
  close(): Promise<void> {
    if (!this.connected) return Promise.resolve();
    return new Promise((resolve) => {
      this.sock.once('close', () => resolve());
      this.sock.end();
    });
  }
}

/** Connect to a radio served by {@link serveRadio} in another process. */
export function connectRadio(endpoint: RadioEndpoint | string, timeoutMs = 5000): Promise<RemoteRadio> {
  const ep: RadioEndpoint = typeof endpoint === 'string' ? { path: endpoint } : endpoint;
  return new Promise((resolve, reject) => {
    const sock =
      'path' in ep ? net.connect({ path: ep.path }) : net.connect({ port: ep.port, host: '127.0.0.1' });
    let remote: RemoteRadio | null = null;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        new VirtualRadioError(
          'ERR_RADIO_LINK',
          `no answer from the radio at ${JSON.stringify(ep)} within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    const reader = new FrameReader((type, body) => {
      if (remote !== null) {
        remote.handleFrame(type, body);
        return;
      }
      if (type !== T.WELCOME)
        throw new VirtualRadioError('ERR_RADIO_PROTOCOL', 'radio link: expected WELCOME');
      const welcome = JSON.parse(body.toString('utf8')) as { version: number; devices: number[] };
      clearTimeout(timer);
      remote = new RemoteRadio(sock, welcome.devices);
      resolve(remote);
    });
    sock.on('connect', () =>
      sock.write(frame(T.HELLO, Buffer.from(JSON.stringify({ protocol: PROTOCOL, version: VERSION })))),
    );
    sock.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        const e =
          err instanceof VirtualRadioError
            ? err
            : new VirtualRadioError('ERR_RADIO_PROTOCOL', `radio link: ${(err as Error).message}`, {
                cause: err,
              });
        if (remote === null) reject(e);
        else remote.fail(e);
        sock.destroy();
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      const e = new VirtualRadioError(
        'ERR_RADIO_LINK',
        `radio link to ${JSON.stringify(ep)} failed: ${err.message} (is serveRadio() running there?)`,
        { cause: err },
      );
      if (remote === null) reject(e);
      else remote.fail(e);
    });
  });
}
