/**
 * A whole fleet dropping at once (a cellular outage) does not take the embedded broker down
 * ([TANDEM-MQTT-17], broker.ts `concurrency`).
 *
 * With aedes' default cap of 100 messages in delivery, mqemitter 7 queues what arrives beyond it and starts
 * each queued message from inside the completion of the one before; messages that complete synchronously
 * (a will nobody subscribes to, the `$SYS/.../disconnect/clients` notice of every closing connection)
 * recurse one level deeper each. The bench's cloud process crashed that way ("Maximum call stack size
 * exceeded", mqemitter `_do` -> `released` -> `parallel` -> `_do`) when 10,000 lock connections closed.
 *
 * What made the 100 deliveries in flight there was load (wills waiting on LevelDB); here it is made
 * deterministic: one lock stops reading its socket while the broker sends it large messages, so those
 * deliveries wait for a `drain` that comes only when it reads again. While they wait, 4,000 lock
 * connections with wills close together; then the slow lock reads again. Without the fix the 8,000
 * messages queued behind the waiting deliveries unwind in one recursion and overflow the stack (a plain
 * mqemitter overflows at 3,000 queued on Node 20); with it nothing is queued.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startBroker } from '../src/broker.js';
import type { Broker } from '../src/broker.js';
import { generatePassword, hashPassword } from '../src/credentials.js';
import { until } from './fake-lock.js';

const LOCKS = 4_000;
/** Messages sent to the slow lock: enough to fill the loopback socket buffers and leave more than 100 waiting. */
const SLOW_MESSAGES = 240;
const SLOW_PAYLOAD = Buffer.alloc(128 * 1024, 0x5a);

const sockets: Socket[] = [];
let broker: Broker | undefined;
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await broker?.close();
});

/** An MQTT string or binary field: two-byte length, then the bytes (MQTT 3.1.1 §1.5.3). */
function field(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A control packet: fixed header with the variable-length remaining length (§2.2.3). */
function packet(firstByte: number, body: Buffer): Buffer {
  const length: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([firstByte, ...length]), body]);
}

/** CONNECT, MQTT 3.1.1, clean session, user name and password, and the lock client's will (§3.1). */
function connectPacket(lockId: string, password: string): Buffer {
  // user name, password, will retain, will QoS 1, will flag, clean session
  const flags = 0x80 | 0x40 | 0x20 | (1 << 3) | 0x04 | 0x02;
  return packet(
    0x10,
    Buffer.concat([
      field('MQTT'),
      Buffer.from([4, flags, 0, 60]),
      field(lockId),
      field(`tandem/v1/lock/${lockId}/state`),
      field(Buffer.alloc(0)),
      field(lockId),
      field(password),
    ]),
  );
}

/** SUBSCRIBE with packet id 1, one filter at QoS 0 (§3.8). */
function subscribePacket(filter: string): Buffer {
  return packet(0x82, Buffer.concat([Buffer.from([0, 1]), field(filter), Buffer.from([0])]));
}

/** Opens a connection as `lockId` and resolves once the broker has accepted it (CONNACK 0). */
function connectLock(port: number, lockId: string, password: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    s.once('error', reject);
    s.once('data', (b) => {
      // CONNACK: 0x20, remaining length 2, flags, return code
      if (b[0] === 0x20 && b[3] === 0) resolve(s);
      else reject(new Error(`${lockId}: no CONNACK 0 (${b.toString('hex')})`));
    });
    s.write(connectPacket(lockId, password));
  });
}

describe('the embedded broker when a fleet drops at once', () => {
  it('survives 4,000 lock connections with wills closing together while 100+ deliveries wait', async () => {
    const password = generatePassword();
    const record = hashPassword(password);
    broker = await startBroker({
      passwordRecord: () => Promise.resolve(record),
      persistence: { kind: 'memory' },
      tcp: { port: 0, host: '127.0.0.1' },
      log: () => undefined,
    });
    const aedes = broker.aedes;
    // aedes keeps its connected clients by id (not in its type declarations).
    const clients = (aedes as unknown as { clients: Record<string, { conn: Socket }> }).clients;
    const port = broker.ports.tcp!;
    let crashed: unknown;
    const onCrash = (e: unknown): void => {
      crashed = e;
    };
    process.on('uncaughtException', onCrash);
    try {
      const fleet: Socket[] = [];
      for (let base = 0; base < LOCKS; base += 250) {
        const batch = Array.from({ length: Math.min(250, LOCKS - base) }, (_, i) => `lock-${base + i}`);
        fleet.push(...(await Promise.all(batch.map((id) => connectLock(port, id, password)))));
      }

      // The slow lock: subscribes its revocation topic, then stops reading its socket.
      const slow = await connectLock(port, 'lock-slow', password);
      const subscribed = new Promise<void>((resolve) => slow.once('data', () => resolve()));
      slow.write(subscribePacket('tandem/v1/lock/lock-slow/revocation'));
      await subscribed;
      let slowBytes = 0;
      slow.on('data', (b: Buffer) => (slowBytes += b.length));
      slow.pause();
      let delivered = 0;
      for (let i = 0; i < SLOW_MESSAGES; i++) {
        aedes.publish(
          {
            cmd: 'publish',
            topic: 'tandem/v1/lock/lock-slow/revocation',
            payload: SLOW_PAYLOAD,
            qos: 0,
            retain: false,
            dup: false,
          },
          () => delivered++,
        );
      }
      // The broker's side of the slow lock's connection is full: its deliveries wait for `drain`.
      const slowConn = (aedes as unknown as { clients: Record<string, { conn: Socket }> }).clients[
        'lock-slow'
      ]!.conn;
      await until(
        () => slowConn.writableNeedDrain && delivered < SLOW_MESSAGES - 100,
        'the slow lock to block',
      );

      // The fleet drops: 4,000 connections close at once and the broker publishes 4,000 wills.
      for (const s of fleet) s.destroy();
      await until(() => Object.keys(clients).length === 1, 'the broker to see every close', 1_500);
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));

      // The slow lock reads again: the waiting deliveries complete and whatever queued behind them runs.
      slow.resume();
      await until(
        () => crashed !== undefined || delivered === SLOW_MESSAGES,
        'every message to reach the slow lock',
        1_500,
      );
      expect(crashed).toBeUndefined();
      expect(delivered).toBe(SLOW_MESSAGES);
      await until(
        () => slowBytes > SLOW_MESSAGES * SLOW_PAYLOAD.length,
        'the slow lock to read every message',
        1_500,
      );

      // The broker still works: a lock connects, and the broker sees it go.
      const late = await connectLock(port, 'lock-late', password);
      late.destroy();
      await until(() => clients['lock-late'] === undefined, 'the late lock to be gone');
      expect(crashed).toBeUndefined();
    } finally {
      process.off('uncaughtException', onCrash);
    }
  }, 180_000);
});
