/**
 * Argument parsing for the `tandem` CLI: `node:util` `parseArgs` in strict mode, help text generated from
 * the same option table, and the parsers for option values (times, durations, key ids, weekly schedules).
 * Also the CLI's one error class, {@link CliError}, and its exit codes (cli/README.md, "Exit codes").
 *
 * This module loads nothing of `protocol/` at run time (type imports only), so that `tandem --help` and the
 * dispatcher stay cheap on a Pi Zero W.
 */
import { parseArgs } from 'node:util';
import type { Schedule, ScheduleWindow } from '../protocol/src/schedule.js';

/** Codes of the errors the CLI itself raises; refusals of tokens are `protocol/`'s ProtocolError codes. */
export type CliErrorCode = 'ERR_USAGE' | 'ERR_IO' | 'ERR_INPUT';

/** Exit codes (cli/README.md, "Exit codes"). */
export const EXIT = {
  OK: 0,
  /** A token or message was refused or is malformed (a ProtocolError), or the input could not be decoded. */
  REFUSED: 1,
  /** The command line is wrong, or the build is missing (bin/tandem.js). */
  USAGE: 2,
  /** A file could not be read or written. */
  IO: 3,
  /** A bug: an error nobody anticipated. */
  INTERNAL: 70,
} as const;

const EXIT_OF_CODE: Readonly<Record<CliErrorCode, number>> = {
  ERR_USAGE: EXIT.USAGE,
  ERR_IO: EXIT.IO,
  ERR_INPUT: EXIT.REFUSED,
};

