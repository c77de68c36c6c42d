/**
 * The virtual controller at the HCI level, driven through the bluetooth-hci-socket stand-in without any
 * stack: command answers, asynchronous in-order events, advertising and scanning, connection set-up with
 * roles, link-layer fragmentation, ACL flag and handle rewriting, flow-control credits, MTU cap,
 * latency, termination and supervision timeout (Bluetooth Core v5.3 Vol 4 Part E, Vol 6 Part B).
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  HCI_SOCKET_MODULE,
  VirtualClock,
  VirtualRadio,
  VirtualRadioError,
  createHciSocketClass,
  installVirtualHci,
} from '../src/virtual-radio/index.js';
import type { VirtualHciSocketApi, VirtualRadioOptions } from '../src/virtual-radio/index.js';

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

function acl(handle: number, pb: number, data: Buffer): Buffer {
  const b = Buffer.alloc(5 + data.length);
  b.writeUInt8(0x02, 0);
  b.writeUInt16LE(handle | (pb << 12), 1);
  b.writeUInt16LE(data.length, 3);
  data.copy(b, 5);
  return b;
}

const OP = {
  SET_EVENT_MASK: 0x0c01,
  RESET: 0x0c03,
  READ_LOCAL_VERSION: 0x1001,
  READ_BD_ADDR: 0x1009,
  LE_SET_EVENT_MASK: 0x2001,
  LE_READ_BUFFER_SIZE: 0x2002,
  LE_SET_ADV_PARAMS: 0x2006,
  LE_SET_ADV_DATA: 0x2008,
  LE_SET_SCAN_RSP: 0x2009,
  LE_SET_ADV_ENABLE: 0x200a,
  LE_SET_SCAN_PARAMS: 0x200b,
  LE_SET_SCAN_ENABLE: 0x200c,
  LE_CREATE_CONN: 0x200d,
  DISCONNECT: 0x0406,
  READ_RSSI: 0x1405,
};

interface Host {
  sock: VirtualHciSocketApi;
  packets: Buffer[];
  events(code: number): Buffer[];
  le(sub: number): Buffer[];
  acl(): Buffer[];
}

function setup(options: VirtualRadioOptions = {}): {
  radio: VirtualRadio;
  clock: VirtualClock;
  host: (devId: number) => Host;
} {
  const clock = new VirtualClock();
  const radio = new VirtualRadio({ clock, ...options });
  const Socket = createHciSocketClass(radio);
  const host = (devId: number): Host => {
    const sock = new Socket();
    const packets: Buffer[] = [];
    sock.on('data', (p: Buffer) => packets.push(p));
    sock.bindRaw(devId);
    sock.start();
    // Both stacks enable every event they use (Set Event Mask with LE Meta, LE Set Event Mask 0x1f).
    sock.write(cmd(OP.SET_EVENT_MASK, Buffer.from('fffffbff07f8bf3d', 'hex')));
    sock.write(cmd(OP.LE_SET_EVENT_MASK, Buffer.from('1f00000000000000', 'hex')));
    return {
      sock,
      packets,
      events: (code) => packets.filter((p) => p[0] === 0x04 && p[1] === code),
      le: (sub) => packets.filter((p) => p[0] === 0x04 && p[1] === 0x3e && p[3] === sub),
      acl: () => packets.filter((p) => p[0] === 0x02),
    };
  };
  return { radio, clock, host };
}

/** Peripheral on hci0 advertising, central on hci1 connecting; returns both handles. */
async function connect(
  ctx: ReturnType<typeof setup>,
): Promise<{ lock: Host; phone: Host; lockHandle: number; phoneHandle: number }> {
  const lock = ctx.host(0);
  const phone = ctx.host(1);
  lock.sock.write(cmd(OP.LE_SET_ADV_PARAMS, [0xa0, 0, 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0]));
  lock.sock.write(cmd(OP.LE_SET_ADV_DATA, Buffer.concat([Buffer.from([3, 2, 1, 6]), Buffer.alloc(28)])));
  lock.sock.write(cmd(OP.LE_SET_ADV_ENABLE, [1]));
  const create = Buffer.alloc(25);
  create.writeUInt16LE(0x60, 0);
  create.writeUInt16LE(0x30, 2);
  create.writeUInt8(0, 5);
  Buffer.from(ctx.radio.addressOf(0).split(':').reverse().join(''), 'hex').copy(create, 6);
  create.writeUInt16LE(6, 13);
  create.writeUInt16LE(24, 15); // max interval 30 ms
  create.writeUInt16LE(0, 17);
  create.writeUInt16LE(42, 19); // 420 ms
  phone.sock.write(cmd(OP.LE_CREATE_CONN, create));
  await turns();
  await ctx.clock.advanceAsync(200);
  const lc = lock.le(0x01)[0]!;
  const pc = phone.le(0x01)[0]!;
  return { lock, phone, lockHandle: lc.readUInt16LE(5), phoneHandle: pc.readUInt16LE(5) };
}

