/**
 * Crash safety with real processes (issue 7 §2): the lock runtime runs in a child process
 * (./lock-child.ts) on a data directory; the campaign drives unlocks, revocation updates and theft alerts
 * and kills it with SIGKILL at a seeded random moment, then starts it again on the same directory and checks
 * what the boot shows against what the runtime had acknowledged before the kill:
 *
 * - no store corrupt: the runtime boots without safe mode;
 * - every boot ends locked: state `locked` and the solenoid not energised;
 * - no acknowledged record lost: every outbox record it reported is still queued (nothing acks them here),
 *   the audit log reaches at least the last sequence it reported, and the revocation version is at least
 *   the last one it acknowledged.
 *
 * A data directory serves `runsPerDir` kills, then a fresh one starts (the outbox holds 1,000 records).
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chainHash } from '../../../protocol/src/chain.js';
import { Command, createRequest } from '../../../protocol/src/pop.js';
import { encodeRevocationUpdate } from '../../../protocol/src/revocation.js';
import { Status } from '../../../protocol/src/status.js';
import { encodeTimeBeacon } from '../../../protocol/src/time-beacon.js';
import { mintToken } from '../../../protocol/src/token.js';
import { edKey, p256Key } from '../../../protocol/vectors/keys.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const CHILD = join(import.meta.dirname, 'lock-child.ts');
const LOCK_ID = 'lock-crash';

/** What the child reports at boot and on `st`. */
export interface Facts {
  readonly lockId: string | null;
  readonly corrupt: readonly string[];
  readonly state: string;
  readonly energised: boolean;
  readonly outboxSeqs: readonly number[];
  readonly outboxAckedThrough: number;
  readonly auditLastSeq: number;
  readonly auditCount: number;
  readonly revocationVersion: number;
  readonly pulses: number;
  readonly alerts: number;
}

export interface CrashSummary {
  readonly kind: 'tandem-crash-summary';
  readonly ok: boolean;
  readonly runs: number;
  readonly seed: number;
  readonly kills: number;
  readonly boots: number;
  /** Operations the runtime acknowledged before a kill, summed over all runs. */
  readonly acknowledged: {
    readonly unlocks: number;
    readonly revocations: number;
    readonly alerts: number;
    readonly records: number;
  };
  readonly violations: readonly string[];
  readonly ms: number;
  readonly startedAt: string;
  readonly finishedAt: string;
}

export interface CrashCampaignOptions {
  readonly runs: number;
  readonly seed: number;
  /** Kills on one data directory before a fresh one (default 25). */
  readonly runsPerDir?: number;
  /** Latest kill, ms after the workload starts (default 4500; twice that while shaking, as the alert comes seconds in). */
  readonly maxKillMs?: number;
  readonly log?: (line: string) => void;
  /**
   * Every n-th run starts the lock as `tandem lock --simulate --console stdio` (the CLI, bundled) on the same
   * directory and drives a theft alert through its console; 0: never (default 5).
   */
  readonly cliEvery?: number;
  /** Independent lock processes run side by side, each on its own directories (default 1). */
  readonly lanes?: number;
}

/** mulberry32: the kill moments and the workload are a function of the seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the runtime had acknowledged on one data directory before a kill. */
export interface Acknowledged {
  readonly outbox: readonly number[];
  readonly auditLastSeq: number;
  readonly revocationVersion: number;
  /** Records the outbox held at once (what `tandem lock`'s console status shows: a count, not sequences). */
  readonly outboxSize: number;
}