/** An error of the command layer, with a stable code and the exit code it maps to. */
// Not a TandemError (protocol/src/errors.ts): `tandem --help` loads no protocol/ code at all (test/cli.test.ts,
// "loads command modules lazily"), and this module is on that path.
export class CliError extends Error {
  readonly code: CliErrorCode;
  /** For ERR_USAGE: the command whose `--help` the user should read, such as `token mint`. */
  readonly command: string | undefined;
  constructor(code: CliErrorCode, message: string, options?: { cause?: unknown; command?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.code = code;
    this.command = options?.command;
  }
  get exitCode(): number {
    return EXIT_OF_CODE[this.code];
  }
}

/** The streams a command talks to; injected so that nothing reaches for `process` behind the caller's back. */
export interface CliStreams {
  readonly stdin: NodeJS.ReadableStream & { readonly isTTY?: boolean };
  readonly stdout: NodeJS.WritableStream & { readonly isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream;
}

/** What every lazily loaded command module exports. */
export interface CommandModule {
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(argv: readonly string[], streams: CliStreams): Promise<number>;
}

/** One option of a command, with what `--help` says about it. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
  /** Placeholder for the value in help, such as `<file>`. */
  readonly value?: string;
  readonly description: string;
  /** Must be given (checked after parsing, so that `--help` works without it). */
  readonly required?: boolean;
}

/** A command or subcommand: its options, positionals and help text. */
export interface CommandSpec {
  /** Full name after `tandem`, such as `token mint`. */
  readonly name: string;
  readonly summary: string;
  /** Positional arguments as shown in the usage line, such as `[file|-]`. */
  readonly positionals?: string;
  readonly maxPositionals: number;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Extra paragraphs after the options. */
  readonly notes?: readonly string[];
  readonly examples: readonly string[];
}

/** Parsed values: strings, booleans or repeated strings, keyed by option name. */
export interface Parsed {
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  readonly positionals: readonly string[];
  readonly help: boolean;
}

const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help' };

const HELP_WIDTH = 100;
const FLAG_COLUMN = 34;

// Wraps each line of `text` to `width` columns (keeping its leading spaces), indenting continuation
// lines by `indent` spaces.
function wrap(text: string, width: number, indent = 0): string {
  return text
    .split('\n')
    .map((line) => {
      const lead = /^ */.exec(line)![0];
      const out: string[] = [];
      let current = lead;
      for (const word of line.slice(lead.length).split(' ')) {
        if (current.trim() !== '' && current.length + 1 + word.length > width) {
          out.push(current);
          current = lead + word;
        } else {
          current = current.trim() === '' ? current + word : `${current} ${word}`;
        }
      }
      out.push(current);
      return out.join('\n' + ' '.repeat(indent));
    })
    .join('\n');
}

/** The help text of a command, generated from its spec so that it cannot drift from what is parsed. */
export function helpText(spec: CommandSpec): string {
  const options = { ...spec.options, help: HELP_OPTION };
  const lines = [
    `Usage: tandem ${spec.name}${spec.positionals === undefined ? '' : ` ${spec.positionals}`} [options]`,
    '',
    wrap(spec.summary, HELP_WIDTH),
    '',
    'Options:',
  ];
  for (const [name, o] of Object.entries(options)) {
    const flag = `  ${o.short === undefined ? '    ' : `-${o.short}, `}--${name}${o.value === undefined ? '' : ` ${o.value}`}`;
    const extra = [o.required ? 'required' : '', o.multiple ? 'repeatable' : ''].filter(Boolean).join(', ');
    const description = wrap(
      extra === '' ? o.description : `${o.description} (${extra})`,
      HELP_WIDTH - FLAG_COLUMN,
      FLAG_COLUMN,
    );
    // A long flag gets its description on the next line rather than pushing every description right.
    lines.push(
      flag.length < FLAG_COLUMN - 1
        ? flag.padEnd(FLAG_COLUMN) + description
        : `${flag}\n${' '.repeat(FLAG_COLUMN)}${description}`,
    );
  }
  for (const note of spec.notes ?? []) lines.push('', wrap(note, HELP_WIDTH));
  lines.push('', spec.examples.length === 1 ? 'Example:' : 'Examples:');
  for (const e of spec.examples) lines.push(`  ${e}`);
  return lines.join('\n') + '\n';
}

function usage(spec: CommandSpec, message: string): CliError {
  return new CliError('ERR_USAGE', message, { command: spec.name });
}

/**
 * Parses `argv` against `spec` in strict mode. Unknown options, missing values, values given to flags,
 * surplus positionals and missing required options are ERR_USAGE errors that name the argument.
 */
export function parse(spec: CommandSpec, argv: readonly string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, o] of Object.entries(spec.options)) {
    options[name] = {
      type: o.type,
      ...(o.multiple ? { multiple: true } : {}),
      ...(o.short === undefined ? {} : { short: o.short }),
    };
  }
  let result: ReturnType<typeof parseArgs>;
  try {
    result = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (e) {
    throw usage(spec, describeParseError(e));
  }
  const values = result.values as Record<string, string | boolean | string[] | undefined>;
  const help = values.help === true;
  if (!help) {
    if (result.positionals.length > spec.maxPositionals) {
      throw usage(spec, `unexpected argument ${JSON.stringify(result.positionals[spec.maxPositionals])}`);
    }
    for (const [name, o] of Object.entries(spec.options)) {
      if (o.required && values[name] === undefined) throw usage(spec, `missing required option --${name}`);
      // parseArgs accepts `--out --force` as "--out has the value --force"; a value that looks like an
      // option is almost always a forgotten value.
      const v = values[name];
      for (const s of typeof v === 'string' ? [v] : Array.isArray(v) ? v : []) {
        if (/^--[a-z]/.test(s)) throw usage(spec, `option --${name} needs a value, got the option ${s}`);
      }
    }
  }
  return { values, positionals: result.positionals, help };
}

// parseArgs throws TypeErrors with codes ERR_PARSE_ARGS_*; their messages are long and suggest `--`. Say
// what is wrong and name the argument.
function describeParseError(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  const message = e instanceof Error ? e.message : String(e);
  const named = /'([^']+)'/.exec(message)?.[1] ?? '';
  const flag = named.split(' ')[0] ?? named;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${flag}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message)) return `option ${flag} does not take a value`;
      // parseArgs refuses `--share -x…` as ambiguous: the value may be a forgotten one or an option.
      if (/ambiguous/.test(message))
        return `option ${flag} needs a value; write one that starts with '-' as ${flag}=<value>`;
      return `option ${flag} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${JSON.stringify(named)}`;
    default:
      return message;
  }
}

