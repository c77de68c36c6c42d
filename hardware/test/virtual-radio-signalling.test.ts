/**
 * The Central's side of the L2CAP LE signalling channel in the virtual radio (Bluetooth Core v5.3 Vol 3
 * Part A 4.20-4.21, Vol 6 Part B 5.1.1, Vol 4 Part E 7.7.65.3): a phone profile judges the lock's
 * Connection Parameter Update Request by its policy, answers it on CID 0x0005 and, when it accepts, the
 * connection update runs and both hosts get LE Connection Update Complete. The request never reaches the
 * phone's host.
 */
import { describe, expect, it } from 'vitest';
import {
  ANDROID,
  IPHONE,
  PESSIMISTIC_PHONE,
  PI_ZERO_W,
  VirtualClock,
  VirtualRadio,
  createHciSocketClass,
  judgeParameterRequest,
  parseParameterRequest,
} from '../src/virtual-radio/index.js';
import type {
  ControllerProfile,
  ParameterRequest,
  VirtualHciSocketApi,
  VirtualRadioOptions,
} from '../src/virtual-radio/index.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await turn();
}

function cmd(opcode: number, params: number[] | Buffer = []): Buffer {
  const p = Buffer.from(params);
  const b = Buffer.alloc(4 + p.length);
  b.writeUInt8(0x01, 0);
  b.writeUInt16LE(opcode, 1);
  b.writeUInt8(p.length, 3);
  p.copy(b, 4);
  return b;
}

function acl(handle: number, data: Buffer): Buffer {
  const b = Buffer.alloc(5 + data.length);
  b.writeUInt8(0x02, 0);
  b.writeUInt16LE(handle, 1); // PB 00: start, as both stacks send
  b.writeUInt16LE(data.length, 3);
  data.copy(b, 5);
  return b;
}

const OP = {
  SET_EVENT_MASK: 0x0c01,
  READ_LOCAL_VERSION: 0x1001,
  LE_SET_EVENT_MASK: 0x2001,
  LE_READ_BUFFER_SIZE: 0x2002,
  LE_READ_LOCAL_FEATURES: 0x2003,
  LE_SET_ADV_PARAMS: 0x2006,
  LE_SET_ADV_DATA: 0x2008,
  LE_SET_ADV_ENABLE: 0x200a,
  LE_CREATE_CONN: 0x200d,
  LE_SET_DATA_LENGTH: 0x2022,
  LE_READ_MAX_DATA_LENGTH: 0x202f,
};
const EVT_CMD_COMPLETE = 0x0e;
const LE_CONN_COMPLETE = 0x01;

interface Host {
  sock: VirtualHciSocketApi;
  packets: Buffer[];
  events(code: number): Buffer[];
  le(sub: number): Buffer[];
  acl(): Buffer[];
  /** Return parameters of the Command Complete for `opcode` (status first). */
  completed(opcode: number): Buffer | undefined;
}

function setup(profiles: Record<number, ControllerProfile>, options: VirtualRadioOptions = {}) {
  const clock = new VirtualClock();
  const radio = new VirtualRadio({ clock, profiles, ...options });
  const Socket = createHciSocketClass(radio);
  const host = (devId: number): Host => {
    const sock = new Socket();
    const packets: Buffer[] = [];
    sock.on('data', (p: Buffer) => packets.push(p));
    sock.bindRaw(devId);
    sock.start();
    sock.write(cmd(OP.SET_EVENT_MASK, Buffer.from('fffffbff07f8bf3d', 'hex')));
    // LE events 1-7: Data Length Change (bit 6) too, which bleno and noble leave masked.
    sock.write(cmd(OP.LE_SET_EVENT_MASK, Buffer.from('7f00000000000000', 'hex')));
    const events = (code: number): Buffer[] => packets.filter((p) => p[0] === 0x04 && p[1] === code);
    return {
      sock,
      packets,
      events,
      le: (sub) => packets.filter((p) => p[0] === 0x04 && p[1] === 0x3e && p[3] === sub),
      acl: () => packets.filter((p) => p[0] === 0x02),
      completed: (opcode) =>
        events(EVT_CMD_COMPLETE)
          .filter((p) => p.readUInt16LE(4) === opcode)
          .at(-1)
          ?.subarray(6),
    };
  };
  return { radio, clock, host };
}

