/**
 * A {@link ProcessSpawner} that starts nothing: it records the exact argv of every call and lets the test
 * script what each process prints and when it exits. This is the operating-system boundary of the GPIO
 * drivers, so tests here check the very command lines that would run on the Pi.
 */
import { PassThrough } from 'node:stream';
import type { ProcessExit, ProcessSpawner, SpawnedProcess } from '../src/process-spawner.js';

export interface Script {
  stdout?: string;
  stderr?: string;
  /** Exit code when the process ends by itself; default 0. */
  code?: number;
  /** Keep running until killed or `exit()` is called (a held gpioset, a gpiomon). */
  hold?: boolean;
  /** Fail to start, like a missing binary. */
  spawnError?: 'ENOENT' | 'EACCES';
}

export class FakeProcess implements SpawnedProcess {
  readonly pid = 4242;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly stdin = new PassThrough();
  readonly exited: Promise<ProcessExit & { error?: NodeJS.ErrnoException }>;
  readonly kills: NodeJS.Signals[] = [];
  #resolve!: (exit: ProcessExit & { error?: NodeJS.ErrnoException }) => void;
  #done = false;

  constructor(
    readonly command: string,
    readonly args: readonly string[],
  ) {
    this.exited = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get running(): boolean {
    return !this.#done;
  }

  /** Print to stdout (e.g. gpiomon edges). */
  emit(text: string): void {
    this.stdout.write(text);
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null, stderr = ''): void {
    if (this.#done) return;
    this.#done = true;
    if (stderr !== '') this.stderr.write(stderr);
    this.stdout.end();
    this.stderr.end();
    // Node emits 'close' after the streams ended: resolve on a later turn like the real spawner.
    setImmediate(() => this.#resolve({ code, signal }));
  }

  failToStart(code: string): void {
    this.#done = true;
    const error = Object.assign(new Error(`spawn ${this.command} ${code}`), {
      code,
    }) as NodeJS.ErrnoException;
    this.stdout.end();
    this.stderr.end();
    setImmediate(() => this.#resolve({ code: null, signal: null, error }));
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.kills.push(signal);
    this.exit(null, signal);
  }
}

export class FakeSpawner implements ProcessSpawner {
  readonly calls: { command: string; args: readonly string[] }[] = [];
  readonly syncCalls: { command: string; args: readonly string[] }[] = [];
  readonly processes: FakeProcess[] = [];

  constructor(readonly script: (command: string, args: readonly string[]) => Script) {}

  /** Argv lines as a shell would show them, for compact exact assertions. */
  get commandLines(): string[] {
    return this.calls.map((c) => [c.command, ...c.args].join(' '));
  }

  spawn(command: string, args: readonly string[]): FakeProcess {
    this.calls.push({ command, args: [...args] });
    const process = new FakeProcess(command, args);
    this.processes.push(process);
    const s = this.script(command, args);
    if (s.spawnError !== undefined) {
      process.failToStart(s.spawnError);
      return process;
    }
    if (s.stdout !== undefined) process.stdout.write(s.stdout);
    if (s.hold !== true) process.exit(s.code ?? 0, null, s.stderr ?? '');
    else if (s.stderr !== undefined) process.stderr.write(s.stderr);
    return process;
  }

  /** Exit codes for the next spawnSync calls, in order; 0 once exhausted. */
  readonly syncCodes: number[] = [];

  spawnSync(command: string, args: readonly string[]): ProcessExit {
    this.syncCalls.push({ command, args: [...args] });
    return { code: this.syncCodes.shift() ?? 0, signal: null };
  }

  last(command: string): FakeProcess | undefined {
    return [...this.processes].reverse().find((p) => p.command === command);
  }
}

/** A libgpiod toolset of the given version where every command succeeds; pulses run until ended. */
export function libgpiodScript(
  version: string,
  overrides: (command: string, args: readonly string[]) => Script | undefined = () => undefined,
): (command: string, args: readonly string[]) => Script {
  return (command, args) => {
    const custom = overrides(command, args);
    if (custom !== undefined) return custom;
    if (args.includes('--version'))
      return { stdout: `${command} (libgpiod) ${version}\nCopyright (C) 2017-2023 Bartosz Golaszewski\n` };
    if (command === 'gpioset' && args.some((a) => a.endsWith('=1'))) return { hold: true };
    if (command === 'gpiomon') return { hold: true };
    if (command === 'gpioget') return { stdout: '0\n' };
    return {};
  };
}