/** The checks of a boot after a kill: not corrupt, locked, nothing acknowledged lost. */
export function bootViolations(f: Facts, acked: Acknowledged): string[] {
  const out: string[] = [];
  if (f.corrupt.length > 0) out.push(`booted in safe mode: ${f.corrupt.join(', ')} corrupt`);
  if (f.state !== 'locked') out.push(`booted ${f.state}, not locked`);
  if (f.energised) out.push('booted with the solenoid energised');
  const present = new Set(f.outboxSeqs);
  const lost = acked.outbox.filter((s) => s > f.outboxAckedThrough && !present.has(s));
  if (lost.length > 0) out.push(`acknowledged outbox record(s) ${lost.slice(0, 5).join(', ')} lost`);
  if (f.outboxAckedThrough === 0 && f.outboxSeqs.length < acked.outboxSize)
    out.push(`outbox holds ${f.outboxSeqs.length} records; ${acked.outboxSize} had been acknowledged`);
  if (f.auditLastSeq < acked.auditLastSeq)
    out.push(`audit log ends at ${f.auditLastSeq}; ${acked.auditLastSeq} had been acknowledged`);
  if (f.revocationVersion < acked.revocationVersion)
    out.push(`revocation version ${f.revocationVersion}; ${acked.revocationVersion} had been acknowledged`);
  return out;
}

class ChildGone extends Error {}

/** One lock process and its line protocol. */
class LockChild {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly boot: Promise<Facts>;
  readonly exited: Promise<number | null>;
  private readonly waiting = new Map<string, (v: unknown) => void>();
  private next = 0;
  private gone = false;
  stderr = '';

  constructor(command: readonly string[], dir: string) {
    this.proc = spawn(process.execPath, [...command, dir], { cwd: ROOT, stdio: 'pipe' });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    // A write racing the kill fails with EPIPE: the exit handler reports the death, not the stream.
    this.proc.stdin.on('error', () => undefined);
    let bootResolve: (f: Facts) => void;
    let bootReject: (e: Error) => void;
    this.boot = new Promise<Facts>((res, rej) => {
      bootResolve = res;
      bootReject = rej;
    });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const space = line.indexOf(' ');
      const id = line.slice(0, space);
      const body = JSON.parse(line.slice(space + 1)) as unknown;
      if (id === 'BOOT') bootResolve(body as Facts);
      else this.waiting.get(id)?.(body);
      this.waiting.delete(id);
    });
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code) => {
        this.gone = true;
        bootReject(new ChildGone(`the lock process exited (${code}) before booting: ${this.stderr}`));
        for (const w of this.waiting.values()) w(new ChildGone('killed'));
        this.waiting.clear();
        resolve(code);
      }),
    );
    this.boot.catch(() => undefined);
  }

  /** Sends one command; rejects with ChildGone once the process is dead. */
  async call<T>(verb: string, arg = ''): Promise<T> {
    if (this.gone) throw new ChildGone('killed');
    const id = String(++this.next);
    const answer = new Promise<unknown>((resolve) => this.waiting.set(id, resolve));
    this.proc.stdin.write(`${id} ${verb}${arg ? ' ' + arg : ''}\n`, () => undefined);
    const body = await answer;
    if (body instanceof ChildGone) throw body;
    const error = (body as { error?: string }).error;
    if (error !== undefined) throw new Error(`lock child: ${verb}: ${error}`);
    return body as T;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.gone) this.proc.kill(signal);
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * How to start the lock process: the child bundled once with esbuild (as scripts/bundle.mjs bundles the CLI:
 * one module, native packages external), which starts several times faster than through tsx; tsx when
 * esbuild is not usable here.
 */
let childBundle: Promise<string[]> | undefined;
function childCommand(): Promise<string[]> {
  // Once per process: lanes share the file rather than race to write it.
  return (childBundle ??= bundled(CHILD, undefined, 'lock-child.mjs', ['--import', 'tsx', CHILD]));
}

/** `tandem` itself (cli/main.ts, as bin/tandem.js runs it), bundled from the current sources. */
let cliBundle: Promise<string[]> | undefined;
function cliCommand(): Promise<string[]> {
  const entry = "import { runProcess } from './cli/main.ts'; await runProcess();";
  return (cliBundle ??= bundled(undefined, entry, 'tandem.mjs', [
    '--import',
    'tsx',
    join(ROOT, 'cli', 'main.ts'),
  ]));
}

