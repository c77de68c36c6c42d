/**
 * Smoke test of `npm run bench` (issue 2 §5): the protocol group runs in `--quick` mode and its JSON lines
 * keep their contract, which dashboards and later issues read. Timing values are never asserted: on a shared
 * machine they say nothing about correctness.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function bench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], {
      cwd: ROOT,
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const PROTOCOL_MEASUREMENTS = [
  'token.size_ratio_vs_jwt',
  'token.bytes',
  'token.jwt_bytes',
  'unlock_request.bytes',
  'unlock_request.att_writes_mtu185',
  'unlock_request.att_writes_mtu23',
  'token.verify_ratio',
  'token.verify_ratio_no_schedule',
  'token.verify_step.decode_token',
  'token.verify_step.verify_sign1',
  'token.verify_step.chain_hash',
  'token.verify_step.check_schedule',
  'pop.verify_ratio',
  'pop.verify_cold_key_ratio',
  'pop.cold_platform.import_verify_compressed',
  'pop.cold_platform.import_verify_uncompressed',
  'pop.cold_platform.import_compressed',
];

describe('npm run bench', () => {
  it('prints one well-formed JSON object per measurement with --json', { timeout: 120_000 }, async () => {
    const { code, stdout, stderr } = await bench('protocol', '--json', '--quick');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    const names: string[] = [];
    for (const line of lines) {
      const m = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(m).filter((k) => k !== 'note')).toEqual(['name', 'value', 'unit', 'goal', 'met']);
      expect(typeof m.name).toBe('string');
      expect(typeof m.value === 'number' && Number.isFinite(m.value)).toBe(true);
      expect(typeof m.unit).toBe('string');
      if (m.goal === null) {
        expect(m.met).toBeNull();
      } else {
        expect(m.goal).toMatch(/^(<=|>=) -?\d+(\.\d+)?$/);
        expect(typeof m.met).toBe('boolean');
      }
      if ('note' in m) expect(typeof m.note).toBe('string');
      names.push(m.name as string);
    }
    expect(names).toEqual(PROTOCOL_MEASUREMENTS);
  });

  it('refuses an unknown group with exit 2, listing the groups', async () => {
    const { code, stdout, stderr } = await bench('no-such-group');
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/unknown bench group "no-such-group"/);
    expect(stderr).toMatch(/^ {2}protocol /m);
  });
});
