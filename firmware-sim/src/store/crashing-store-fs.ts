import { posix } from 'node:path';
import { StoreError } from './errors.js';
import type { StoreErrorCode } from './errors.js';
import type { StoreFileHandle, StoreFs } from './store-fs.js';

/**
 * What survives of data that was written but not fsynced when the power goes:
 * - 'lose': none of it (the most common outcome on an SD card with a write cache);
 * - 'keep': all of it (the kernel happened to flush it);
 * - 'random': a seeded random prefix of the unsynced writes, the last one possibly torn (cut at a random
 *   byte, sometimes with the rest of its extent zero-filled, as ext4 delayed allocation leaves it), and a
 *   random prefix of the unsynced directory operations (create, rename, unlink).
 */
export type TornWriteMode = 'lose' | 'keep' | 'random';

/** Options of {@link CrashingStoreFs}. */
export interface CrashingStoreFsOptions {
  /** Cut the power when operation number `cutAtOperation` (0-based, every call counts) is attempted. */
  cutAtOperation?: number;
  /**
   * Make operation number `failAtOperation` fail with `failWith` (default ERR_STORE_IO) without doing
   * anything, the power staying on: a card that refuses one write or fsync (EIO, ENOSPC).
   */
  failAtOperation?: number;
  failWith?: StoreErrorCode;
  /** Seed for the 'random' mode (default 1): the same seed gives the same surviving state. */
  seed?: number;
  /** Default 'random'. */
  tornWrites?: TornWriteMode;
  /** The durable image to boot from (what {@link CrashingStoreFs.reboot} passes on). */
  image?: DiskImage;
}

/** Directory path -> file name -> contents. Directories with no files are listed with an empty map. */
export type DiskImage = Map<string, Map<string, Uint8Array>>;

type FileOp = { kind: 'write'; pos: number; data: Uint8Array } | { kind: 'truncate'; length: number };
type DirOp =
  | { kind: 'link'; name: string; inode: Inode }
  | { kind: 'rename'; from: string; to: string; inode: Inode }
  | { kind: 'unlink'; name: string };

class Inode {
  /** What the running process sees. */
  current: Uint8Array;
  /** File operations since the last fsync, oldest first; durable state = durable + none, some or all. */
  pending: FileOp[] = [];
  constructor(public durable: Uint8Array) {
    this.current = durable;
  }
}

class DirNode {
  /** Made by mkdir() or held in the image, as opposed to an ancestor created on the way. */
  explicit = false;
  current = new Map<string, Inode>();
  durable = new Map<string, Inode>();
  pending: DirOp[] = [];
}

function applyFileOp(data: Uint8Array, op: FileOp): Uint8Array {
  if (op.kind === 'truncate') {
    if (op.length <= data.length) return data.slice(0, op.length);
    const grown = new Uint8Array(op.length);
    grown.set(data);
    return grown;
  }
  const out = new Uint8Array(Math.max(data.length, op.pos + op.data.length));
  out.set(data);
  out.set(op.data, op.pos);
  return out;
}

// Buffers a live file grew for itself (applyFileOpLive), by the inode that owns them.
const ownedBy = new WeakMap<ArrayBufferLike, object>();

/**
 * {@link applyFileOp} for a file's live contents: a write at the end goes into spare capacity of a buffer the
 * file grew for itself (doubling), so that a long log costs amortised O(1) per append instead of a copy of the
 * whole file (the in-memory lock of `npm run bench -- firmware` measured that copy, tens of µs per append at a
 * few hundred KB, as if it were the lock's). Safe because no view of such a buffer covers bytes past the live
 * length: durable snapshots and disk images are that length or shorter, reads copy, truncation and overwrites
 * copy, and a buffer another file (a rebooted image) shares is never written in place.
 */
function applyFileOpLive(owner: object, data: Uint8Array, op: FileOp): Uint8Array {
  if (op.kind !== 'write' || op.pos !== data.length) return applyFileOp(data, op);
  const end = data.length + op.data.length;
  let buf = data;
  if (data.byteOffset !== 0 || data.buffer.byteLength < end || ownedBy.get(data.buffer) !== owner) {
    buf = new Uint8Array(Math.max(end, 2 * data.length, 4096));
    buf.set(data);
    ownedBy.set(buf.buffer, owner);
  }
  const out = new Uint8Array(buf.buffer, 0, end);
  out.set(op.data, data.length);
  return out;
}