describe('virtual controller: commands', () => {
  it('answers the init sequence asynchronously, in order, never inside write()', async () => {
    const { host } = setup();
    const h = host(3);
    h.sock.write(cmd(OP.READ_LOCAL_VERSION));
    h.sock.write(cmd(OP.READ_BD_ADDR));
    h.sock.write(cmd(OP.LE_READ_BUFFER_SIZE));
    expect(h.packets).toHaveLength(0);
    await turns();
    const cc = h.events(0x0e).map((p) => p.readUInt16LE(4));
    expect(cc).toEqual([
      OP.SET_EVENT_MASK,
      OP.LE_SET_EVENT_MASK,
      OP.READ_LOCAL_VERSION,
      OP.READ_BD_ADDR,
      OP.LE_READ_BUFFER_SIZE,
    ]);
    const version = h.events(0x0e)[2]!;
    expect(version.readUInt8(6)).toBe(0x00);
    expect(version.readUInt8(7)).toBeGreaterThanOrEqual(6); // HCI version, bleno and noble need >= 6
    const addr = h.events(0x0e)[3]!.subarray(7, 13);
    expect(Buffer.from(addr).reverse().toString('hex')).toBe('54414e000003');
    const buf = h.events(0x0e)[4]!;
    expect(buf.readUInt16LE(7)).toBe(251);
    expect(buf.readUInt8(9)).toBe(8);
  });

  it('answers an unknown command with Command Complete, status 0x01 Unknown HCI Command', async () => {
    const { host } = setup();
    const h = host(0);
    h.sock.write(cmd(0x2031, [0, 5, 5])); // LE Set Default PHY: not in Core 4.1
    await turns();
    const last = h.events(0x0e).at(-1)!;
    expect(last.readUInt16LE(4)).toBe(0x2031);
    expect(last.readUInt8(6)).toBe(0x01);
  });

  it('applies the raw socket filter like the Linux kernel', async () => {
    const { host } = setup();
    const h = host(0);
    const filter = Buffer.alloc(16);
    filter.writeUInt32LE(1 << 4, 0); // events only
    filter.writeUInt32LE(1 << 0x0f, 4); // Command Status only
    h.sock.setFilter(filter);
    h.sock.write(cmd(OP.READ_BD_ADDR));
    await turns();
    expect(h.packets).toHaveLength(0);
  });

  it('rejects options outside their range with ERR_RADIO_INVALID_OPTION', () => {
    expect(() => new VirtualRadio({ linkLayerPayload: 20 })).toThrow(VirtualRadioError);
    try {
      new VirtualRadio({ lossRate: 1.5 });
    } catch (err) {
      expect((err as VirtualRadioError).code).toBe('ERR_RADIO_INVALID_OPTION');
      expect((err as Error).message).toBe(
        'VirtualRadio option "lossRate" must be a number in [0, 1], got 1.5',
      );
    }
    expect(() => new VirtualClock().advance(-1)).toThrow(/advance\(ms\) needs ms >= 0/);
  });

  it('resolves require("@abandonware/bluetooth-hci-socket") to the stand-in', () => {
    const radio = new VirtualRadio({ clock: new VirtualClock() });
    const installation = installVirtualHci(radio);
    try {
      const required = createRequire(import.meta.url)(HCI_SOCKET_MODULE) as unknown;
      expect(required).toBe(installation.SocketClass);
    } finally {
      installation.uninstall();
    }
  });
});