/** Lock (hci0) advertising, phone (hci1) connecting with a host that asks for 50 ms. */
async function connect(ctx: ReturnType<typeof setup>) {
  const lock = ctx.host(0);
  const phone = ctx.host(1);
  lock.sock.write(cmd(OP.LE_SET_ADV_PARAMS, [0xa0, 0, 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0]));
  lock.sock.write(cmd(OP.LE_SET_ADV_DATA, Buffer.concat([Buffer.from([3, 2, 1, 6]), Buffer.alloc(28)])));
  lock.sock.write(cmd(OP.LE_SET_ADV_ENABLE, [1]));
  const create = Buffer.alloc(25);
  create.writeUInt16LE(0x60, 0);
  create.writeUInt16LE(0x30, 2);
  Buffer.from(ctx.radio.addressOf(0).split(':').reverse().join(''), 'hex').copy(create, 6);
  create.writeUInt16LE(24, 13);
  create.writeUInt16LE(40, 15); // max interval 50 ms
  create.writeUInt16LE(0, 17);
  create.writeUInt16LE(200, 19); // 2 s
  phone.sock.write(cmd(OP.LE_CREATE_CONN, create));
  await turns();
  await ctx.clock.advanceAsync(300);
  const lc = lock.le(LE_CONN_COMPLETE)[0]!;
  const pc = phone.le(LE_CONN_COMPLETE)[0]!;
  return { lock, phone, lockHandle: lc.readUInt16LE(5), phoneHandle: pc.readUInt16LE(5) };
}

const LE_CONN_UPDATE_COMPLETE = 0x03;

/** The lock's request as an L2CAP frame on CID 5: min/max in 1.25 ms units, timeout in 10 ms units. */
function paramRequest(id: number, min: number, max: number, latency: number, timeout: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(12, 0);
  b.writeUInt16LE(0x0005, 2);
  b[4] = 0x12;
  b[5] = id;
  b.writeUInt16LE(8, 6);
  b.writeUInt16LE(min, 8);
  b.writeUInt16LE(max, 10);
  b.writeUInt16LE(latency, 12);
  b.writeUInt16LE(timeout, 14);
  return b;
}

/** Signalling frames (CID 5) among a host's ACL packets: [code, identifier, result]. */
function signals(host: Host): [number, number, number][] {
  return host
    .acl()
    .map((p) => p.subarray(5))
    .filter((l2cap) => l2cap.readUInt16LE(2) === 0x0005)
    .map((l2cap) => [l2cap[4]!, l2cap[5]!, l2cap.readUInt16LE(8)]);
}

const request = (over: Partial<ParameterRequest> = {}): ParameterRequest => ({
  identifier: 200,
  minIntervalMs: 15,
  maxIntervalMs: 30,
  latency: 0,
  supervisionTimeoutMs: 2000,
  ...over,
});

describe('phone policies for Connection Parameter Update Requests', () => {
  it("iPhone: Apple's rules; a 15-30 ms request gets 15 ms", () => {
    const apple = IPHONE.parameterUpdates!;
    expect(judgeParameterRequest(apple, request())).toEqual({ accepted: true, intervalMs: 15 });
    expect(judgeParameterRequest(apple, request({ minIntervalMs: 15, maxIntervalMs: 15 }))).toEqual({
      accepted: true,
      intervalMs: 15,
    });
    for (const [over, why] of [
      [{ minIntervalMs: 7.5 }, /multiple of 15/],
      [{ minIntervalMs: 20, maxIntervalMs: 40 }, /multiple of 15/],
      [{ minIntervalMs: 15, maxIntervalMs: 25 }, /below min \+ 15/],
      [{ supervisionTimeoutMs: 1000 }, /outside 2-6 s/],
      [{ latency: 31 }, /latency 31 > 30/],
      [{ minIntervalMs: 600, maxIntervalMs: 1200, latency: 1, supervisionTimeoutMs: 6000 }, /> 2 s/],
    ] as const) {
      const verdict = judgeParameterRequest(apple, request(over));
      expect(verdict.accepted).toBe(false);
      expect(verdict.accepted ? '' : verdict.reason).toMatch(why);
    }
  });

  it('Android: anything the Core spec allows, from 7.5 ms; the pessimistic phone rejects everything', () => {
    const android = ANDROID.parameterUpdates!;
    expect(
      judgeParameterRequest(
        android,
        request({ minIntervalMs: 7.5, maxIntervalMs: 10, supervisionTimeoutMs: 500 }),
      ),
    ).toEqual({ accepted: true, intervalMs: 7.5 });
    const tooShortTimeout = judgeParameterRequest(
      android,
      request({ minIntervalMs: 100, maxIntervalMs: 200, supervisionTimeoutMs: 400 }),
    );
    expect(tooShortTimeout.accepted).toBe(false);
    expect(judgeParameterRequest(PESSIMISTIC_PHONE.parameterUpdates!, request()).accepted).toBe(false);
  });

  it('parses only a well-formed request', () => {
    const frame = paramRequest(201, 12, 24, 0, 200).subarray(4);
    expect(parseParameterRequest(frame)).toEqual(request({ identifier: 201 }));
    expect(parseParameterRequest(frame.subarray(0, 11))).toBeNull();
    const badLength = Buffer.from(frame);
    badLength.writeUInt16LE(7, 2);
    expect(parseParameterRequest(badLength)).toBeNull();
  });
});

