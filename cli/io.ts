/**
 * Input and output of the `tandem` CLI: token bytes from a file or stdin in hex, base64url or raw binary;
 * output in the same three forms; JWK files; key files created with an exact mode and never overwritten by
 * accident. Everything here is plumbing: no protocol rule lives in this file.
 */
import { chmod, open, readFile, unlink } from 'node:fs/promises';
import type { JsonWebKey } from 'node:crypto';
import { CliError } from './args.js';
import type { CliStreams } from './args.js';
import { privateKeyFromJwk } from '../protocol/src/keys.js';
import type { PrivateKey } from '../protocol/src/keys.js';

/** Encodings the CLI reads and writes. */
export const FORMATS = ['hex', 'base64url', 'binary'] as const;
export type Format = (typeof FORMATS)[number];

/** Reads a whole file, or stdin for `-`. Throws ERR_IO naming the file. */
export async function readSource(source: string, streams: CliStreams): Promise<Uint8Array> {
  if (source === '-') {
    // Waiting for a token to be typed into a terminal looks like a hang; nobody types CBOR.
    if (streams.stdin.isTTY) {
      throw new CliError('ERR_USAGE', 'no input: give a file, or pipe the token into stdin');
    }
    const chunks: Buffer[] = [];
    for await (const chunk of streams.stdin)
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return new Uint8Array(Buffer.concat(chunks));
  }
  try {
    return new Uint8Array(await readFile(source));
  } catch (cause) {
    throw new CliError('ERR_IO', `cannot read ${source}: ${reason(cause)}`, { cause });
  }
}

function reason(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'EEXIST') return 'file exists';
  return e instanceof Error ? e.message : String(e);
}

// Printable ASCII plus whitespace: anything else means the input is raw bytes. A CBOR token starts with
// 0x84 (array of 4) or a tag byte 0xd2/0xd8, so a binary token is never mistaken for text.
const TEXT = /^[\x20-\x7e\t\r\n]*$/;
const HEX_DIGITS = /^(?:0x)?[0-9a-fA-F]+$/;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/**
 * Decodes input bytes. With `format` the encoding is forced; otherwise it is detected: bytes that are not
 * all printable text are binary; text of hex digits only (optional `0x`) is hex, the CLI's default output,
 * and an odd count of them is refused as truncated (a real base64url token is never all hex digits); other
 * text in the base64url alphabet is base64url (standard base64 `+/` is accepted too).
 * Whitespace inside text is ignored, so wrapped output can be pasted back. Throws ERR_INPUT naming `label`.
 */
export function decodeInput(raw: Uint8Array, label: string, format?: Format): Uint8Array {
  if (raw.length === 0) throw new CliError('ERR_INPUT', `${label} is empty`);
  const asText = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
  const kind: Format =
    format ?? (TEXT.test(asText) ? (HEX_DIGITS.test(squeeze(asText)) ? 'hex' : 'base64url') : 'binary');
  if (kind === 'binary') return raw;
  const text = squeeze(asText);
  if (text === '') throw new CliError('ERR_INPUT', `${label} is empty`);
  if (kind === 'hex') {
    const digits = text.replace(/^0x/, '');
    if (!HEX_DIGITS.test(digits)) throw new CliError('ERR_INPUT', `${label} is not hex`);
    if (digits.length % 2 === 1) {
      throw new CliError(
        'ERR_INPUT',
        `${label} has an odd number of hex digits (${digits.length}); is it truncated?`,
      );
    }
    return new Uint8Array(Buffer.from(digits, 'hex'));
  }
  const b64 = text.replace(/\+/g, '-').replace(/\//g, '_');
  // A base64url string of length 1 mod 4 cannot come from any bytes.
  if (!BASE64URL.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) {
    throw new CliError(
      'ERR_INPUT',
      `${label} is neither hex nor base64url${format === undefined ? ' (use --in-format binary for raw bytes)' : ''}`,
    );
  }
  return new Uint8Array(Buffer.from(b64, 'base64url'));
}

function squeeze(text: string): string {
  return text.replace(/\s+/g, '');
}

/** Reads and decodes one token (or message) from a file or stdin. */
export async function readBytes(source: string, streams: CliStreams, format?: Format): Promise<Uint8Array> {
  return decodeInput(await readSource(source, streams), source === '-' ? 'stdin' : source, format);
}

/** Encodes bytes as text in `format`; binary has no text form. */
export function encodeText(bytes: Uint8Array, format: Exclude<Format, 'binary'>): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(format);
}

/**
 * Writes bytes to stdout: hex or base64url with a newline, or raw. Raw bytes are refused on a terminal,
 * where they would garble it; redirect or pipe them instead.
 */
export function writeBytes(bytes: Uint8Array, format: Format, streams: CliStreams): void {
  if (format === 'binary') {
    if (streams.stdout.isTTY) {
      throw new CliError(
        'ERR_USAGE',
        'refusing to write binary to a terminal; redirect stdout to a file or use --format hex',
      );
    }
    streams.stdout.write(bytes);
    return;
  }
  streams.stdout.write(encodeText(bytes, format) + '\n');
}

/** Reads a JWK from a JSON file. Throws ERR_IO when unreadable, ERR_INPUT when not a JSON object. */
export async function readJwk(path: string, option: string): Promise<JsonWebKey> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new CliError('ERR_IO', `--${option}: cannot read ${path}: ${reason(cause)}`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CliError('ERR_INPUT', `--${option}: ${path} is not JSON (expected a JWK)`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CliError('ERR_INPUT', `--${option}: ${path} is not a JSON object (expected a JWK)`);
  }
  return value as JsonWebKey;
}

/** Fails with ERR_IO when `path` exists (and `force` is off), so that a key is never overwritten by accident. */
export async function refuseExisting(path: string, force: boolean): Promise<void> {
  if (force) return;
  try {
    const h = await open(path, 'r');
    await h.close();
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') return;
  }
  throw new CliError('ERR_IO', `${path} already exists; use --force to replace it`);
}

/**
 * Creates `path` with exactly `mode` and writes `data`. The file is created anew (an existing one is
 * unlinked first when `force` is on): opening an existing file keeps its old mode, and truncating a
 * world-readable file and then narrowing its mode would expose a private key for a moment. The mode is set
 * again after creation because the umask may have narrowed it (a public key should stay 0644).
 */
export async function writeNewFile(path: string, data: string, mode: number, force: boolean): Promise<void> {
  try {
    if (force)
      await unlink(path).catch((e: unknown) => {
        if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
      });
    const h = await open(path, 'wx', mode);
    try {
      await h.writeFile(data);
      await h.sync();
    } finally {
      await h.close();
    }
    await chmod(path, mode);
  } catch (cause) {
    throw new CliError(
      'ERR_IO',
      `cannot write ${path}: ${reason(cause)}${reason(cause) === 'file exists' ? '; use --force to replace it' : ''}`,
      {
        cause,
      },
    );
  }
}

/** Reads a private JWK (with "d") from `path`; `option` names the command-line option in messages. */
export async function readPrivateJwk(
  path: string,
  option: string,
): Promise<{ key: PrivateKey; jwk: JsonWebKey }> {
  const jwk = await readJwk(path, option);
  if (typeof jwk.d !== 'string') {
    throw new CliError(
      'ERR_INPUT',
      `--${option}: ${path} is a public JWK; a private one (with "d") is needed`,
    );
  }
  return { key: privateKeyFromJwk(jwk), jwk };
}
