/**
 * The decision path's store appends without copies (issue 8, decision cost): `AppendLog.appendRecord` writes
 * the same bytes as `append` of the concatenated record, and the in-memory card keeps no reference to a
 * caller's buffer, so that writing a view of its own file buffer into a pending write cannot go wrong.
 */
import { describe, expect, it } from 'vitest';
import { AppendLog } from '../src/store/append-log.js';
import { ByteWriter, putU32, putU64 } from '../src/store/bytes.js';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import { StoreError } from '../src/store/errors.js';

const bytes = (n: number, seed: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 7 + seed) & 0xff);

describe('AppendLog.appendRecord', () => {
  it('writes the same file as append of head and body concatenated, and reopens to that record', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    const head = bytes(14, 1);
    const body = bytes(250, 2);
    const whole = new Uint8Array([...head, ...body]);
    const a = await AppendLog.open(fs, '/s', 'a.log');
    const b = await AppendLog.open(fs, '/s', 'b.log');
    await a.log.append(whole);
    await b.log.appendRecord(head, body);
    expect(fs.peekFile('/s/b.log')).toEqual(fs.peekFile('/s/a.log'));
    expect(b.log.sizeBytes).toBe(a.log.sizeBytes);
    await b.log.close();
    const reopened = await AppendLog.open(fs.reboot({ tornWrites: 'lose' }), '/s', 'b.log');
    expect(reopened.records).toEqual([whole]);
  });

  it('frames record after record in its reused buffer without changing the ones before', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    const a = await AppendLog.open(fs, '/s', 'a.log');
    const b = await AppendLog.open(fs, '/s', 'b.log');
    const wholes: Uint8Array[] = [];
    // Growing and shrinking records, the buffer growing past its first size on the way.
    for (const [i, n] of [300, 20, 1500, 5, 700].entries()) {
      const head = bytes(9, i);
      const body = bytes(n, i + 10);
      wholes.push(new Uint8Array([...head, ...body]));
      await Promise.all([a.log.append(wholes[i]!), b.log.appendRecord(head, body)]);
    }
    expect(fs.peekFile('/s/b.log')).toEqual(fs.peekFile('/s/a.log'));
    await b.log.close();
    const reopened = await AppendLog.open(fs.reboot({ tornWrites: 'lose' }), '/s', 'b.log');
    expect(reopened.records).toEqual(wholes);
  });

  it('refuses a record over the bound, head and body counted together', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    const { log } = await AppendLog.open(fs, '/s', 'a.log', { maxRecordBytes: 100 });
    const err = await log.appendRecord(bytes(10, 1), bytes(91, 2)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('ERR_STORE_INVALID_ARGUMENT');
    expect((err as StoreError).message).toContain('101 bytes');
  });
});

describe('CrashingStoreFs keeps no reference to a written buffer', () => {
  it('a caller changing its buffer after write changes neither the file nor what a power cut keeps', async () => {
    for (const mode of ['keep', 'lose'] as const) {
      const fs = new CrashingStoreFs({ tornWrites: mode });
      await fs.mkdir('/s');
      const fh = await fs.open('/s/f', 'a');
      await fs.fsyncDir('/s');
      const first = bytes(40, 3);
      await fh.write(first);
      await fh.sync();
      const second = bytes(40, 4);
      const expected = new Uint8Array([...first, ...second]);
      await fh.write(second); // not synced: 'keep' keeps it at a power cut, 'lose' loses it
      first.fill(0xee);
      second.fill(0xee);
      expect(fs.peekFile('/s/f')).toEqual(expected);
      const after = fs.reboot({ tornWrites: mode });
      const survived = await after.readFile('/s/f');
      expect(survived).toEqual(mode === 'keep' ? expected : expected.subarray(0, 40));
    }
  });
});

describe('putU32 and putU64', () => {
  it('write what ByteWriter.u32 and u64 write', () => {
    for (const v of [
      0,
      1,
      0xff,
      0x1234_5678,
      0xffff_ffff,
      0x1_0000_0000,
      0x12_3456_789a_bcde,
      Number.MAX_SAFE_INTEGER,
    ]) {
      const b = new Uint8Array(12);
      putU64(b, 0, v);
      if (v <= 0xffff_ffff) putU32(b, 8, v);
      const w = new ByteWriter().u64(v);
      if (v <= 0xffff_ffff) w.u32(v);
      expect(b.subarray(0, w.length)).toEqual(w.finish());
    }
  });
});
