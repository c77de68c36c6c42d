import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { AppendLog } from '../src/store/append-log.js';
import { AtomicFile } from '../src/store/atomic-file.js';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import { crc32 } from '../src/store/crc32.js';
import { StoreError } from '../src/store/errors.js';
import { sweepPowerCuts } from '../src/store/power-cut-sweep.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b ? new TextDecoder().decode(b) : undefined);

async function expectCode(p: Promise<unknown>, code: string): Promise<StoreError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  expect((err as StoreError).code).toBe(code);
  return err as StoreError;
}

describe('crc32', () => {
  it('matches the IEEE check value and zlib', () => {
    expect(crc32(enc('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const data = new Uint8Array(1000).map((_, i) => (i * 31 + 7) & 0xff);
    expect(crc32(data, 0, 400, crc32(data, 0, 0))).toBe(crc32(data.subarray(0, 400)));
    expect(crc32(data, 400, 1000, crc32(data, 0, 400))).toBe(crc32(data));
    const z = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
    if (z) expect(crc32(data)).toBe(z(data));
  });
});

describe('CrashingStoreFs', () => {
  it('loses data that was written but not fsynced', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    await fs.mkdir('/s');
    const fh = await fs.open('/s/a', 'a');
    await fh.write(enc('durable'));
    await fh.sync();
    await fs.fsyncDir('/s');
    await fh.write(enc('-volatile'));
    expect(dec(await fs.readFile('/s/a'))).toBe('durable-volatile');
    const after = fs.reboot();
    expect(dec(await after.readFile('/s/a'))).toBe('durable');
  });

  it('loses a create or rename whose directory was not fsynced', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    await fs.mkdir('/s');
    const fh = await fs.open('/s/new', 'w');
    await fh.write(enc('x'));
    await fh.sync();
    await fh.close();
    await fs.rename('/s/new', '/s/renamed');
    const after = fs.reboot();
    expect(await after.readdir('/s')).toEqual([]);
  });

  it('keeps everything fsynced and its directory entry', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    await fs.mkdir('/s');
    const fh = await fs.open('/s/f.tmp', 'w');
    await fh.write(enc('hello'));
    await fh.sync();
    await fh.close();
    await fs.rename('/s/f.tmp', '/s/f');
    await fs.fsyncDir('/s');
    expect(dec(await fs.reboot().readFile('/s/f'))).toBe('hello');
  });

  it('cuts the power at the chosen operation: that call and every later one throw, handles included', async () => {
    const fs = new CrashingStoreFs({ cutAtOperation: 3, tornWrites: 'lose' });
    await fs.mkdir('/s');
    const fh = await fs.open('/s/a', 'a');
    await fh.write(enc('1'));
    expect(fs.operationCount).toBe(3);
    await expectCode(fh.sync(), 'ERR_STORE_POWER_LOST');
    await expectCode(fh.write(enc('2')), 'ERR_STORE_POWER_LOST');
    await expectCode(fs.readFile('/s/a'), 'ERR_STORE_POWER_LOST');
    expect(fs.poweredOff).toBe(true);
    const after = fs.reboot();
    await expectCode(after.readFile('/s/a'), 'ERR_STORE_NOT_FOUND');
  });

  it('tears unsynced writes reproducibly in random mode', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const fs = new CrashingStoreFs({ seed });
      await fs.mkdir('/s');
      const fh = await fs.open('/s/a', 'a');
      await fs.fsyncDir('/s');
      await fh.write(enc('abcdefgh'));
      await fh.write(enc('ijklmnop'));
      const a = await fs.reboot().readFile('/s/a');
      const fs2 = new CrashingStoreFs({ seed });
      await fs2.mkdir('/s');
      const fh2 = await fs2.open('/s/a', 'a');
      await fs2.fsyncDir('/s');
      await fh2.write(enc('abcdefgh'));
      await fh2.write(enc('ijklmnop'));
      expect(await fs2.reboot().readFile('/s/a')).toEqual(a);
      outcomes.add(Buffer.from(a).toString('hex'));
    }
    // Nothing, a prefix, a torn record, a zero-filled extent and everything all occur.
    expect(outcomes.size).toBeGreaterThan(4);
  });
});