function applyDirOp(entries: Map<string, Inode>, op: DirOp): void {
  if (op.kind === 'link') entries.set(op.name, op.inode);
  else if (op.kind === 'unlink') entries.delete(op.name);
  else {
    entries.delete(op.from);
    entries.set(op.to, op.inode);
  }
}

/** mulberry32: small, fast, good enough to pick cut outcomes reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * In-memory filesystem that models what an SD card keeps across a power cut, for power-cut tests and the
 * hardware testers' fault injection. File data is durable only once fsynced; a create, rename or unlink only
 * once its directory is fsynced (POSIX; ext4 is often kinder, the stores must not rely on it). mkdir is
 * durable at once: the stores create their directory once at first boot and treat a missing directory and an
 * empty one alike, so modelling its loss would test nothing.
 *
 * The power goes at operation `cutAtOperation` or at {@link CrashingStoreFs.powerCut}: that call and every
 * later one (including on handles already open) throw ERR_STORE_POWER_LOST, and the surviving image is frozen.
 * {@link CrashingStoreFs.reboot} returns a fresh filesystem holding exactly that image.
 */
export class CrashingStoreFs implements StoreFs {
  private readonly dirs = new Map<string, DirNode>();
  private readonly random: () => number;
  private readonly mode: TornWriteMode;
  private cutAt: number | undefined;
  private readonly failAt: number | undefined;
  private readonly failWith: StoreErrorCode;
  private ops = 0;
  private frozen: DiskImage | undefined;

  constructor(options: CrashingStoreFsOptions = {}) {
    this.cutAt = options.cutAtOperation;
    this.failAt = options.failAtOperation;
    this.failWith = options.failWith ?? 'ERR_STORE_IO';
    this.random = prng(options.seed ?? 1);
    this.mode = options.tornWrites ?? 'random';
    this.dirs.set('/', new DirNode());
    for (const [dir, files] of options.image ?? []) {
      const node = this.ensureDir(dir);
      node.explicit = true;
      for (const [name, data] of files) {
        const inode = new Inode(data.slice());
        node.current.set(name, inode);
        node.durable.set(name, inode);
      }
    }
  }

