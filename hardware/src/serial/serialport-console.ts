import type { Duplex } from 'node:stream';
import createDebug from 'debug';
import { HardwareError } from '../interfaces.js';
import type { SerialConsole } from '../interfaces.js';
import { DEFAULT_MAX_LINE_LENGTH, DuplexLineDiscipline } from './stream-console.js';

const debug = createDebug('tandem:hw:serial');

/** An open serial port as the console needs it: a Duplex that can be closed. */
export interface OpenedPort {
  readonly stream: Duplex;
  close(): Promise<void>;
}

/** Opens a port; the default loads `serialport` lazily, tests pass {@link mockPortOpener}. */
export type PortOpener = (options: { path: string; baudRate: number }) => Promise<OpenedPort>;

export interface SerialportConsoleOptions {
  /** Default `/dev/serial0`, the Pi's primary UART alias. */
  readonly path?: string;
  /** Default 115200. */
  readonly baudRate?: number;
  readonly maxLineLength?: number;
  readonly openPort?: PortOpener;
}

interface PortLike extends Duplex {
  open(callback: (error: Error | null) => void): void;
  close(callback: (error: Error | null) => void): void;
  readonly isOpen: boolean;
}

async function openWith(port: PortLike, path: string): Promise<OpenedPort> {
  await new Promise<void>((resolve, reject) => {
    port.open((error) => (error ? reject(portError(path, error)) : resolve()));
  });
  return {
    stream: port,
    close: () =>
      new Promise<void>((resolve) => {
        if (!port.isOpen) {
          resolve();
          return;
        }
        port.close((error) => {
          if (error) debug('close %s: %O', path, error);
          resolve();
        });
      }),
  };
}

/** The real UART through `serialport`, imported only when a port is opened (it loads a native binding). */
export const nativePortOpener: PortOpener = async ({ path, baudRate }) => {
  const mod = await import('serialport').catch((error: unknown) => {
    throw new HardwareError(
      'ERR_HW_UNAVAILABLE',
      'cannot load the serialport package or its native binding: run npm install on this machine (ARMv6 needs a build from source: apt install build-essential python3)',
      { cause: error },
    );
  });
  return openWith(new mod.SerialPort({ path, baudRate, autoOpen: false }) as unknown as PortLike, path);
};

/**
 * Ports of `@serialport/binding-mock`, for tests and demos without a UART. Create them first with
 * `(await loadMockBinding()).createPort(path, { echo, record })`.
 */
export const mockPortOpener: PortOpener = async ({ path, baudRate }) => {
  const mod = await import('serialport');
  return openWith(new mod.SerialPortMock({ path, baudRate, autoOpen: false }) as unknown as PortLike, path);
};

/**
 * The `MockBinding` instance that `serialport`'s SerialPortMock uses. `@serialport/binding-mock` ships
 * separate CommonJS and ES module builds, so `import { MockBinding }` from an ES module gets a second copy
 * whose ports SerialPortMock cannot see; create mock ports through this one.
 */
export async function loadMockBinding(): Promise<{
  createPort(path: string, options?: { echo?: boolean; record?: boolean; readyData?: Buffer }): void;
  reset(): void;
}> {
  return (await import('serialport')).SerialPortMock.binding;
}

/**
 * Serial console on a UART (the Pi's `/dev/serial0` at 115200 by default) through the `serialport` package.
 * Input is framed into lines by the shared line discipline (CR, LF, CRLF; maximum length; UTF-8 only).
 */
export class SerialportConsole implements SerialConsole {
  readonly path: string;
  readonly baudRate: number;
  readonly #openPort: PortOpener;
  readonly #discipline: DuplexLineDiscipline;
  #port: OpenedPort | undefined;
  #opening: Promise<void> | undefined;

  constructor(options: SerialportConsoleOptions = {}) {
    this.path = options.path ?? '/dev/serial0';
    this.baudRate = options.baudRate ?? 115200;
    this.#openPort = options.openPort ?? nativePortOpener;
    this.#discipline = new DuplexLineDiscipline(options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH);
  }

  open(): Promise<void> {
    if (this.#port !== undefined) return Promise.resolve();
    this.#opening ??= (async () => {
      try {
        const port = await this.#openPort({ path: this.path, baudRate: this.baudRate });
        this.#port = port;
        this.#discipline.attach(port.stream, `serial port ${this.path}`);
        debug('console on %s at %d baud', this.path, this.baudRate);
      } finally {
        this.#opening = undefined;
      }
    })();
    return this.#opening;
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
    if (this.#opening !== undefined) await this.#opening.catch(() => undefined);
    const port = this.#port;
    this.#port = undefined;
    this.#discipline.detach();
    await port?.close();
  }
}

/** Map an open failure to a coded error that says how to fix it on a Pi. */
function portError(path: string, error: Error): HardwareError {
  const text = error.message;
  if (/ENOENT|no such file|does not exist/i.test(text)) {
    return new HardwareError(
      'ERR_HW_UNAVAILABLE',
      `serial port ${path} does not exist: on a Pi enable the UART (enable_uart=1 in /boot/firmware/config.txt) and reboot; in tests create it first (MockBinding.createPort) (${text})`,
      { cause: error },
    );
  }
  if (/EACCES|permission denied/i.test(text)) {
    return new HardwareError(
      'ERR_HW_UNAVAILABLE',
      `no permission on ${path}: add the user to the dialout group (sudo usermod -aG dialout $USER, then log in again) (${text})`,
      { cause: error },
    );
  }
  if (/EBUSY|locked|busy/i.test(text)) {
    return new HardwareError(
      'ERR_HW_BUSY',
      `${path} is in use: stop the login console on it (sudo systemctl disable --now serial-getty@serial0 and remove console=serial0,115200 from /boot/firmware/cmdline.txt) (${text})`,
      { cause: error },
    );
  }
  return new HardwareError('ERR_HW_IO', `cannot open serial port ${path}: ${text}`, { cause: error });
}
