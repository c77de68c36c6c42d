import type { StoreFileHandle, StoreFs } from './store-fs.js';

/**
 * A {@link StoreFs} that counts the fsyncs (of files and of directories) made through it and names what each
 * synced, in order, delegating everything to another StoreFs (the real one, `NodeStoreFs`, in tests and
 * `npm run bench -- firmware`). How [TANDEM-USES-6] is checked: fsyncs are counted, not timed.
 */
export class CountingStoreFs implements StoreFs {
  /** Every fsync so far: the file's path, or the directory's path with a trailing `/`. */
  readonly synced: string[] = [];

  constructor(private readonly fs: StoreFs) {}

  async open(path: string, mode: 'w' | 'a'): Promise<StoreFileHandle> {
    const h = await this.fs.open(path, mode);
    const synced = this.synced;
    return {
      write: (bytes) => h.write(bytes),
      sync: () => {
        synced.push(path);
        return h.sync();
      },
      truncate: (length) => h.truncate(length),
      close: () => h.close(),
    };
  }

  readFile(path: string): Promise<Uint8Array> {
    return this.fs.readFile(path);
  }

  rename(from: string, to: string): Promise<void> {
    return this.fs.rename(from, to);
  }

  unlink(path: string): Promise<void> {
    return this.fs.unlink(path);
  }

  readdir(dir: string): Promise<string[]> {
    return this.fs.readdir(dir);
  }

  mkdir(dir: string): Promise<void> {
    return this.fs.mkdir(dir);
  }

  fsyncDir(dir: string): Promise<void> {
    this.synced.push(`${dir}/`);
    return this.fs.fsyncDir(dir);
  }
}
