/**
 * Named radio profiles at the HCI level (Bluetooth Core v5.3): per-device version and features, Data
 * Length Extension negotiated as a real controller does (Vol 6 Part B 5.1.9, Vol 4 Part E 7.8.33 and
 * 7.7.65.7), PDUs per connection event (More Data, Vol 6 Part B 4.5.6), the phone's own interval and ATT
 * MTU, LE ACL buffer credits enforced (Vol 4 Part E 4.1.1, 7.7.26), and ATT PDUs reported as they cross.
 */
import { describe, expect, it } from 'vitest';
import {
  ANDROID,
  IPHONE,
  PESSIMISTIC_PHONE,
  PI_ZERO_2_W,
  PI_ZERO_W,
  RADIO_PROFILES,
  VirtualClock,
  VirtualRadio,
  VirtualRadioError,
  createHciSocketClass,
} from '../src/virtual-radio/index.js';
import type {
  AttOnAir,
  ControllerProfile,
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

/** An L2CAP PDU on the ATT channel (CID 4) with `n` payload octets. */
function att(n: number, opcode = 0x52): Buffer {
  const b = Buffer.alloc(4 + n);
  b.writeUInt16LE(n, 0);
  b.writeUInt16LE(0x0004, 2);
  b[4] = opcode;
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
const EVT_NUM_COMPLETED = 0x13;
const EVT_DATA_BUFFER_OVERFLOW = 0x1a;
const LE_CONN_COMPLETE = 0x01;
const LE_DATA_LENGTH_CHANGE = 0x07;

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

describe('radio profiles: what each controller reports', () => {
  it('names every profile, each with its sources', () => {
    expect(Object.keys(RADIO_PROFILES).sort()).toEqual([
      'android',
      'iphone',
      'iphone-15ms',
      'pessimistic',
      'pi-zero-2-w',
      'pi-zero-w',
    ]);
    for (const p of Object.values(RADIO_PROFILES)) expect(p.sources.length).toBeGreaterThan(0);
  });

  it('a Pi Zero W reports Core 4.1 without Data Length Extension; its 4.2 commands are unknown', async () => {
    const { host } = setup({ 0: PI_ZERO_W });
    const lock = host(0);
    lock.sock.write(cmd(OP.READ_LOCAL_VERSION));
    lock.sock.write(cmd(OP.LE_READ_LOCAL_FEATURES));
    lock.sock.write(cmd(OP.LE_SET_DATA_LENGTH, [0x40, 0, 251, 0, 0x48, 0x08]));
    lock.sock.write(cmd(OP.LE_READ_BUFFER_SIZE));
    await turns();
    expect(lock.completed(OP.READ_LOCAL_VERSION)![1]).toBe(0x07);
    expect(lock.completed(OP.LE_READ_LOCAL_FEATURES)![1]! & (1 << 5)).toBe(0);
    expect(lock.completed(OP.LE_SET_DATA_LENGTH)![0]).toBe(0x01); // Unknown HCI Command
    const buffers = lock.completed(OP.LE_READ_BUFFER_SIZE)!;
    expect([buffers.readUInt16LE(1), buffers[3]]).toEqual([1021, 8]);
  });

  it('a Pi Zero 2 W reports Core 4.2 with Data Length Extension up to 251 octets', async () => {
    const { host } = setup({ 0: PI_ZERO_2_W });
    const lock = host(0);
    lock.sock.write(cmd(OP.READ_LOCAL_VERSION));
    lock.sock.write(cmd(OP.LE_READ_LOCAL_FEATURES));
    lock.sock.write(cmd(OP.LE_READ_MAX_DATA_LENGTH));
    await turns();
    expect(lock.completed(OP.READ_LOCAL_VERSION)![1]).toBe(0x08);
    expect(lock.completed(OP.LE_READ_LOCAL_FEATURES)![1]! & (1 << 5)).toBe(1 << 5);
    const max = lock.completed(OP.LE_READ_MAX_DATA_LENGTH)!;
    expect([max[0], max.readUInt16LE(1), max.readUInt16LE(3)]).toEqual([0, 251, 2120]);
  });

  it('refuses a profile outside its documented range, naming the field', () => {
    const bad = { ...PI_ZERO_2_W, maxDataOctets: 252 };
    let error: unknown;
    try {
      new VirtualRadio({ clock: new VirtualClock(), profiles: { 0: bad } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(VirtualRadioError);
    expect((error as VirtualRadioError).code).toBe('ERR_RADIO_INVALID_OPTION');
    expect((error as VirtualRadioError).message).toBe(
      'VirtualRadio option "profiles[0].maxDataOctets" must be a number in [27, 251], got 252',
    );
  });
});

describe('radio profiles: data length', () => {
  it('iPhone and Pi Zero W stay at 27 octets (the lock answers LL_UNKNOWN_RSP): no Data Length Change', async () => {
    const ctx = setup({ 0: PI_ZERO_W, 1: IPHONE });
    const { lock, phone, phoneHandle } = await connect(ctx);
    phone.sock.write(acl(phoneHandle, att(96)));
    await ctx.clock.advanceAsync(200);
    expect(lock.le(LE_DATA_LENGTH_CHANGE)).toHaveLength(0);
    expect(phone.le(LE_DATA_LENGTH_CHANGE)).toHaveLength(0);
    expect(lock.acl().map((p) => p.readUInt16LE(3))).toEqual([27, 27, 27, 19]);
    expect(ctx.radio.connections()[0]).toMatchObject({ dataOctets: 27, pdusPerEvent: 4, intervalMs: 30 });
  });

  it('iPhone and Pi Zero 2 W negotiate 251 octets at once; both hosts get LE Data Length Change', async () => {
    const ctx = setup({ 0: PI_ZERO_2_W, 1: IPHONE });
    const { lock, phone, lockHandle, phoneHandle } = await connect(ctx);
    for (const [h, handle] of [
      [lock, lockHandle],
      [phone, phoneHandle],
    ] as const) {
      const change = h.le(LE_DATA_LENGTH_CHANGE);
      expect(change).toHaveLength(1);
      const p = change[0]!;
      // handle, MaxTxOctets, MaxTxTime, MaxRxOctets, MaxRxTime (7.7.65.7)
      expect([4, 6, 8, 10, 12].map((o) => p.readUInt16LE(o))).toEqual([handle, 251, 2120, 251, 2120]);
    }
    phone.sock.write(acl(phoneHandle, att(96)));
    await ctx.clock.advanceAsync(100);
    expect(lock.acl().map((p) => p.readUInt16LE(3))).toEqual([100]);
    expect(ctx.radio.connections()[0]!.dataOctets).toBe(251);
  });

  it('a phone that does not start the procedure gets 251 only when the lock host sends LE Set Data Length', async () => {
    const quietPhone: ControllerProfile = { ...IPHONE, name: 'quiet', initiatesDataLength: false };
    const ctx = setup({ 0: PI_ZERO_2_W, 1: quietPhone });
    const { lock, phone, lockHandle } = await connect(ctx);
    expect(lock.le(LE_DATA_LENGTH_CHANGE)).toHaveLength(0);
    expect(ctx.radio.connections()[0]!.dataOctets).toBe(27);
    const params = Buffer.alloc(6);
    params.writeUInt16LE(lockHandle, 0);
    params.writeUInt16LE(251, 2);
    params.writeUInt16LE(2120, 4);
    lock.sock.write(cmd(OP.LE_SET_DATA_LENGTH, params));
    await turns();
    expect([...lock.completed(OP.LE_SET_DATA_LENGTH)!]).toEqual([0, lockHandle & 0xff, lockHandle >> 8]);
    await ctx.clock.advanceAsync(100);
    expect(lock.le(LE_DATA_LENGTH_CHANGE)).toHaveLength(1);
    expect(phone.le(LE_DATA_LENGTH_CHANGE)).toHaveLength(1);
    expect(ctx.radio.connections()[0]!.dataOctets).toBe(251);
  });

  it('refuses LE Set Data Length outside 27..251 octets with Invalid HCI Command Parameters', async () => {
    const ctx = setup({ 0: PI_ZERO_2_W, 1: PESSIMISTIC_PHONE });
    const { lock, lockHandle } = await connect(ctx);
    const params = Buffer.alloc(6);
    params.writeUInt16LE(lockHandle, 0);
    params.writeUInt16LE(252, 2);
    params.writeUInt16LE(2120, 4);
    lock.sock.write(cmd(OP.LE_SET_DATA_LENGTH, params));
    await turns();
    expect(lock.completed(OP.LE_SET_DATA_LENGTH)![0]).toBe(0x12);
  });
});

describe('radio profiles: connection events', () => {
  it('sends several PDUs per connection event with the More Data bit (iPhone: 4), one with the pessimistic phone', async () => {
    const deliveredAfterOneEvent = async (phoneProfile: ControllerProfile): Promise<number> => {
      const ctx = setup({ 0: PI_ZERO_W, 1: phoneProfile });
      const { lock, phone, phoneHandle } = await connect(ctx);
      phone.sock.write(acl(phoneHandle, att(96)));
      await ctx.clock.advanceAsync(phoneProfile.connectionIntervalMs! - 1);
      return lock.acl().length;
    };
    expect(await deliveredAfterOneEvent(IPHONE)).toBe(4);
    expect(await deliveredAfterOneEvent(PESSIMISTIC_PHONE)).toBe(1);
  });

  it('the phone picks its own interval whatever its host asked (iPhone 30 ms, Android 15 ms)', async () => {
    for (const [profile, interval] of [
      [IPHONE, 30],
      [ANDROID, 15],
    ] as const) {
      const ctx = setup({ 0: PI_ZERO_W, 1: profile });
      const { phone } = await connect(ctx);
      expect(phone.le(LE_CONN_COMPLETE)[0]!.readUInt16LE(15)).toBe(interval / 1.25);
    }
  });

  it("caps the ATT MTU at the phone's (iPhone 185) and reports every ATT PDU as it crosses the air", async () => {
    const ctx = setup({ 0: PI_ZERO_W, 1: IPHONE });
    const seen: AttOnAir[] = [];
    ctx.radio.on('att', (a) => seen.push(a));
    const { lock, phone, lockHandle, phoneHandle } = await connect(ctx);
    phone.sock.write(acl(phoneHandle, Buffer.from([3, 0, 4, 0, 0x02, 0x00, 0x01]))); // MTU Req 256
    await ctx.clock.advanceAsync(60);
    expect(lock.acl()[0]!.subarray(5)).toEqual(Buffer.from([3, 0, 4, 0, 0x02, 185, 0]));
    lock.sock.write(acl(lockHandle, Buffer.from([3, 0, 4, 0, 0x03, 0x00, 0x01]))); // MTU Rsp 256
    await ctx.clock.advanceAsync(60);
    expect(seen.map((a) => [a.from, a.opcode, a.length])).toEqual([
      ['central', 0x02, 3],
      ['peripheral', 0x03, 3],
    ]);
    expect(seen[1]!.t).toBeGreaterThan(seen[0]!.t);
  });
});

describe('radio profiles: LE ACL buffer credits (Vol 4 Part E 4.1.1)', () => {
  const twoBuffers: ControllerProfile = { ...PI_ZERO_W, name: 'two-buffers', aclBufferCount: 2 };

  it('drops a packet beyond the credits and reports Data Buffer Overflow; credits come back on completion', async () => {
    const ctx = setup({ 0: twoBuffers, 1: IPHONE });
    const { lock, phone, lockHandle } = await connect(ctx);
    for (let i = 0; i < 3; i++) lock.sock.write(acl(lockHandle, att(20, 0x1b)));
    await turns();
    const overflow = lock.events(EVT_DATA_BUFFER_OVERFLOW);
    expect(overflow).toHaveLength(1);
    expect(overflow[0]![3]).toBe(0x01); // Link_Type ACL
    expect(ctx.radio.connections()[0]!.aclOverruns).toBe(1);
    await ctx.clock.advanceAsync(100);
    expect(phone.acl()).toHaveLength(2);
    expect(lock.events(EVT_NUM_COMPLETED)).toHaveLength(2);
    // Both buffers are free again: two more go through, none overflows.
    lock.sock.write(acl(lockHandle, att(20, 0x1b)));
    lock.sock.write(acl(lockHandle, att(20, 0x1b)));
    await ctx.clock.advanceAsync(100);
    expect(phone.acl()).toHaveLength(4);
    expect(lock.events(EVT_DATA_BUFFER_OVERFLOW)).toHaveLength(1);
  });

  it('drops a packet longer than the advertised buffer length', async () => {
    const shortBuffers: ControllerProfile = { ...PI_ZERO_W, name: 'short', aclBufferLength: 27 };
    const ctx = setup({ 0: shortBuffers, 1: IPHONE });
    const { lock, phone, lockHandle } = await connect(ctx);
    lock.sock.write(acl(lockHandle, att(24))); // 28 octets > 27
    await ctx.clock.advanceAsync(100);
    expect(lock.events(EVT_DATA_BUFFER_OVERFLOW)).toHaveLength(1);
    expect(phone.acl()).toHaveLength(0);
    expect(ctx.radio.connections()[0]!.aclOverruns).toBe(1);
  });
});

describe('radio profiles: swapping a board between runs', () => {
  it('new connections follow the new board; a profile with other ACL buffers or an open connection is refused', async () => {
    const ctx = setup({ 0: PI_ZERO_W, 1: IPHONE });
    const { lock, phone } = await connect(ctx);
    expect(ctx.radio.connections()[0]!.dataOctets).toBe(27);
    expect(() => ctx.radio.setProfile(0, PI_ZERO_2_W)).toThrow(
      'hci0 has an open connection; change its profile between connections',
    );
    const handle = lock.le(LE_CONN_COMPLETE)[0]!.readUInt16LE(5);
    const disconnect = Buffer.alloc(3);
    disconnect.writeUInt16LE(handle, 0);
    disconnect[2] = 0x13;
    lock.sock.write(cmd(0x0406, disconnect));
    await ctx.clock.advanceAsync(200);
    expect(ctx.radio.connections()[0]!.open).toBe(false);
    expect(() => ctx.radio.setProfile(1, { ...IPHONE, name: 'more-buffers', aclBufferCount: 9 })).toThrow(
      /profile "more-buffers" reports LE ACL buffers 251 x 9, but the host of hci1 read 251 x 8/,
    );
    ctx.radio.setProfile(0, PI_ZERO_2_W);
    lock.sock.write(cmd(OP.READ_LOCAL_VERSION));
    lock.sock.write(cmd(OP.LE_SET_ADV_ENABLE, [1]));
    const create = Buffer.alloc(25);
    Buffer.from(ctx.radio.addressOf(0).split(':').reverse().join(''), 'hex').copy(create, 6);
    create.writeUInt16LE(40, 15);
    create.writeUInt16LE(200, 19);
    phone.sock.write(cmd(OP.LE_CREATE_CONN, create));
    await turns();
    await ctx.clock.advanceAsync(300);
    expect(lock.completed(OP.READ_LOCAL_VERSION)![1]).toBe(0x08);
    expect(ctx.radio.connections()[1]).toMatchObject({ open: true, dataOctets: 251 });
  });
});