describe('virtual controller: air', () => {
  it('reports ADV_IND then SCAN_RSP to an active scanner, once each with duplicate filtering', async () => {
    const { host, clock } = setup();
    const adv = host(0);
    const scan = host(1);
    adv.sock.write(cmd(OP.LE_SET_ADV_PARAMS, [0xa0, 0, 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0]));
    adv.sock.write(cmd(OP.LE_SET_ADV_DATA, Buffer.concat([Buffer.from([3, 2, 1, 6]), Buffer.alloc(28)])));
    adv.sock.write(
      cmd(OP.LE_SET_SCAN_RSP, Buffer.concat([Buffer.from([4, 3, 9, 0x41, 0x42]), Buffer.alloc(27)])),
    );
    adv.sock.write(cmd(OP.LE_SET_ADV_ENABLE, [1]));
    scan.sock.write(cmd(OP.LE_SET_SCAN_PARAMS, [1, 0x12, 0, 0x12, 0, 0, 0]));
    scan.sock.write(cmd(OP.LE_SET_SCAN_ENABLE, [1, 1]));
    await turns();
    await clock.advanceAsync(1000);
    const reports = scan.le(0x02);
    expect(reports.map((r) => r.readUInt8(5))).toEqual([0x00, 0x04]);
    expect(reports[0]!.subarray(13, 17)).toEqual(Buffer.from([3, 2, 1, 6])); // Data_Length, Data
    expect(reports[1]!.subarray(13, 18)).toEqual(Buffer.from([4, 3, 9, 0x41, 0x42]));
    // Nobody left to hear anything new: the advertiser's events stop being simulated.
    expect(clock.pending()).toBe(0);
  });

  it('advertises every advertising interval plus a 0-10 ms advDelay', async () => {
    const { host, clock } = setup({ advertisingIntervalMs: 100 });
    const adv = host(0);
    const scan = host(1);
    adv.sock.write(cmd(OP.LE_SET_ADV_PARAMS, [0x00, 0x08, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0]));
    adv.sock.write(cmd(OP.LE_SET_ADV_ENABLE, [1]));
    scan.sock.write(cmd(OP.LE_SET_SCAN_PARAMS, [0, 0x12, 0, 0x12, 0, 0, 0])); // passive
    scan.sock.write(cmd(OP.LE_SET_SCAN_ENABLE, [1, 0])); // no duplicate filter: every event reported
    await turns();
    const times: number[] = [];
    for (let t = 0; t < 1000; t++) {
      const before = scan.le(0x02).length;
      await clock.advanceAsync(1);
      if (scan.le(0x02).length > before) times.push(clock.now());
    }
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(8);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(100);
      expect(gap).toBeLessThanOrEqual(111);
    }
    expect(scan.le(0x02).every((r) => r.readUInt8(5) === 0x00)).toBe(true); // passive: no SCAN_RSP
  });

  it('creates a connection: Command Status, then LE Connection Complete with each role; advertising stops', async () => {
    const ctx = setup({ connectionIntervalMs: 50 });
    const { lock, phone, lockHandle, phoneHandle } = await connect(ctx);
    const status = phone.events(0x0f)[0]!;
    expect(status.readUInt8(3)).toBe(0x00);
    expect(status.readUInt16LE(5)).toBe(OP.LE_CREATE_CONN);
    const pc = phone.le(0x01)[0]!;
    const lc = lock.le(0x01)[0]!;
    expect(pc.readUInt8(4)).toBe(0x00); // status
    expect(pc.readUInt8(7)).toBe(0x00); // role: Central
    expect(lc.readUInt8(7)).toBe(0x01); // role: Peripheral
    expect(Buffer.from(pc.subarray(9, 15)).reverse().toString('hex')).toBe('54414e000000');
    expect(Buffer.from(lc.subarray(9, 15)).reverse().toString('hex')).toBe('54414e000001');
    expect(pc.readUInt16LE(15)).toBe(40); // 50 ms in 1.25 ms units
    expect(pc.readUInt16LE(19)).toBe(42); // supervision timeout 420 ms in 10 ms units
    expect(lockHandle).toBeGreaterThan(0);
    expect(phoneHandle).toBeGreaterThan(0);
    expect(ctx.clock.pending()).toBe(0);
  });

  it('splits ACL into 27-byte PDUs, one per connection event, rewrites PB 00 -> 10 and the handle, and returns credits', async () => {
    const ctx = setup({ connectionIntervalMs: 30 });
    const { lock, phone, lockHandle, phoneHandle } = await connect(ctx);
    const l2cap = Buffer.alloc(4 + 96);
    l2cap.writeUInt16LE(96, 0);
    l2cap.writeUInt16LE(0x0004, 2);
    for (let i = 0; i < 96; i++) l2cap[4 + i] = i;
    const t0 = ctx.clock.now();
    phone.sock.write(acl(phoneHandle, 0b00, l2cap));
    await ctx.clock.advanceAsync(29);
    expect(lock.acl()).toHaveLength(1);
    await ctx.clock.advanceAsync(200);
    const got = lock.acl();
    expect(got.map((p) => p.readUInt16LE(3))).toEqual([27, 27, 27, 19]);
    expect(got.map((p) => p.readUInt16LE(1) >> 12)).toEqual([0b10, 0b01, 0b01, 0b01]);
    expect(got.every((p) => (p.readUInt16LE(1) & 0x0fff) === lockHandle)).toBe(true);
    expect(Buffer.concat(got.map((p) => p.subarray(5)))).toEqual(l2cap);
    const credits = phone.events(0x13);
    expect(credits).toHaveLength(1);
    expect(credits[0]!.readUInt16LE(4)).toBe(phoneHandle);
    expect(credits[0]!.readUInt16LE(6)).toBe(1);
    const info = ctx.radio.connections()[0]!;
    expect(info.pdusToPeripheral).toBe(4);
    expect(ctx.clock.now() - t0).toBeGreaterThan(3 * 30);
  });

  it('caps the ATT MTU by rewriting Exchange MTU Request and Response', async () => {
    const ctx = setup({ attMtuCap: 185 });
    const { lock, phone, lockHandle, phoneHandle } = await connect(ctx);
    phone.sock.write(acl(phoneHandle, 0b00, Buffer.from([3, 0, 4, 0, 0x02, 0x00, 0x02]))); // Req, MTU 512
    await ctx.clock.advanceAsync(100);
    expect(lock.acl()[0]!.subarray(5)).toEqual(Buffer.from([3, 0, 4, 0, 0x02, 185, 0]));
    lock.sock.write(acl(lockHandle, 0b00, Buffer.from([3, 0, 4, 0, 0x03, 0x00, 0x01]))); // Rsp, MTU 256
    await ctx.clock.advanceAsync(100);
    expect(phone.acl()[0]!.subarray(5)).toEqual(Buffer.from([3, 0, 4, 0, 0x03, 185, 0]));
    expect(ctx.radio.connections()[0]!.mtuRewrites).toBe(2);
  });

  it('delays delivery to the receiving host by latencyMs', async () => {
    const arrival = async (latencyMs: number): Promise<number> => {
      const ctx = setup({ latencyMs, connectionIntervalMs: 30 });
      const { lock, phone, phoneHandle } = await connect(ctx);
      phone.sock.write(acl(phoneHandle, 0b00, Buffer.from([1, 0, 4, 0, 0x0a])));
      await turns();
      for (let i = 0; i < 500 && lock.acl().length === 0; i++) await ctx.clock.advanceAsync(1);
      expect(lock.acl()).toHaveLength(1);
      return ctx.clock.now();
    };
    const direct = await arrival(0);
    expect(await arrival(40)).toBe(direct + 40);
  });

  it('terminates on Disconnect: 0x16 locally, the given reason at the peer', async () => {
    const ctx = setup();
    const { lock, phone, phoneHandle, lockHandle } = await connect(ctx);
    phone.sock.write(cmd(OP.DISCONNECT, [phoneHandle & 0xff, phoneHandle >> 8, 0x13]));
    await turns();
    await ctx.clock.advanceAsync(100);
    const pd = phone.events(0x05)[0]!;
    const ld = lock.events(0x05)[0]!;
    expect([pd.readUInt16LE(4), pd.readUInt8(6)]).toEqual([phoneHandle, 0x16]);
    expect([ld.readUInt16LE(4), ld.readUInt8(6)]).toEqual([lockHandle, 0x13]);
    expect(ctx.radio.connections()[0]!.open).toBe(false);
  });

  it('times out a connection whose peer vanished: Disconnection Complete 0x08 after the supervision timeout', async () => {
    const ctx = setup({ connectionIntervalMs: 30, supervisionTimeoutMs: 300 });
    const { phone, phoneHandle } = await connect(ctx);
    const vanished = ctx.clock.now();
    ctx.radio.removeDevice(0);
    await ctx.clock.advanceAsync(250);
    expect(phone.events(0x05)).toHaveLength(0);
    await ctx.clock.advanceAsync(100);
    const dc = phone.events(0x05)[0]!;
    expect([dc.readUInt16LE(4), dc.readUInt8(6)]).toEqual([phoneHandle, 0x08]);
    expect(ctx.clock.now() - vanished).toBe(350);
  });

  it('updates connection parameters at the instant six events ahead (LE Connection Update)', async () => {
    const ctx = setup();
    const { lock, phone, phoneHandle, lockHandle } = await connect(ctx);
    expect(ctx.radio.connections()[0]!.intervalMs).toBe(30);
    const update = Buffer.alloc(14);
    update.writeUInt16LE(phoneHandle, 0);
    update.writeUInt16LE(40, 2); // 50 ms
    update.writeUInt16LE(40, 4);
    update.writeUInt16LE(0, 6);
    update.writeUInt16LE(200, 8); // 2 s
    const requested = ctx.clock.now();
    phone.sock.write(cmd(0x2013, update));
    await turns();
    expect(phone.events(0x0f).at(-1)!.readUInt8(3)).toBe(0x00);
    for (let i = 0; i < 1000 && phone.le(0x03).length === 0; i++) await ctx.clock.advanceAsync(1);
    // The instant is 6 events after the one in progress when the request was made (30 ms interval).
    const applied = ctx.clock.now() - requested;
    expect(applied).toBeGreaterThan(5 * 30);
    expect(applied).toBeLessThanOrEqual(6 * 30);
    await ctx.clock.advanceAsync(10);
    for (const [host, handle] of [
      [phone, phoneHandle],
      [lock, lockHandle],
    ] as const) {
      const done = host.le(0x03)[0]!;
      expect(done.readUInt16LE(5)).toBe(handle);
      expect(done.readUInt16LE(7)).toBe(40);
      expect(done.readUInt16LE(11)).toBe(200);
    }
    const info = ctx.radio.connections()[0]!;
    expect(info.intervalMs).toBe(50);
    expect(info.supervisionTimeoutMs).toBe(2000);
    // The peripheral may not start the procedure in Core 4.1.
    update.writeUInt16LE(lockHandle, 0);
    lock.sock.write(cmd(0x2013, update));
    await turns();
    expect(lock.events(0x0f).at(-1)!.readUInt8(3)).toBe(0x0c);
  });

  it('reads RSSI of a connection', async () => {
    const ctx = setup({ rssiDbm: -71 });
    const { phone, phoneHandle } = await connect(ctx);
    phone.sock.write(cmd(OP.READ_RSSI, [phoneHandle & 0xff, phoneHandle >> 8]));
    await turns();
    const cc = phone.events(0x0e).at(-1)!;
    expect(cc.readUInt16LE(4)).toBe(OP.READ_RSSI);
    expect(cc.readUInt8(6)).toBe(0);
    expect(cc.readInt8(9)).toBe(-71);
  });
});
