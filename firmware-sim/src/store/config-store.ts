import { AtomicFile } from './atomic-file.js';
import { StoreError } from './errors.js';
import { SerialQueue } from './serial-queue.js';
import type { StoreFs } from './store-fs.js';

/** Default bound on the encoded config file. */
export const CONFIG_MAX_BYTES = 64 * 1024;

/** A config value: JSON-compatible, plus raw bytes (keys, certificates). */
export type ConfigValue =
  null | boolean | number | string | Uint8Array | ConfigValue[] | { [key: string]: ConfigValue };

/** Options of {@link ConfigStore.open}. */
export interface ConfigStoreOptions {
  /** File name in the directory (default 'config.bin'). */
  name?: string;
  /** Default {@link CONFIG_MAX_BYTES}; a write that would exceed it is ERR_STORE_FULL. */
  maxBytes?: number;
}

const BYTES_TAG = '$bytes';

function toJson(v: ConfigValue, path: string): unknown {
  if (v instanceof Uint8Array)
    return { [BYTES_TAG]: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (Array.isArray(v)) return v.map((x, i) => toJson(x, `${path}[${i}]`));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      // The tag would be read back as bytes; refuse it rather than change the value on the way through.
      if (k === BYTES_TAG)
        throw new StoreError('ERR_STORE_INVALID_ARGUMENT', `config ${path}: key "${BYTES_TAG}" is reserved`);
      out[k] = toJson(x, `${path}.${k}`);
    }
    return out;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) {
    throw new StoreError('ERR_STORE_INVALID_ARGUMENT', `config ${path}: ${v} is not representable`);
  }
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  throw new StoreError('ERR_STORE_INVALID_ARGUMENT', `config ${path}: unsupported value of type ${typeof v}`);
}

function fromJson(v: unknown): ConfigValue {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const tag = o[BYTES_TAG];
    if (typeof tag === 'string' && Object.keys(o).length === 1)
      return new Uint8Array(Buffer.from(tag, 'base64'));
    const out: { [key: string]: ConfigValue } = {};
    for (const [k, x] of Object.entries(o)) out[k] = fromJson(x);
    return out;
  }
  return v as ConfigValue;
}

/**
 * Key-value store for trust anchors, owner keys and settings, on one {@link AtomicFile}: every change
 * rewrites the whole (small) file, so a power cut leaves the old or the new map, and {@link ConfigStore.setMany}
 * changes several keys atomically (rotating a trust anchor and its id together). Values are JSON plus bytes;
 * on disk, JSON with bytes as `{"$bytes": base64}` inside the CRC-checked envelope.
 */
export class ConfigStore {
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly file: AtomicFile,
    private values: Map<string, ConfigValue>,
    private readonly maxBytes: number,
  ) {}

  static async open(fs: StoreFs, dir: string, options: ConfigStoreOptions = {}): Promise<ConfigStore> {
    await fs.mkdir(dir);
    const maxBytes = options.maxBytes ?? CONFIG_MAX_BYTES;
    const file = new AtomicFile(fs, dir, options.name ?? 'config.bin', { magic: 'TDCF', maxBytes });
    const raw = await file.read();
    const values = new Map<string, ConfigValue>();
    if (raw) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
      } catch (err) {
        throw new StoreError('ERR_STORE_CORRUPT', `${file.path}: not JSON`, { cause: err });
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new StoreError('ERR_STORE_CORRUPT', `${file.path}: not a JSON object`);
      }
      for (const [k, v] of Object.entries(parsed)) values.set(k, fromJson(v));
    }
    return new ConfigStore(file, values, maxBytes);
  }

  get(key: string): ConfigValue | undefined {
    return this.values.get(key);
  }

  /** The value of `key` if it is bytes, else undefined. */
  getBytes(key: string): Uint8Array | undefined {
    const v = this.values.get(key);
    return v instanceof Uint8Array ? v : undefined;
  }

  keys(): string[] {
    return [...this.values.keys()];
  }

  /** Set one key; resolves once durable. */
  set(key: string, value: ConfigValue): Promise<void> {
    return this.setMany({ [key]: value });
  }

  /** Set several keys in one atomic write (`undefined` deletes); resolves once durable. */
  setMany(changes: Record<string, ConfigValue | undefined>): Promise<void> {
    return this.queue.run(async () => {
      const next = new Map(this.values);
      for (const [k, v] of Object.entries(changes)) {
        if (v === undefined) next.delete(k);
        else next.set(k, v);
      }
      const obj: Record<string, unknown> = {};
      for (const [k, v] of next) obj[k] = toJson(v, k);
      const bytes = new TextEncoder().encode(JSON.stringify(obj));
      if (bytes.length > this.maxBytes) {
        throw new StoreError(
          'ERR_STORE_FULL',
          `config would be ${bytes.length} bytes, limit ${this.maxBytes}`,
        );
      }
      await this.file.write(bytes);
      this.values = next;
    });
  }

  /** Delete one key; resolves once durable. */
  delete(key: string): Promise<void> {
    return this.setMany({ [key]: undefined });
  }
}