  /**
   * A simulated card holding the files of the real directories `dirs` (read through `source`, normally a
   * NodeStoreFs), so that testers can cut the power over a copy of a real lock's stores. Flat: the stores
   * keep no subdirectories. A missing directory is loaded empty.
   */
  static async load(
    source: StoreFs,
    dirs: readonly string[],
    options: Omit<CrashingStoreFsOptions, 'image'> = {},
  ) {
    const image: DiskImage = new Map();
    for (const dir of dirs) {
      const files = new Map<string, Uint8Array>();
      let names: string[] = [];
      try {
        names = await source.readdir(dir);
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'ERR_STORE_NOT_FOUND')) throw err;
      }
      for (const name of names) files.set(name, await source.readFile(posix.join(dir, name)));
      image.set(posix.normalize(dir), files);
    }
    return new CrashingStoreFs({ ...options, image });
  }

  /**
   * Write what this card holds now in the directories `dirs` (durably, through `target`) back to real
   * directories: after a reboot, to hand the survivors of a simulated cut back to a real lock. Only the
   * listed directories are touched, each must be one this card holds (as loaded by {@link CrashingStoreFs.load}),
   * and in each, files the image lacks are removed so that the directory ends up exactly as the image.
   */
  async saveTo(target: StoreFs, dirs: readonly string[]): Promise<void> {
    for (const raw of dirs) {
      const dir = posix.normalize(raw);
      const node = this.dirs.get(dir);
      if (!node?.explicit || dir === '/') {
        throw new StoreError(
          'ERR_STORE_INVALID_ARGUMENT',
          `saveTo: ${raw} is not a store directory of this card`,
        );
      }
      await target.mkdir(dir);
      for (const name of await target.readdir(dir)) {
        if (!node.current.has(name)) await target.unlink(posix.join(dir, name));
      }
      for (const [name, inode] of node.current) {
        const fh = await target.open(posix.join(dir, name), 'w');
        try {
          await fh.write(inode.current);
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      await target.fsyncDir(dir);
    }
  }

  /** Operations attempted so far (the index the next operation will have). */
  get operationCount(): number {
    return this.ops;
  }

  /** True once the power has been cut. */
  get poweredOff(): boolean {
    return this.frozen !== undefined;
  }

  /** Cut the power now (idempotent); later calls throw ERR_STORE_POWER_LOST. */
  powerCut(): void {
    if (this.frozen) return;
    this.frozen = this.survivingImage();
  }

  /** Boot again from what survived the cut (cuts the power first if it is still on). */
  reboot(options: Omit<CrashingStoreFsOptions, 'image'> = {}): CrashingStoreFs {
    this.powerCut();
    return new CrashingStoreFs({ ...options, image: this.frozen });
  }

  /** The bytes the running process would read, or undefined: for tests and the dashboard. */
  peekFile(path: string): Uint8Array | undefined {
    const { dir, name } = this.split(path);
    return this.dirs.get(dir)?.current.get(name)?.current.slice();
  }

  /** XOR a byte of a file, durably, as a failing SD sector would: for corruption tests. */
  corruptByte(path: string, offset: number, xor = 0x01): void {
    const { dir, name } = this.split(path);
    const inode = this.dirs.get(dir)?.current.get(name);
    if (!inode || offset < 0 || offset >= inode.current.length) {
      throw new StoreError('ERR_STORE_INVALID_ARGUMENT', `corruptByte: ${path} has no byte ${offset}`);
    }
    inode.current = inode.current.slice();
    inode.current[offset]! ^= xor;
    if (offset < inode.durable.length) {
      inode.durable = inode.durable.slice();
      inode.durable[offset]! ^= xor;
    }
  }

  async open(path: string, mode: 'w' | 'a'): Promise<StoreFileHandle> {
    this.step();
    const { dir, name } = this.split(path);
    const node = this.dirOrThrow(dir, path);
    let inode = node.current.get(name);
    if (!inode) {
      inode = new Inode(new Uint8Array(0));
      const op: DirOp = { kind: 'link', name, inode };
      applyDirOp(node.current, op);
      node.pending.push(op);
    } else if (mode === 'w') {
      this.fileOp(inode, { kind: 'truncate', length: 0 });
    }
    const target = inode;
    return new CrashingHandle(
      {
        step: () => this.step(),
        length: () => target.current.length,
        apply: (op) => this.fileOp(target, op),
        sync: () => this.syncInode(target),
      },
      mode,
      path,
    );
  }

  async readFile(path: string): Promise<Uint8Array> {
    this.step();
    const { dir, name } = this.split(path);
    const inode = this.dirOrThrow(dir, path).current.get(name);
    if (!inode) throw new StoreError('ERR_STORE_NOT_FOUND', `read ${path} failed: it does not exist`);
    return inode.current.slice();
  }

  async rename(from: string, to: string): Promise<void> {
    this.step();
    const a = this.split(from);
    const b = this.split(to);
    if (a.dir !== b.dir) {
      throw new StoreError(
        'ERR_STORE_INVALID_ARGUMENT',
        `rename ${from} -> ${to}: only within one directory`,
      );
    }
    const node = this.dirOrThrow(a.dir, from);
    const inode = node.current.get(a.name);
    if (!inode) throw new StoreError('ERR_STORE_NOT_FOUND', `rename ${from} failed: it does not exist`);
    const op: DirOp = { kind: 'rename', from: a.name, to: b.name, inode };
    applyDirOp(node.current, op);
    node.pending.push(op);
  }

  async unlink(path: string): Promise<void> {
    this.step();
    const { dir, name } = this.split(path);
    const node = this.dirOrThrow(dir, path);
    if (!node.current.has(name)) {
      throw new StoreError('ERR_STORE_NOT_FOUND', `unlink ${path} failed: it does not exist`);
    }
    const op: DirOp = { kind: 'unlink', name };
    applyDirOp(node.current, op);
    node.pending.push(op);
  }

  async readdir(dir: string): Promise<string[]> {
    this.step();
    const d = posix.normalize(dir);
    return [...this.dirOrThrow(d, d).current.keys()].sort();
  }

  async mkdir(dir: string): Promise<void> {
    this.step();
    this.ensureDir(posix.normalize(dir)).explicit = true;
  }

  async fsyncDir(dir: string): Promise<void> {
    this.step();
    const d = posix.normalize(dir);
    const node = this.dirOrThrow(d, d);
    for (const op of node.pending) applyDirOp(node.durable, op);
    node.pending = [];
  }

  /** Counts one operation and cuts the power when it is the chosen one. */
  private step(): void {
    if (this.frozen) throw this.powerLost();
    if (this.ops === this.cutAt) {
      this.powerCut();
      throw this.powerLost();
    }
    this.ops++;
    if (this.ops - 1 === this.failAt) {
      throw new StoreError(this.failWith, `simulated failure (${this.failWith}) of operation ${this.failAt}`);
    }
  }

  private fileOp(inode: Inode, op: FileOp): void {
    inode.current = applyFileOpLive(inode, inode.current, op);
    // A pending write keeps its bytes for the power-cut image: a view of the file's own buffer where they were
    // just written, not a copy (issue 8, decision cost: one allocation fewer per append). That range of a
    // file buffer is never written again: applyFileOpLive only writes past a buffer's current end, and every
    // other change (truncate, overwrite, corruptByte) builds a new buffer.
    inode.pending.push(
      op.kind === 'write'
        ? { kind: 'write', pos: op.pos, data: inode.current.subarray(op.pos, op.pos + op.data.length) }
        : op,
    );
  }

  private syncInode(inode: Inode): void {
    inode.durable = inode.current;
    inode.pending = [];
  }

  private powerLost(): StoreError {
    return new StoreError(
      'ERR_STORE_POWER_LOST',
      `simulated power cut at operation ${this.cutAt ?? this.ops}`,
    );
  }

  private pick(n: number): number {
    if (this.mode === 'lose') return 0;
    if (this.mode === 'keep') return n;
    return Math.floor(this.random() * (n + 1));
  }

  private survivingImage(): DiskImage {
    const contents = new Map<Inode, Uint8Array>();
    const surviving = (inode: Inode): Uint8Array => {
      let data = contents.get(inode);
      if (data) return data;
      data = inode.durable;
      const k = this.pick(inode.pending.length);
      for (let i = 0; i < k; i++) data = applyFileOp(data, inode.pending[i]!);
      const next = inode.pending[k];
      if (this.mode === 'random' && next?.kind === 'write' && this.random() < 0.5) {
        // A torn write: some leading bytes made it; with delayed allocation the extent may exist zero-filled.
        const keep = Math.floor(this.random() * next.data.length);
        const torn = this.random() < 0.5 ? next.data.slice(0, keep) : new Uint8Array(next.data.length);
        if (torn.length === next.data.length) torn.set(next.data.subarray(0, keep));
        data = applyFileOp(data, { kind: 'write', pos: next.pos, data: torn });
      }
      contents.set(inode, data);
      return data;
    };
    const image: DiskImage = new Map();
    for (const [path, node] of this.dirs) {
      // Ancestors created on the way are recreated by the next boot; listing them would make them store dirs.
      if (!node.explicit && node.durable.size === 0 && node.pending.length === 0) continue;
      const entries = new Map(node.durable);
      const k = this.pick(node.pending.length);
      for (let i = 0; i < k; i++) applyDirOp(entries, node.pending[i]!);
      const files = new Map<string, Uint8Array>();
      for (const [name, inode] of entries) files.set(name, surviving(inode).slice());
      image.set(path, files);
    }
    return image;
  }

  private split(path: string): { dir: string; name: string } {
    const p = posix.normalize(path);
    return { dir: posix.dirname(p), name: posix.basename(p) };
  }

  private dirOrThrow(dir: string, path: string): DirNode {
    const node = this.dirs.get(dir);
    if (!node) throw new StoreError('ERR_STORE_NOT_FOUND', `${path}: directory ${dir} does not exist`);
    return node;
  }

  private ensureDir(dir: string): DirNode {
    let node = this.dirs.get(dir);
    if (node) return node;
    if (dir !== '/') this.ensureDir(posix.dirname(dir));
    node = new DirNode();
    this.dirs.set(dir, node);
    return node;
  }
}

/** What a handle may do to its file, bound to one inode by CrashingStoreFs.open(). */
interface InodeAccess {
  step(): void;
  length(): number;
  apply(op: FileOp): void;
  sync(): void;
}

class CrashingHandle implements StoreFileHandle {
  private position = 0;
  private closed = false;

  constructor(
    private readonly file: InodeAccess,
    private readonly mode: 'w' | 'a',
    private readonly path: string,
  ) {}

  async write(data: Uint8Array): Promise<void> {
    this.file.step();
    this.checkOpen();
    const pos = this.mode === 'a' ? this.file.length() : this.position;
    // The card keeps no reference to the caller's buffer: fileOp records the bytes as they now are in the file.
    this.file.apply({ kind: 'write', pos, data });
    this.position = pos + data.length;
  }

  async sync(): Promise<void> {
    this.file.step();
    this.checkOpen();
    this.file.sync();
  }

  async truncate(length: number): Promise<void> {
    this.file.step();
    this.checkOpen();
    this.file.apply({ kind: 'truncate', length });
    this.position = Math.min(this.position, length);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.file.step();
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError('ERR_STORE_CLOSED', `${this.path}: file handle used after close()`);
  }
}
