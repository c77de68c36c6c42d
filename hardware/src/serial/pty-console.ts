import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import createDebug from 'debug';
import { SystemClock } from '../clock.js';
import type { Clock } from '../clock.js';
import { NodeProcessSpawner } from '../process-spawner.js';
import type { ProcessSpawner, SpawnedProcess } from '../process-spawner.js';
import { HardwareError } from '../interfaces.js';
import type { SerialConsole } from '../interfaces.js';
import { Listeners } from '../listeners.js';
import { SerialportConsole, nativePortOpener } from './serialport-console.js';
import type { PortOpener } from './serialport-console.js';

const debug = createDebug('tandem:hw:serial');

export interface PtyConsoleOptions {
  /** Folder for the two links; default a fresh temporary folder, removed on close(). */
  readonly dir?: string;
  /** Link names inside `dir`; defaults 'lock' (this console's side) and 'tester' (the side to attach to). */
  readonly linkName?: string;
  readonly peerLinkName?: string;
  readonly socat?: string;
  readonly spawner?: ProcessSpawner;
  readonly openPort?: PortOpener;
  readonly maxLineLength?: number;
  /** How long socat may take to create the pair; default 5000 ms. */
  readonly startTimeoutMs?: number;
  readonly clock?: Clock;
}

/**
 * Serial console on a pseudo-terminal pair made by socat, so that a simulated lock has a console a tester
 * can attach to exactly like the Pi's UART: `picocom -b 115200 <peerPath>` or `screen <peerPath>`.
 * One side is opened with `serialport` (the same code path as the UART); the other side's path is
 * {@link PtyConsole.peerPath}. close() kills socat.
 */
export class PtyConsole implements SerialConsole {
  readonly #options: PtyConsoleOptions;
  readonly #spawner: ProcessSpawner;
  readonly #clock: Clock;
  readonly #lines = new Listeners<string>();
  readonly #errors = new Listeners<HardwareError>();
  #socat: SpawnedProcess | undefined;
  #console: SerialportConsole | undefined;
  #dir: string | undefined;
  #ownsDir = false;
  #peerPath: string | undefined;
  #path: string | undefined;
  #unsubscribe: (() => void)[] = [];
  #closing = false;
  #killOnExit: (() => void) | undefined;

  constructor(options: PtyConsoleOptions = {}) {
    this.#options = options;
    this.#spawner = options.spawner ?? new NodeProcessSpawner();
    this.#clock = options.clock ?? new SystemClock({ unref: true });
  }

  /** The pseudo-terminal a tester attaches to; defined after open(). */
  get peerPath(): string | undefined {
    return this.#peerPath;
  }

  /** This console's own side; defined after open(). */
  get path(): string | undefined {
    return this.#path;
  }

  async open(): Promise<void> {
    if (this.#console !== undefined) return;
    this.#closing = false;
    this.#ownsDir = this.#options.dir === undefined;
    const dir = this.#options.dir ?? (await mkdtemp(join(tmpdir(), 'tandem-pty-')));
    this.#dir = dir;
    const path = join(dir, this.#options.linkName ?? 'lock');
    const peerPath = join(dir, this.#options.peerLinkName ?? 'tester');
    const args = ['-d', '-d', `pty,raw,echo=0,link=${path}`, `pty,raw,echo=0,link=${peerPath}`];
    debug('spawn socat %o', args);
    const socat = this.#spawner.spawn(this.#options.socat ?? 'socat', args);
    this.#socat = socat;
    // socat is a child of this process but outlives it: a lock process that ends without close() (its
    // shutdown cut short after 5 s because the radio or broker it was talking to is gone, a fatal error,
    // process.exit anywhere) would leave the pseudo-terminal pair and its socat behind for good. 'exit'
    // hooks run synchronously on every such path; kill() is synchronous too.
    this.#killOnExit = () => socat.kill('SIGTERM');
    process.once('exit', this.#killOnExit);
    try {
      await this.#waitReady(socat);
      const console = new SerialportConsole({
        path,
        openPort: this.#options.openPort ?? nativePortOpener,
        ...(this.#options.maxLineLength === undefined ? {} : { maxLineLength: this.#options.maxLineLength }),
      });
      await console.open();
      this.#console = console;
      this.#unsubscribe = [
        console.onLine((l) => this.#lines.emit(l)),
        console.onError((e) => this.#errors.emit(e)),
      ];
    } catch (error) {
      await this.#teardown();
      throw error;
    }
    this.#path = path;
    this.#peerPath = peerPath;
    void socat.exited.then((exit) => {
      if (this.#closing || this.#socat !== socat) return;
      this.#errors.emit(
        new HardwareError(
          'ERR_HW_IO',
          `socat exited (${exit.code ?? exit.signal}): the pseudo-terminal pair is gone; reopen the console`,
        ),
      );
    });
    debug('pty console: lock side %s, tester side %s', path, peerPath);
  }

  onLine(listener: (line: string) => void): () => void {
    return this.#lines.add(listener);
  }

  onError(listener: (error: HardwareError) => void): () => void {
    return this.#errors.add(listener);
  }

  write(text: string): Promise<void> {
    if (this.#console === undefined) {
      return Promise.reject(new HardwareError('ERR_HW_NOT_OPEN', 'pty console not open: call open() first'));
    }
    return this.#console.write(text);
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.#teardown();
  }

  async #teardown(): Promise<void> {
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
    const console = this.#console;
    this.#console = undefined;
    await console?.close();
    const socat = this.#socat;
    this.#socat = undefined;
    if (this.#killOnExit !== undefined) process.off('exit', this.#killOnExit);
    this.#killOnExit = undefined;
    if (socat !== undefined) {
      socat.kill('SIGTERM');
      await socat.exited;
    }
    if (this.#ownsDir && this.#dir !== undefined) await rm(this.#dir, { recursive: true, force: true });
    this.#dir = undefined;
    this.#path = undefined;
    this.#peerPath = undefined;
  }

  /** socat -d -d logs "starting data transfer loop" once both ptys and links exist. */
  #waitReady(socat: SpawnedProcess): Promise<void> {
    const timeoutMs = this.#options.startTimeoutMs ?? 5000;
    return new Promise<void>((resolve, reject) => {
      let log = '';
      let settled = false;
      const finish = (error?: HardwareError): void => {
        if (settled) return;
        settled = true;
        this.#clock.clearTimeout(timer);
        socat.stderr.off('data', onData);
        // Keep draining socat's log so that a full pipe never blocks it.
        socat.stderr.resume();
        if (error) reject(error);
        else resolve();
      };
      const onData = (chunk: Buffer | string): void => {
        log += chunk.toString();
        if (log.includes('starting data transfer loop')) finish();
      };
      const timer = this.#clock.setTimeout(
        () =>
          finish(
            new HardwareError(
              'ERR_HW_TIMEOUT',
              `socat did not create the pseudo-terminal pair within ${timeoutMs} ms (log: ${log.trim().slice(-200)})`,
            ),
          ),
        timeoutMs,
      );
      socat.stderr.on('data', onData);
      void socat.exited.then((exit) => {
        if (exit.error?.code === 'ENOENT') {
          finish(
            new HardwareError(
              'ERR_HW_UNAVAILABLE',
              'socat not found: install it (sudo apt install socat) to get a simulated serial console',
              {
                cause: exit.error,
              },
            ),
          );
        } else {
          finish(
            new HardwareError(
              'ERR_HW_IO',
              `socat exited (${exit.error?.message ?? exit.code ?? exit.signal}) before the pseudo-terminals were ready: ${log.trim().slice(-200)}`,
            ),
          );
        }
      });
    });
  }
}