describe('AtomicFile', () => {
  it('reads back what was written, and undefined before the first write', async () => {
    const fs = new CrashingStoreFs();
    await fs.mkdir('/s');
    const f = new AtomicFile(fs, '/s', 'state');
    expect(await f.read()).toBeUndefined();
    await f.write(enc('one'));
    await f.write(enc('two'));
    expect(dec(await f.read())).toBe('two');
    expect(dec(await new AtomicFile(fs.reboot(), '/s', 'state').read())).toBe('two');
  });

  it('detects every single-bit flip and any truncation as ERR_STORE_CORRUPT', async () => {
    const fs = new CrashingStoreFs();
    await fs.mkdir('/s');
    const f = new AtomicFile(fs, '/s', 'state');
    await f.write(enc('trust anchors and owner keys'));
    const size = fs.peekFile('/s/state')!.length;
    for (let i = 0; i < size; i++) {
      for (const bit of [0x01, 0x80]) {
        fs.corruptByte('/s/state', i, bit);
        await expectCode(f.read(), 'ERR_STORE_CORRUPT');
        fs.corruptByte('/s/state', i, bit);
      }
    }
    expect(dec(await f.read())).toBe('trust anchors and owner keys');
    const cut = new CrashingStoreFs({
      image: new Map([['/s', new Map([['state', fs.peekFile('/s/state')!.slice(0, size - 3)]])]]),
    });
    await expectCode(new AtomicFile(cut, '/s', 'state').read(), 'ERR_STORE_CORRUPT');
  });

  it('refuses a file of another store (wrong magic)', async () => {
    const fs = new CrashingStoreFs();
    await fs.mkdir('/s');
    await new AtomicFile(fs, '/s', 'state', { magic: 'AAAA' }).write(enc('x'));
    await expectCode(new AtomicFile(fs, '/s', 'state', { magic: 'BBBB' }).read(), 'ERR_STORE_CORRUPT');
  });

  it('holds the old or the new content after a power cut at every operation', async () => {
    const values = ['v1', 'v2-longer', '', 'v4'];
    const report = await sweepPowerCuts(() => {
      let acked = -1;
      let attempted = -1;
      return {
        async run(fs) {
          await fs.mkdir('/s');
          const f = new AtomicFile(fs, '/s', 'state');
          for (let i = 0; i < values.length; i++) {
            attempted = i;
            await f.write(enc(values[i]!));
            acked = i;
          }
        },
        async check(fs) {
          const got = await new AtomicFile(fs, '/s', 'state').read();
          const allowed = [];
          for (let i = acked; i <= attempted; i++) allowed.push(i < 0 ? undefined : values[i]);
          expect(allowed).toContain(dec(got));
        },
      };
    });
    expect(report.operations).toBeGreaterThan(20);
  });
});

describe('AppendLog', () => {
  it('reopens with every appended record', async () => {
    const fs = new CrashingStoreFs();
    const { log, records, tornTailBytes } = await AppendLog.open(fs, '/s', 'a.log');
    expect(records).toEqual([]);
    expect(tornTailBytes).toBe(0);
    await log.append(enc('one'));
    await log.append([enc('two'), enc('three')]);
    const again = await AppendLog.open(fs.reboot(), '/s', 'a.log');
    expect(again.records.map(dec)).toEqual(['one', 'two', 'three']);
  });

  it('cuts a torn tail away, reports it and keeps appending after it', async () => {
    const fs = new CrashingStoreFs();
    const { log } = await AppendLog.open(fs, '/s', 'a.log');
    await log.append(enc('kept'));
    const clean = fs.peekFile('/s/a.log')!;
    await log.append(enc('torn record'));
    const full = fs.peekFile('/s/a.log')!;
    for (let len = clean.length + 1; len < full.length; len++) {
      for (const zeroFill of [false, true]) {
        const torn = zeroFill ? new Uint8Array(full.length) : new Uint8Array(len);
        torn.set(full.subarray(0, len));
        const img = new CrashingStoreFs({ image: new Map([['/s', new Map([['a.log', torn]])]]) });
        const opened = await AppendLog.open(img, '/s', 'a.log');
        expect(opened.records.map(dec)).toEqual(['kept']);
        expect(opened.tornTailBytes).toBe(torn.length - clean.length);
        await opened.log.append(enc('next'));
        expect((await AppendLog.open(img.reboot(), '/s', 'a.log')).records.map(dec)).toEqual([
          'kept',
          'next',
        ]);
      }
    }
  });

  it('gives ERR_STORE_CORRUPT for a flipped bit anywhere before the last record', async () => {
    const fs = new CrashingStoreFs();
    const { log } = await AppendLog.open(fs, '/s', 'a.log');
    for (const r of ['alpha', 'bravo', 'charlie']) await log.append(enc(r));
    const beforeLast = fs.peekFile('/s/a.log')!.length;
    await log.append(enc('delta'));
    for (let i = 0; i < beforeLast; i++) {
      fs.corruptByte('/s/a.log', i, 0x10);
      await expectCode(AppendLog.open(fs, '/s', 'a.log'), 'ERR_STORE_CORRUPT');
      fs.corruptByte('/s/a.log', i, 0x10);
    }
    expect((await AppendLog.open(fs, '/s', 'a.log')).records.map(dec)).toEqual([
      'alpha',
      'bravo',
      'charlie',
      'delta',
    ]);
  });

  it('refuses records over the bound', async () => {
    const fs = new CrashingStoreFs();
    const { log } = await AppendLog.open(fs, '/s', 'a.log', { maxRecordBytes: 4 });
    await expectCode(log.append(enc('12345')), 'ERR_STORE_INVALID_ARGUMENT');
    await log.close();
    await expectCode(log.append(enc('1')), 'ERR_STORE_CLOSED');
  });

  it('keeps every acknowledged record, in order, across a power cut at every operation (with rewrites)', async () => {
    const report = await sweepPowerCuts(() => {
      // history[i] is the log content after the i-th mutation; a cut leaves one of acked..attempted.
      const history: string[][] = [[]];
      let acked = 0;
      return {
        async run(fs) {
          const { log } = await AppendLog.open(fs, '/s', 'a.log');
          for (let i = 0; i < 8; i++) {
            const current = history[history.length - 1]!;
            if (i === 5) {
              const live = current.slice(2);
              history.push(live);
              await log.rewrite(live.map(enc));
              acked = history.length - 1;
            }
            history.push([...history[history.length - 1]!, `record-${i}`]);
            await log.append(enc(`record-${i}`));
            acked = history.length - 1;
          }
        },
        async check(fs) {
          const got = (await AppendLog.open(fs, '/s', 'a.log')).records.map((r) => dec(r)!);
          expect(history.slice(acked).map((h) => JSON.stringify(h))).toContain(JSON.stringify(got));
        },
      };
    });
    expect(report.runs).toBeGreaterThan(100);
  });
});
