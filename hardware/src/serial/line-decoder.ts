/**
 * Byte-to-line framing for the serial console, independent of the transport. Lines end at CR, LF or CRLF
 * (a CRLF counts once, even split across chunks); terminals differ in what Enter sends. A line longer than
 * `maxLineLength` bytes is discarded as soon as it overflows (never buffered without bound) and reported
 * once; a line that is not valid UTF-8 is discarded and reported. Backspace (BS or DEL) removes the last
 * character, since a person at picocom or screen edits in place.
 */

/** What the decoder produced for one terminated (or overflowing) line. */
export type DecodedLine =
  | { readonly kind: 'line'; readonly text: string }
  | { readonly kind: 'too-long'; readonly maxLineLength: number }
  | { readonly kind: 'invalid-utf8' };

const CR = 0x0d;
const LF = 0x0a;
const BS = 0x08;
const DEL = 0x7f;

export class LineDecoder {
  readonly maxLineLength: number;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });
  #buffer: Buffer;
  #length = 0;
  #afterCr = false;
  #discarding = false;

  constructor(maxLineLength = 1024) {
    if (!Number.isInteger(maxLineLength) || maxLineLength < 1) {
      throw new RangeError(`maxLineLength must be a positive integer, got ${maxLineLength}`);
    }
    this.maxLineLength = maxLineLength;
    this.#buffer = Buffer.alloc(maxLineLength);
  }

  /** Feed received bytes; returns the lines (and refusals) they complete, in order. */
  push(chunk: Uint8Array): DecodedLine[] {
    const out: DecodedLine[] = [];
    for (const byte of chunk) {
      if (byte === LF && this.#afterCr) {
        this.#afterCr = false;
        continue;
      }
      this.#afterCr = byte === CR;
      if (byte === CR || byte === LF) {
        this.#endLine(out);
        continue;
      }
      if (this.#discarding) continue;
      if (byte === BS || byte === DEL) {
        this.#backspace();
        continue;
      }
      if (this.#length >= this.maxLineLength) {
        this.#discarding = true;
        this.#length = 0;
        out.push({ kind: 'too-long', maxLineLength: this.maxLineLength });
        continue;
      }
      this.#buffer[this.#length++] = byte;
    }
    return out;
  }

  /** Drop a partial line (on close or reopen). */
  reset(): void {
    this.#length = 0;
    this.#afterCr = false;
    this.#discarding = false;
  }

  #endLine(out: DecodedLine[]): void {
    if (this.#discarding) {
      this.#discarding = false;
      return;
    }
    const bytes = this.#buffer.subarray(0, this.#length);
    this.#length = 0;
    try {
      out.push({ kind: 'line', text: this.#decoder.decode(bytes) });
    } catch {
      out.push({ kind: 'invalid-utf8' });
    }
  }

  #backspace(): void {
    // Remove UTF-8 continuation bytes (10xxxxxx) and then the lead byte, so a whole character goes.
    while (this.#length > 0 && ((this.#buffer[this.#length - 1] ?? 0) & 0xc0) === 0x80) this.#length--;
    if (this.#length > 0) this.#length--;
  }
}

/** Turn lone LF into CRLF for a terminal, leaving existing CRLF alone. */
export function toTerminalNewlines(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}