async function bundled(
  file: string | undefined,
  contents: string | undefined,
  name: string,
  fallback: string[],
): Promise<string[]> {
  try {
    const esbuild = await import('esbuild');
    // In node_modules/.cache: linters skip it, and the externals resolve from there to the root node_modules.
    const outfile = join(ROOT, 'node_modules', '.cache', 'tandem-crash', name);
    await esbuild.build({
      absWorkingDir: ROOT,
      ...(file === undefined ? {} : { entryPoints: [file] }),
      ...(contents === undefined ? {} : { stdin: { contents, resolveDir: ROOT, loader: 'ts' as const } }),
      outfile,
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      external: ['@abandonware/*', 'serialport', '@serialport/*'],
      banner: {
        js: "import { createRequire as __tandemRequire } from 'node:module'; const require = __tandemRequire(import.meta.url);",
      },
      logLevel: 'error',
    });
    return [outfile];
  } catch {
    return fallback;
  }
}

async function runLane(options: CrashCampaignOptions): Promise<CrashSummary> {
  const started = Date.now();
  const startedAt = new Date().toISOString();
  const log = options.log ?? (() => undefined);
  const random = rng(options.seed);
  const runsPerDir = options.runsPerDir ?? 25;
  const maxKillMs = options.maxKillMs ?? 4500;
  const issuer = edKey('crash: issuer');
  const owner = p256Key('crash: owner');
  const rider = p256Key('crash: rider');
  const violations: string[] = [];
  const acknowledged = { unlocks: 0, revocations: 0, alerts: 0, records: 0 };
  let kills = 0;
  let boots = 0;
  const dirs: string[] = [];

  // What the runtime acknowledged on the current directory (checked at each boot).
  let acked: Acknowledged = { outbox: [], auditLastSeq: 0, revocationVersion: 0, outboxSize: 0 };
  let nextVersion = 1;
  let dir = '';

  const checkBoot = (f: Facts, run: number): void => {
    for (const v of bootViolations(f, acked)) violations.push(`run ${run} (${dir}): ${v}`);
  };

  const remember = (f: Facts): void => {
    acked = {
      outbox: [...new Set([...acked.outbox, ...f.outboxSeqs])],
      auditLastSeq: Math.max(acked.auditLastSeq, f.auditLastSeq),
      revocationVersion: Math.max(acked.revocationVersion, f.revocationVersion),
      outboxSize: Math.max(acked.outboxSize, f.outboxSeqs.length),
    };
  };

  const command = await childCommand();
  const cli = (options.cliEvery ?? 5) > 0 ? await cliCommand() : [];
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** One run of the real CLI process: boot check through its start line and console, an alert, a kill. */
  const cliRun = async (run: number): Promise<void> => {
    const why = (s: string) => violations.push(`run ${run} (${dir}, tandem lock): ${s}`);
    const proc = spawn(
      process.execPath,
      [...cli, 'lock', '--simulate', '--console', 'stdio', '--data-dir', dir],
      {
        cwd: ROOT,
        stdio: 'pipe',
      },
    );
    proc.stdin.on('error', () => undefined);
    const lines: string[] = [];
    let err = '';
    let gone = false;
    createInterface({ input: proc.stdout }).on('line', (l) => lines.push(l));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((r) => proc.on('exit', () => ((gone = true), r())));
    const waitFor = async (pred: () => boolean): Promise<boolean> => {
      for (let i = 0; i < 1200 && !pred() && !gone; i++) await sleep(25);
      return pred();
    };
    const say = async (line: string): Promise<string> => {
      const n = lines.length;
      proc.stdin.write(line + '\n');
      await waitFor(() => lines.length > n);
      return lines[n] ?? '';
    };
    const status = async (): Promise<Record<string, string>> =>
      Object.fromEntries([...(await say('status')).matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    try {
      if (!(await waitFor(() => /tandem lock [^\n]*: \w+/.test(err)))) {
        why(`no start line: ${err.slice(-500)}`);
        return;
      }
      boots += 1;
      const start = /tandem lock ([^\n]*)/.exec(err)![1]!;
      if (/SAFE MODE/.test(start)) why(`booted in safe mode: ${start}`);
      const s = await status();
      if (s.state !== 'locked') why(`booted ${s.state ?? '(no status)'}, not locked`);
      if (s.safeMode !== 'false') why(`status says safeMode=${s.safeMode}`);
      if (Number(s.revocationVersion) < acked.revocationVersion)
        why(`revocation version ${s.revocationVersion}; ${acked.revocationVersion} had been acknowledged`);
      if (Number(s.outbox) < acked.outboxSize)
        why(`outbox holds ${s.outbox} records; ${acked.outboxSize} had been acknowledged`);
      if (s.lockId === '(unprovisioned)') {
        for (const line of [
          `provision lock-id ${LOCK_ID}`,
          `provision anchor add 01 EdDSA ${hex(issuer.publicKey.raw)} issuer tandem`,
          `provision claim 0a ES256 ${hex(owner.publicKey.raw)} adam`,
        ])
          await say(line);
      }
      const timer = setTimeout(() => proc.kill('SIGKILL'), Math.floor(random() * maxKillMs * 2));
      await say('sim motion shake 6000');
      while (!gone) {
        const now = await status();
        if (!gone && now.outbox !== undefined) {
          acked = { ...acked, outboxSize: Math.max(acked.outboxSize, Number(now.outbox)) };
        }
        await sleep(200);
      }
      clearTimeout(timer);
      kills += 1;
    } finally {
      proc.kill('SIGKILL');
      await exited;
    }
  };

  try {
    for (let run = 1; run <= options.runs + 1; run++) {
      const last = run === options.runs + 1;
      if ((run - 1) % runsPerDir === 0 && !last) {
        dir = mkdtempSync(join(tmpdir(), 'tandem-crash-'));
        dirs.push(dir);
        acked = { outbox: [], auditLastSeq: 0, revocationVersion: 0, outboxSize: 0 };
        nextVersion = 1;
      }
      if (!last && (options.cliEvery ?? 5) > 0 && run % (options.cliEvery ?? 5) === 0) {
        await cliRun(run);
        if (run === options.runs) log(`crash run ${run}/${options.runs}: ${violations.length} violation(s)`);
        continue;
      }
      const child = new LockChild(command, dir);
      let facts: Facts;
      try {
        facts = await child.boot;
      } catch (e) {
        violations.push(`run ${run} (${dir}): ${(e as Error).message}`);
        continue;
      }
      boots += 1;
      checkBoot(facts, run);
      if (last) {
        child.kill('SIGTERM');
        await child.exited;
        break;
      }
      const before = { ...acknowledged };
      try {
        if (facts.lockId === null) {
          for (const line of [
            `provision lock-id ${LOCK_ID}`,
            `provision anchor add 01 EdDSA ${hex(issuer.publicKey.raw)} issuer tandem`,
            `provision claim 0a ES256 ${hex(owner.publicKey.raw)} adam`,
          ]) {
            const r = await child.call<{ ok: boolean; text: string }>('c', line);
            if (!r.ok) throw new Error(`provisioning "${line}" failed: ${r.text}`);
          }
        }
        const now = Math.floor(Date.now() / 1000);
        const { nonce } = await child.call<{ nonce: string }>('ch');
        const beacon = encodeTimeBeacon(
          { time: now, nonce: Buffer.from(nonce, 'hex'), lockId: LOCK_ID, accuracy: 2 },
          issuer,
          Uint8Array.of(1),
        );
        const b = await child.call<{ status: number }>('b', hex(beacon));
        if (b.status !== Status.OK) throw new Error(`the time beacon was refused: ${Status[b.status]}`);
        const token = mintToken(
          {
            iss: 'tandem',
            sub: 'adam',
            aud: LOCK_ID,
            iat: now - 60,
            nbf: now - 60,
            exp: now + 3600,
            cti: Uint8Array.of(run & 0xff, run >> 8, 1, 2, 3, 4, 5, 6),
            cnf: rider.publicKey,
            scope: ['unlock', 'lock', 'status'],
            maxUses: 1000,
          },
          issuer,
          Uint8Array.of(1),
        );
        // Half the runs shake the bike first: the detector raises the alarm and queues an alert a few seconds
        // in, so kills land before, during and after the alert's write.
        const shaking = random() < 0.5;
        if (shaking) await child.call('c', 'sim motion shake 6000');
        // The kill: a seeded moment within the workload.
        const killAfter = Math.floor(random() * (shaking ? maxKillMs * 2 : maxKillMs));
        const timer = setTimeout(() => child.kill('SIGKILL'), killAfter);
        try {
          for (let op = 0; op < 200; op++) {
            // While shaking, no unlock: an open lock disarms the detector.
            const pick = shaking ? 0.45 + random() * 0.45 : random();
            if (pick < 0.45) {
              const { nonce: n } = await child.call<{ nonce: string }>('ch');
              const req = createRequest({
                lockId: LOCK_ID,
                nonce: Buffer.from(n, 'hex'),
                command: Command.UNLOCK,
                chain: [token],
                chainHash: chainHash([token]),
                holderKey: rider,
              });
              const r = await child.call<{ status: number; acted: boolean }>('r', hex(req));
              if (r.status === Status.OK) acknowledged.unlocks += 1;
              await child.call('c', 'sim latch push');
            } else if (pick < 0.75) {
              const version = nextVersion++;
              const upd = encodeRevocationUpdate(
                {
                  kind: 'full',
                  version,
                  issuedAt: now,
                  lockId: LOCK_ID,
                  added: [{ id: Uint8Array.of(9, 9, version & 0xff, version >> 8), exp: now + 86_400 }],
                  removed: [],
                },
                issuer,
                Uint8Array.of(1),
              );
              const r = await child.call<{ status: number }>('v', hex(upd));
              if (r.status === Status.OK) acknowledged.revocations += 1;
            } else if (pick < 0.9) {
              await new Promise((r) => setTimeout(r, 100));
            } else {
              await child.call('c', 'alarm clear');
            }
            const f = await child.call<Facts>('st');
            acknowledged.alerts += Math.max(0, f.alerts - facts.alerts);
            facts = f;
            remember(f);
          }
          child.kill('SIGKILL');
        } catch (e) {
          if (!(e instanceof ChildGone)) throw e;
        } finally {
          clearTimeout(timer);
        }
        kills += 1;
      } catch (e) {
        violations.push(`run ${run} (${dir}): ${(e as Error).message}`);
        child.kill('SIGKILL');
      }
      await child.exited;
      acknowledged.records = acked.outbox.length;
      if (run % 25 === 0 || run === options.runs) {
        log(
          `crash run ${run}/${options.runs}: ${violations.length} violation(s); acknowledged this run: ` +
            `${acknowledged.unlocks - before.unlocks} unlocks, ${acknowledged.revocations - before.revocations} revocations`,
        );
      }
    }
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  return {
    kind: 'tandem-crash-summary',
    ok: violations.length === 0,
    runs: options.runs,
    seed: options.seed,
    kills,
    boots,
    acknowledged,
    violations,
    ms: Date.now() - started,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}

/** Runs the campaign in `lanes` independent lanes (seed + lane) and adds up what they found. */
export async function runCrashCampaign(options: CrashCampaignOptions): Promise<CrashSummary> {
  const lanes = Math.max(1, Math.min(options.lanes ?? 1, options.runs));
  const started = Date.now();
  const startedAt = new Date().toISOString();
  const parts = await Promise.all(
    Array.from({ length: lanes }, (_, i) =>
      runLane({
        ...options,
        seed: options.seed + i,
        runs: Math.floor(options.runs / lanes) + (i < options.runs % lanes ? 1 : 0),
        ...(options.log
          ? { log: (line: string) => options.log!(lanes > 1 ? `lane ${i}: ${line}` : line) }
          : {}),
      }),
    ),
  );
  const sum = (f: (s: CrashSummary) => number) => parts.reduce((n, s) => n + f(s), 0);
  return {
    kind: 'tandem-crash-summary',
    ok: parts.every((p) => p.ok),
    runs: options.runs,
    seed: options.seed,
    kills: sum((s) => s.kills),
    boots: sum((s) => s.boots),
    acknowledged: {
      unlocks: sum((s) => s.acknowledged.unlocks),
      revocations: sum((s) => s.acknowledged.revocations),
      alerts: sum((s) => s.acknowledged.alerts),
      records: sum((s) => s.acknowledged.records),
    },
    violations: parts.flatMap((p) => p.violations),
    ms: Date.now() - started,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}
