/**
 * The operating-system seam of the drivers that run helper programs (the libgpiod tools, socat) through a
 * {@link ProcessSpawner}, so tests substitute a fake that records the exact argv and scripts the tools'
 * output and exit, and no native npm module is needed on the Pi.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

/** How a process ended: `code` for a normal exit, `signal` when killed. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running child process, reduced to what the drivers use. */
export interface SpawnedProcess {
  readonly pid: number | undefined;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly stdin: Writable | null;
  /** Settles once, when the process has exited or failed to start (`error` set, e.g. ENOENT). */
  readonly exited: Promise<ProcessExit & { readonly error?: NodeJS.ErrnoException }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts processes; the only way the GPIO drivers reach the operating system. */
export interface ProcessSpawner {
  spawn(command: string, args: readonly string[]): SpawnedProcess;
  /**
   * Run to completion synchronously. Used only from a process 'exit' hook, where asynchronous work never
   * runs, to drive the solenoid line low on the way out.
   */
  spawnSync(command: string, args: readonly string[]): ProcessExit;
}

/** {@link ProcessSpawner} over `node:child_process`. */
export class NodeProcessSpawner implements ProcessSpawner {
  spawn(command: string, args: readonly string[]): SpawnedProcess {
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<ProcessExit & { error?: NodeJS.ErrnoException }>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    // A child that dies before reading stdin would otherwise raise EPIPE as an unhandled 'error'.
    child.stdin.on('error', () => undefined);
    return {
      pid: child.pid,
      stdout: child.stdout,
      stderr: child.stderr,
      stdin: child.stdin,
      exited,
      kill: (signal = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
    };
  }

  spawnSync(command: string, args: readonly string[]): ProcessExit {
    const result = spawnSync(command, [...args], { stdio: 'ignore', timeout: 2000 });
    return { code: result.status, signal: result.signal };
  }
}

/** Collect a stream into a string (the tools print little). */
export function collect(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      text += chunk;
    });
    stream.once('end', () => resolve(text));
    stream.once('close', () => resolve(text));
    stream.once('error', () => resolve(text));
  });
}