describe('the phone answers on the LE signalling channel and the connection update runs', () => {
  it('iPhone accepts 15-30 ms: Response 0x0000 to the lock, the update at its instant, 15 ms from then on', async () => {
    const ctx = setup({ 0: PI_ZERO_W, 1: IPHONE });
    const { lock, phone, lockHandle, phoneHandle } = await connect(ctx);
    expect(ctx.radio.connections()[0]!.intervalMs).toBe(30);
    lock.sock.write(acl(lockHandle, paramRequest(200, 12, 24, 0, 200)));
    await ctx.clock.advanceAsync(100);
    expect(signals(lock)).toEqual([[0x13, 200, 0x0000]]);
    // The phone's OS took it: nothing of CID 5 reached the phone's host.
    expect(signals(phone)).toEqual([]);
    // The instant is at least 6 events ahead (Vol 6 Part B 5.1.1): not yet in force.
    expect(lock.le(LE_CONN_UPDATE_COMPLETE)).toHaveLength(0);
    await ctx.clock.advanceAsync(300);
    for (const [host, handle] of [
      [lock, lockHandle],
      [phone, phoneHandle],
    ] as const) {
      const done = host.le(LE_CONN_UPDATE_COMPLETE);
      expect(done).toHaveLength(1);
      expect(done[0]![4]).toBe(0x00); // status
      expect(done[0]!.readUInt16LE(5)).toBe(handle);
      expect(done[0]!.readUInt16LE(7)).toBe(12); // 15 ms
      expect(done[0]!.readUInt16LE(11)).toBe(200); // 2 s
    }
    const info = ctx.radio.connections()[0]!;
    expect(info.intervalMs).toBe(15);
    expect([info.parameterRequests, info.parameterRequestsAccepted]).toEqual([1, 1]);
  });

  it('an out-of-range request is rejected (Response 0x0001) and the connection keeps its interval', async () => {
    for (const profile of [IPHONE, PESSIMISTIC_PHONE]) {
      const ctx = setup({ 0: PI_ZERO_W, 1: profile });
      const { lock, phone, lockHandle } = await connect(ctx);
      // 10-30 ms: below iOS's 15 ms (and the pessimistic phone rejects anything).
      lock.sock.write(acl(lockHandle, paramRequest(210, 8, 24, 0, 200)));
      await ctx.clock.advanceAsync(600);
      expect(signals(lock)).toEqual([[0x13, 210, 0x0001]]);
      expect(lock.le(LE_CONN_UPDATE_COMPLETE)).toHaveLength(0);
      expect(phone.le(LE_CONN_UPDATE_COMPLETE)).toHaveLength(0);
      const info = ctx.radio.connections()[0]!;
      expect(info.intervalMs).toBe(30);
      expect([info.parameterRequests, info.parameterRequestsAccepted]).toEqual([1, 0]);
    }
  });

  it('answers a signalling command it does not understand with Command Reject', async () => {
    const ctx = setup({ 0: PI_ZERO_W, 1: IPHONE });
    const { lock, lockHandle } = await connect(ctx);
    const echo = Buffer.from([6, 0, 5, 0, 0x08, 77, 2, 0, 0xaa, 0xbb]); // Echo Request: BR/EDR only
    lock.sock.write(acl(lockHandle, echo));
    await ctx.clock.advanceAsync(100);
    expect(signals(lock)).toEqual([[0x01, 77, 0x0000]]);
    expect(ctx.radio.connections()[0]!.parameterRequests).toBe(0);
  });

  it('a phone without a policy leaves the request to its host, as before', async () => {
    const plain: ControllerProfile = { ...IPHONE, name: 'plain' };
    delete (plain as { parameterUpdates?: unknown }).parameterUpdates;
    const ctx = setup({ 0: PI_ZERO_W, 1: plain });
    const { lock, phone, lockHandle } = await connect(ctx);
    lock.sock.write(acl(lockHandle, paramRequest(200, 12, 24, 0, 200)));
    await ctx.clock.advanceAsync(100);
    expect(signals(phone)).toEqual([[0x12, 200, 12]]);
    expect(signals(lock)).toEqual([]);
  });
});

describe('a phone policy is checked like every profile field', () => {
  it('refuses an unknown rule set or an interval outside the Core range (ERR_RADIO_INVALID_OPTION)', () => {
    const bad = (parameterUpdates: unknown): ControllerProfile =>
      ({ ...IPHONE, parameterUpdates }) as ControllerProfile;
    expect(
      () =>
        new VirtualRadio({
          clock: new VirtualClock(),
          profiles: { 1: bad({ rules: 'any', minIntervalMs: 15 }) },
        }),
    ).toThrow('"profiles[1].parameterUpdates.rules" must be apple, core or reject, got any');
    expect(
      () =>
        new VirtualRadio({
          clock: new VirtualClock(),
          profiles: { 1: bad({ rules: 'core', minIntervalMs: 5 }) },
        }),
    ).toThrow('"profiles[1].parameterUpdates.minIntervalMs" must be a number in [7.5, 4000], got 5');
  });
});