/** A string option's value, or undefined. */
export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A required string option's value (the spec marks it `required`, so parse() has checked it). */
export function req(p: Parsed, name: string): string {
  const v = str(p, name);
  if (v === undefined) throw new CliError('ERR_USAGE', `missing required option --${name}`);
  return v;
}

/** A repeatable option's values, possibly empty. */
export function list(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** A boolean flag. */
export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** Checks that `value` is one of `choices`, for option `--name`. */
export function choice<T extends string>(
  value: string | undefined,
  choices: readonly T[],
  name: string,
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new CliError(
    'ERR_USAGE',
    `--${name} must be one of ${choices.join(', ')}, not ${JSON.stringify(value)}`,
  );
}

/** An integer in [min, max] for option `--name`. */
export function parseUint(text: string, name: string, min = 0, max = 0xffffffff): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new CliError(
      'ERR_USAGE',
      `--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

/**
 * A point in time for option `--name`, as Unix seconds: either an integer of seconds, or an ISO 8601 date
 * (`2026-12-01`, `2026-12-01T08:00:00Z`, `2026-12-01T09:00+01:00`). Dates without an offset are read as
 * UTC so that the result does not depend on the machine's time zone.
 */
export function parseTime(text: string, name: string): number {
  if (/^\d+$/.test(text)) return parseUint(text, name);
  const m = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.exec(text);
  const ms = m === null ? NaN : Date.parse(m[1] === undefined && text.length > 10 ? `${text}Z` : text);
  if (Number.isNaN(ms) || ms < 0) {
    throw new CliError(
      'ERR_USAGE',
      `--${name} must be Unix seconds or an ISO 8601 date such as 2026-12-01T08:00:00Z, not ${JSON.stringify(text)}`,
    );
  }
  return Math.floor(ms / 1000);
}

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** A duration for option `--name`, in seconds: `3600`, `90s`, `30m`, `12h`, `7d`, `2w`. */
export function parseDuration(text: string, name: string): number {
  const m = /^(\d+)([smhdw]?)$/.exec(text);
  const seconds = m === null ? 0 : Number(m[1]) * (UNIT_SECONDS[m[2] || 's'] ?? 0);
  if (seconds <= 0 || !Number.isSafeInteger(seconds)) {
    throw new CliError(
      'ERR_USAGE',
      `--${name} must be a positive duration such as 3600, 30m, 12h, 7d or 2w, not ${JSON.stringify(text)}`,
    );
  }
  return seconds;
}

/** Bytes from hex for option `--name`, with an optional length range. */
export function parseHex(text: string, name: string, minLength = 0, maxLength = Infinity): Uint8Array {
  const clean = text.startsWith('hex:') ? text.slice(4) : text;
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) {
    throw new CliError(
      'ERR_USAGE',
      `--${name} must be an even number of hex digits, not ${JSON.stringify(text)}`,
    );
  }
  const bytes = Uint8Array.from(Buffer.from(clean, 'hex'));
  if (bytes.length < minLength || bytes.length > maxLength) {
    throw new CliError(
      'ERR_USAGE',
      `--${name} must be ${minLength} to ${maxLength} bytes, not ${bytes.length} (${JSON.stringify(text)})`,
    );
  }
  return bytes;
}

/**
 * A COSE `kid` for option `--name`: `hex:0a01` gives those bytes, any other text its UTF-8 bytes. At most
 * 32 bytes ([TANDEM-COSE-6]); short hex kids keep tokens small.
 */
export function parseKid(text: string, name: string): Uint8Array {
  if (text.startsWith('hex:')) return parseHex(text, name, 1, 32);
  const bytes = new TextEncoder().encode(text);
  if (bytes.length === 0 || bytes.length > 32) {
    throw new CliError(
      'ERR_USAGE',
      `--${name} must be 1 to 32 bytes (text, or hex:<digits>), not ${JSON.stringify(text)}`,
    );
  }
  return bytes;
}

const DAY_NAMES = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] as const;
const FULL_DAY_NAMES = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

function dayIndex(text: string, where: string): number {
  const t = text.trim().toLowerCase();
  const i = FULL_DAY_NAMES.findIndex((full) => full === t || full.slice(0, 3) === t);
  if (i < 0)
    throw new CliError(
      'ERR_USAGE',
      `--schedule ${where}: unknown day ${JSON.stringify(text.trim())} (use Mon..Sun)`,
    );
  return i;
}

// Days of one window: "Mon-Fri", "Sat,Sun", "Fri-Mon" (wraps past Sunday), "daily". Bit 0 is Monday.
function parseDays(text: string, where: string): number {
  if (/^(daily|every ?day)$/i.test(text.trim())) return 0x7f;
  let days = 0;
  for (const part of text.split(',')) {
    const range = part.split('-');
    if (range.length > 2 || part.trim() === '') {
      throw new CliError('ERR_USAGE', `--schedule ${where}: bad day list ${JSON.stringify(text.trim())}`);
    }
    const from = dayIndex(range[0]!, where);
    const to = range.length === 2 ? dayIndex(range[1]!, where) : from;
    for (let d = from; ; d = (d + 1) % 7) {
      days |= 1 << d;
      if (d === to) break;
    }
  }
  return days;
}

function parseClock(text: string, where: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text.trim());
  const minutes = m === null ? NaN : Number(m[1]) * 60 + Number(m[2]);
  if (m === null || Number(m[2]) > 59 || minutes > 1440) {
    throw new CliError(
      'ERR_USAGE',
      `--schedule ${where}: bad time ${JSON.stringify(text.trim())} (use HH:MM, 00:00 to 24:00)`,
    );
  }
  return minutes;
}

/** Most windows a schedule may have ([TANDEM-SCHED-1]); kept equal to protocol's MAX_WINDOWS. */
const MAX_WINDOWS = 14;

/**
 * Parses a weekly schedule written as `Mon-Fri 07:00-20:00; Sat 10:00-12:00` into windows (days bit 0 =
 * Monday … bit 6 = Sunday; minutes after local midnight, end exclusive, 24:00 allowed as end). A window
 * cannot cross midnight: write `Fri 22:00-24:00; Sat 00:00-02:00` instead.
 */
export function parseScheduleText(text: string): Schedule {
  const parts = text.split(';').map((s) => s.trim());
  if (parts.some((s) => s === '')) {
    throw new CliError('ERR_USAGE', `--schedule has an empty window in ${JSON.stringify(text)}`);
  }
  if (parts.length > MAX_WINDOWS)
    throw new CliError('ERR_USAGE', `--schedule has more than ${MAX_WINDOWS} windows`);
  return parts.map((part, i): ScheduleWindow => {
    const where = `window ${i + 1} ${JSON.stringify(part)}`;
    const m = /^(.+?)\s+(\S+)\s*-\s*(\S+)$/.exec(part);
    if (m === null) {
      throw new CliError(
        'ERR_USAGE',
        `--schedule ${where}: expected "<days> HH:MM-HH:MM", such as "Mon-Fri 07:00-20:00"`,
      );
    }
    const days = parseDays(m[1]!, where);
    const start = parseClock(m[2]!, where);
    const end = parseClock(m[3]!, where);
    if (start >= end) {
      throw new CliError(
        'ERR_USAGE',
        `--schedule ${where}: end must be after start; a window cannot cross midnight (split it at 24:00)`,
      );
    }
    return { days, start, end };
  });
}

function formatDays(days: number): string {
  if (days === 0x7f) return 'Mon-Sun';
  const runs: string[] = [];
  for (let d = 0; d < 7; d++) {
    if ((days & (1 << d)) === 0) continue;
    let e = d;
    while (e + 1 < 7 && (days & (1 << (e + 1))) !== 0) e++;
    runs.push(
      e === d
        ? DAY_NAMES[d]!
        : e === d + 1
          ? `${DAY_NAMES[d]},${DAY_NAMES[e]}`
          : `${DAY_NAMES[d]}-${DAY_NAMES[e]}`,
    );
    d = e;
  }
  return runs.join(',');
}

function formatClock(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

/** The text form of a schedule, which {@link parseScheduleText} reads back to the same windows. */
export function formatSchedule(schedule: Schedule): string {
  return schedule
    .map((w) => `${formatDays(w.days)} ${formatClock(w.start)}-${formatClock(w.end)}`)
    .join('; ');
}
