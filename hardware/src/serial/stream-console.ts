import type { Duplex } from 'node:stream';
import createDebug from 'debug';
import { HardwareError } from '../interfaces.js';
import type { SerialConsole } from '../interfaces.js';
import { Listeners } from '../listeners.js';
import { LineDecoder, toTerminalNewlines } from './line-decoder.js';

const debug = createDebug('tandem:hw:serial');

/** Default maximum input line length in bytes: long enough for a provisioning line carrying keys. */
export const DEFAULT_MAX_LINE_LENGTH = 4096;

/**
 * The line discipline shared by every console: frames input bytes into lines, writes refusals back to the
 * sender, converts output newlines for terminals. Transports hand it an open Duplex.
 */
export class DuplexLineDiscipline {
  readonly #lines = new Listeners<string>();
  readonly #errors = new Listeners<HardwareError>();
  readonly #decoder: LineDecoder;
  #stream: Duplex | undefined;
  #detach: (() => void) | undefined;

  constructor(maxLineLength: number) {
    this.#decoder = new LineDecoder(maxLineLength);
  }

  get attached(): boolean {
    return this.#stream !== undefined;
  }

  attach(stream: Duplex, describe: string): void {
    this.detach();
    this.#decoder.reset();
    const onData = (chunk: Buffer | string): void => {
      this.#receive(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    };
    const onError = (error: Error): void => {
      this.#errors.emit(new HardwareError('ERR_HW_IO', `${describe}: ${error.message}`, { cause: error }));
    };
    const onClose = (): void => {
      if (this.#stream !== stream) return;
      this.#errors.emit(
        new HardwareError(
          'ERR_HW_IO',
          `${describe} closed underneath the console (cable unplugged or peer gone); reopen it`,
        ),
      );
      this.detach();
    };
    stream.on('data', onData);
    stream.on('error', onError);
    stream.on('close', onClose);
    this.#stream = stream;
    this.#detach = () => {
      stream.off('data', onData);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
  }

  detach(): void {
    this.#detach?.();
    this.#detach = undefined;
    this.#stream = undefined;
  }

  onLine(listener: (line: string) => void): () => void {
    return this.#lines.add(listener);
  }

  onError(listener: (error: HardwareError) => void): () => void {
    return this.#errors.add(listener);
  }

  write(text: string): Promise<void> {
    return this.#writeRaw(toTerminalNewlines(text));
  }

  #writeRaw(text: string): Promise<void> {
    const stream = this.#stream;
    if (stream === undefined) {
      return Promise.reject(
        new HardwareError('ERR_HW_NOT_OPEN', 'serial console not open: call open() first'),
      );
    }
    return new Promise((resolve, reject) => {
      stream.write(Buffer.from(text, 'utf8'), (error) => {
        if (error)
          reject(new HardwareError('ERR_HW_IO', `serial write failed: ${error.message}`, { cause: error }));
        else resolve();
      });
    });
  }

  #receive(chunk: Buffer): void {
    for (const item of this.#decoder.push(chunk)) {
      if (item.kind === 'line') {
        this.#lines.emit(item.text);
      } else {
        const message =
          item.kind === 'too-long'
            ? `ERR ERR_HW_INVALID_ARGUMENT line longer than ${item.maxLineLength} bytes, discarded up to the next end of line\n`
            : 'ERR ERR_HW_INVALID_ARGUMENT line is not valid UTF-8, discarded; set the terminal to UTF-8\n';
        debug('input refused: %s', message.trim());
        this.#writeRaw(toTerminalNewlines(message)).catch((error: unknown) =>
          debug('cannot report refusal: %O', error),
        );
      }
    }
  }
}

export interface StreamConsoleOptions {
  /** Any Duplex carrying the console's bytes (an in-memory pair in tests, a socket, a child's stdio). */
  readonly stream: Duplex;
  readonly maxLineLength?: number;
  /** End the stream on close(); default false (the stream's owner decides its life). */
  readonly endOnClose?: boolean;
}

/** Serial console over any Node Duplex, for in-process use. */
export class StreamConsole implements SerialConsole {
  readonly #stream: Duplex;
  readonly #endOnClose: boolean;
  readonly #discipline: DuplexLineDiscipline;

  constructor(options: StreamConsoleOptions) {
    this.#stream = options.stream;
    this.#endOnClose = options.endOnClose ?? false;
    this.#discipline = new DuplexLineDiscipline(options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH);
  }

  async open(): Promise<void> {
    if (this.#discipline.attached) return;
    if (this.#stream.destroyed) {
      throw new HardwareError(
        'ERR_HW_UNAVAILABLE',
        'stream console: the stream is already destroyed; pass a fresh one',
      );
    }
    this.#discipline.attach(this.#stream, 'stream console');
  }

  onLine(listener: (line: string) => void): () => void {
    return this.#discipline.onLine(listener);
  }

  onError(listener: (error: HardwareError) => void): () => void {
    return this.#discipline.onError(listener);
  }

  write(text: string): Promise<void> {
    return this.#discipline.write(text);
  }

  async close(): Promise<void> {
    if (!this.#discipline.attached) return;
    this.#discipline.detach();
    if (this.#endOnClose) this.#stream.end();
  }
}
