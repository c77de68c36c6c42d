/**
 * The owner's cloud commands (issue 10 part 6): `tandem claim` (POST /locks with the lock console's claim
 * receipt), `tandem locks`, `tandem share`, `tandem shares` and the share form of `tandem revoke`, over
 * gateway/'s CloudClient and the sharing API (cloud-bridge's OpenAPI document). The cloud checks everything;
 * these commands refuse only what cannot be a valid request (a malformed time, day or count) before sending.
 */
import { CliError, flag, helpText, parse, parseDuration, parseUint, req, str } from './args.js';
import type { CliStreams, CommandModule, CommandSpec, Parsed } from './args.js';
import { CLOUD_EXIT, HTTP_TIMEOUT_OPTION, SESSION_OPTION, cloudGuard, openClient } from './cloud-session.js';
import type { ApiLock, ApiScheduleWindow, ApiShare, ShareRequest } from '../gateway/src/cloud-client.js';

const COMMON = { session: SESSION_OPTION, timeout: HTTP_TIMEOUT_OPTION } as const;
const JSON_OPTION = { type: 'boolean', description: 'print JSON' } as const;

const CLAIM: CommandSpec = {
  name: 'claim',
  maxPositionals: 0,
  summary:
    'Claims a lock for the logged-in owner: sends the claim receipt the lock’s console printed after ' +
    '`provision claim` (signed by the lock’s device key; the cloud checks that it names this account).',
  options: {
    receipt: { type: 'string', value: '<base64url>', required: true, description: 'the claim receipt' },
    json: JSON_OPTION,
    ...COMMON,
  },
  examples: ['tandem claim --receipt hFhApQ...'],
};

const LOCKS: CommandSpec = {
  name: 'locks',
  positionals: '[lock-id]',
  maxPositionals: 1,
  summary:
    'Lists the owner’s locks, or one: state, last contact, and the revocation version published and the one ' +
    'the lock acknowledged (so the owner sees that a revocation landed).',
  options: { json: JSON_OPTION, ...COMMON },
  examples: ['tandem locks', 'tandem locks lock-7f3a --json'],
};

const LOCK_SETTINGS: CommandSpec = {
  name: 'lock-settings',
  positionals: '<lock-id>',
  maxPositionals: 1,
  summary:
    'Shows or changes the owner’s settings of a lock. --remote-locking on offers the lock to Home Assistant ' +
    'as a `lock` entity whose Lock button locks it (SPEC [TANDEM-HA-2], §9.11; never unlocks); off (the ' +
    'default) shows its state as a sensor only.',
  options: {
    'remote-locking': {
      type: 'string',
      value: '<on|off>',
      description: 'offer a Home Assistant lock entity',
    },
    json: JSON_OPTION,
    ...COMMON,
  },
  examples: ['tandem lock-settings lock-7f3a', 'tandem lock-settings lock-7f3a --remote-locking on'],
};

const SHARE: CommandSpec = {
  name: 'share',
  positionals: '<lock-id>',
  maxPositionals: 1,
  summary:
    'Shares a lock with a rider: the cloud records it and, from then on, the rider’s Userinfo carries a ' +
    'short-lived token for the lock bound to the rider’s registered key (SPEC §5.9).',
  options: {
    rider: { type: 'string', value: '<account>', required: true, description: 'the rider’s account id' },
    until: {
      type: 'string',
      value: '<ISO|+duration>',
      required: true,
      description: 'end of the share: an ISO 8601 time, or +2h, +7d from now',
    },
    from: { type: 'string', value: '<ISO|+duration>', description: 'start of the share (default now)' },
    days: {
      type: 'string',
      value: '<days>',
      description:
        'weekly schedule: days such as mon-fri, sat,sun, fri-mon or daily (the lock’s local time, SPEC §5.4)',
    },
    start: { type: 'string', value: '<HH:MM>', description: 'with --days: window start (default 00:00)' },
    end: { type: 'string', value: '<HH:MM>', description: 'with --days: window end (default 24:00)' },
    uses: { type: 'string', value: '<n>', description: 'at most this many unlocks (1-65535)' },
    reshare: { type: 'boolean', description: 'the rider may pass on a narrower share (adds "delegate")' },
    scope: {
      type: 'string',
      value: '<list>',
      description: 'comma-separated subset of unlock, lock, status (default unlock,lock,status)',
    },
    json: JSON_OPTION,
    ...COMMON,
  },
  examples: [
    'tandem share lock-7f3a --rider bianca --until +2h --days mon-fri --start 08:00 --end 18:00 --uses 3',
    'tandem share lock-7f3a --rider bianca --from 2027-01-04T08:00:00Z --until 2027-01-08T18:00:00Z --scope unlock,status',
  ],
};

const SHARES: CommandSpec = {
  name: 'shares',
  positionals: '[lock-id]',
  maxPositionals: 1,
  summary: 'With a lock: the owner’s shares of it. Without: the shares the logged-in user holds as a rider.',
  options: { json: JSON_OPTION, ...COMMON },
  examples: ['tandem shares lock-7f3a', 'tandem shares'],
};

const REVOKE_SHARE: CommandSpec = {
  name: 'revoke',
  maxPositionals: 0,
  summary:
    'Revokes a share (--share) or every share of a rider on a lock (--lock with --rider): the cloud publishes the ' +
    'next signed revocation update for the lock; locks online get it over MQTT, offline ones through the next ' +
    'phone that syncs. `tandem locks <lock>` shows when the lock acknowledged it. (The admin form, ' +
    '`tandem revoke --lock L --token CTI --exp T --data-dir D`, revokes a token id directly on a local cloud.)',
  options: {
    share: { type: 'string', value: '<share id>', description: 'the share to revoke' },
    lock: { type: 'string', value: '<lock id>', description: 'with --rider: the lock' },
    rider: {
      type: 'string',
      value: '<account>',
      description: 'with --lock: revoke all of this rider’s shares',
    },
    json: JSON_OPTION,
    ...COMMON,
  },
  examples: ['tandem revoke --share 3f9c2a', 'tandem revoke --lock lock-7f3a --rider bianca'],
};

const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

function dayIndex(text: string): number {
  const t = text.trim().toLowerCase();
  const i = DAY_NAMES.findIndex(
    (d) => t === d || (t.length >= 3 && `${d}${'day'}`.startsWith(t)) || fullName(d) === t,
  );
  if (i < 0) {
    throw new CliError('ERR_USAGE', `--days: ${JSON.stringify(text)} is not a day (mon, tue, ..., sun)`, {
      command: 'share',
    });
  }
  return i;
}

function fullName(d: string): string {
  return {
    mon: 'monday',
    tue: 'tuesday',
    wed: 'wednesday',
    thu: 'thursday',
    fri: 'friday',
    sat: 'saturday',
    sun: 'sunday',
  }[d]!;
}

/** `mon-fri`, `sat,sun`, `fri-mon` (wrapping), `daily` -> the API's day names in week order. */
export function parseDays(text: string): string[] {
  if (text.trim().toLowerCase() === 'daily') return [...DAY_NAMES];
  const set = new Set<number>();
  for (const part of text.split(',')) {
    const range = part.split('-');
    if (range.length === 1) set.add(dayIndex(range[0]!));
    else if (range.length === 2) {
      const a = dayIndex(range[0]!);
      const b = dayIndex(range[1]!);
      for (let i = a; ; i = (i + 1) % 7) {
        set.add(i);
        if (i === b) break;
      }
    } else {
      throw new CliError(
        'ERR_USAGE',
        `--days: ${JSON.stringify(part)} is not a day or a range such as mon-fri`,
        {
          command: 'share',
        },
      );
    }
  }
  return [...set].sort((x, y) => x - y).map((i) => DAY_NAMES[i]!);
}

function clock(text: string, name: string): string {
  const m = /^(\d{2}):(\d{2})$/.exec(text);
  const minutes = m === null ? NaN : Number(m[1]) * 60 + Number(m[2]);
  if (m === null || Number(m[2]) > 59 || minutes > 24 * 60) {
    throw new CliError(
      'ERR_USAGE',
      `--${name} must be HH:MM from 00:00 to 24:00, not ${JSON.stringify(text)}`,
      {
        command: 'share',
      },
    );
  }
  return text;
}

/** An ISO 8601 time, or `+<duration>` from `now` (ms), as the ISO string the API takes. */
export function parseWhen(text: string, name: string, now: number): string {
  if (text.startsWith('+')) return new Date(now + parseDuration(text.slice(1), name) * 1000).toISOString();
  if (
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text) ||
    Number.isNaN(Date.parse(text))
  ) {
    throw new CliError(
      'ERR_USAGE',
      `--${name} must be an ISO 8601 time with its zone (2027-01-08T18:00:00Z) or +<duration>, not ${JSON.stringify(text)}`,
      { command: 'share' },
    );
  }
  return new Date(Date.parse(text)).toISOString();
}

/** The request of `tandem share` from its options; `now` in ms. */
export function shareRequest(p: Parsed, now: number): ShareRequest {
  const scope = (str(p, 'scope') ?? 'unlock,lock,status').split(',').map((s) => s.trim());
  for (const s of scope) {
    if (!['unlock', 'lock', 'status'].includes(s)) {
      throw new CliError('ERR_USAGE', `--scope: ${JSON.stringify(s)} is not one of unlock, lock, status`, {
        command: 'share',
      });
    }
  }
  const notAfter = parseWhen(req(p, 'until'), 'until', now);
  const fromText = str(p, 'from');
  const notBefore = fromText === undefined ? undefined : parseWhen(fromText, 'from', now);
  if (Date.parse(notAfter) <= (notBefore === undefined ? now : Date.parse(notBefore))) {
    throw new CliError('ERR_USAGE', '--until must be after --from (or after now)', { command: 'share' });
  }
  const days = str(p, 'days');
  const start = str(p, 'start');
  const end = str(p, 'end');
  let schedule: ApiScheduleWindow[] | undefined;
  if (days !== undefined || start !== undefined || end !== undefined) {
    const window = {
      days: parseDays(days ?? 'daily'),
      start: clock(start ?? '00:00', 'start'),
      end: clock(end ?? '24:00', 'end'),
    };
    if (window.end <= window.start) {
      throw new CliError('ERR_USAGE', `--end (${window.end}) must be after --start (${window.start})`, {
        command: 'share',
      });
    }
    schedule = [window];
  }
  const uses = str(p, 'uses');
  return {
    rider: req(p, 'rider'),
    scope: [...new Set(scope)],
    ...(notBefore === undefined ? {} : { notBefore }),
    notAfter,
    ...(schedule === undefined ? {} : { schedule }),
    ...(uses === undefined ? {} : { maxUses: parseUint(uses, 'uses', 1, 65535) }),
    ...(flag(p, 'reshare') ? { mayReshare: true } : {}),
  };
}

function describeShare(s: ApiShare): string {
  const sched = (s.schedule ?? []).map((w) => `${w.days.join(',')} ${w.start}-${w.end}`).join('; ');
  return (
    `share ${s.id}: ${s.owner}'s ${s.lock} for ${s.rider}, ${s.scope.join(',')}${s.mayReshare ? ' +reshare' : ''}, ` +
    `${s.notBefore} to ${s.notAfter}` +
    (sched === '' ? '' : `, ${sched}`) +
    (s.maxUses === undefined ? '' : `, ${s.usesReported}/${s.maxUses} uses`) +
    (s.revoked ? `, REVOKED${s.revokedAt === undefined ? '' : ` at ${s.revokedAt}`}` : '')
  );
}

function describeLock(l: ApiLock): string {
  const r = l.revocation;
  const ack =
    r.acknowledgedVersion === null || r.acknowledgedVersion === undefined
      ? 'not acknowledged yet'
      : `acknowledged ${r.acknowledgedVersion}${r.acknowledgedAt ? ` at ${r.acknowledgedAt}` : ''}` +
        (r.acknowledgedVersion >= r.version ? ' (up to date)' : ' (behind)');
  return (
    `${l.id}: state ${l.state ?? 'unknown'}${l.stateAt ? ` (${l.stateAt})` : ''}, last contact ${l.lastContact ?? 'never'}, ` +
    `revocation version ${r.version}, ${ack}`
  );
}

function lockIdOf(p: Parsed, command: string): string {
  const id = p.positionals[0];
  if (id === undefined) throw new CliError('ERR_USAGE', 'missing <lock-id>', { command });
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(id)) {
    throw new CliError('ERR_USAGE', `<lock-id> must be 1-32 of a-z, 0-9 and "-", not ${JSON.stringify(id)}`, {
      command,
    });
  }
  return id;
}

function print(streams: CliStreams, json: boolean, value: unknown, text: string): number {
  streams.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
  return CLOUD_EXIT.OK;
}

/** `tandem claim`. */
export const claim: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(CLAIM, argv);
    if (p.help) return print(streams, false, null, helpText(CLAIM).trimEnd());
    const receipt = req(p, 'receipt').trim();
    if (!/^[A-Za-z0-9_-]+$/.test(receipt)) {
      throw new CliError('ERR_USAGE', '--receipt must be base64url, as the lock console prints it', {
        command: 'claim',
      });
    }
    return cloudGuard(streams, async () => {
      const client = await openClient(p);
      const lock = await client.claimLock(receipt);
      await client.session.save();
      return print(streams, flag(p, 'json'), { lock }, `claimed ${lock.id} for ${lock.owner}`);
    });
  },
};

/** `tandem locks`. */
export const locks: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(LOCKS, argv);
    if (p.help) return print(streams, false, null, helpText(LOCKS).trimEnd());
    const one = p.positionals.length > 0 ? lockIdOf(p, 'locks') : undefined;
    return cloudGuard(streams, async () => {
      const client = await openClient(p);
      const out = one === undefined ? await client.locks() : [await client.lock(one)];
      await client.session.save();
      return print(
        streams,
        flag(p, 'json'),
        one === undefined ? { locks: out } : { lock: out[0] },
        out.length === 0 ? 'no locks claimed' : out.map(describeLock).join('\n'),
      );
    });
  },
};

/** `tandem lock-settings`. */
export const lockSettings: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(LOCK_SETTINGS, argv);
    if (p.help) return print(streams, false, null, helpText(LOCK_SETTINGS).trimEnd());
    const lockId = lockIdOf(p, 'lock-settings');
    const text = str(p, 'remote-locking');
    if (text !== undefined && text !== 'on' && text !== 'off') {
      throw new CliError('ERR_USAGE', `--remote-locking must be on or off, not ${JSON.stringify(text)}`, {
        command: 'lock-settings',
      });
    }
    return cloudGuard(streams, async () => {
      const client = await openClient(p);
      const l =
        text === undefined
          ? await client.lock(lockId)
          : await client.updateLock(lockId, { remoteLocking: text === 'on' });
      await client.session.save();
      return print(
        streams,
        flag(p, 'json'),
        { lock: l },
        `${l.id}: remote locking ${l.remoteLocking === true ? 'on' : 'off'}`,
      );
    });
  },
};

/** `tandem share`. */
export const share: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(SHARE, argv);
    if (p.help) return print(streams, false, null, helpText(SHARE).trimEnd());
    const lockId = lockIdOf(p, 'share');
    const request = shareRequest(p, Date.now());
    return cloudGuard(streams, async () => {
      const client = await openClient(p);
      const s = await client.share(lockId, request);
      await client.session.save();
      return print(streams, flag(p, 'json'), { share: s }, describeShare(s));
    });
  },
};

/** `tandem shares`. */
export const shares: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(SHARES, argv);
    if (p.help) return print(streams, false, null, helpText(SHARES).trimEnd());
    const lockId = p.positionals.length > 0 ? lockIdOf(p, 'shares') : undefined;
    return cloudGuard(streams, async () => {
      const client = await openClient(p);
      const out = await client.shares(lockId);
      await client.session.save();
      return print(
        streams,
        flag(p, 'json'),
        { shares: out },
        out.length === 0 ? 'no shares' : out.map(describeShare).join('\n'),
      );
    });
  },
};

/** True when `argv` is the share form of `tandem revoke` (not the admin form with --token/--data-dir). */
export function isShareRevoke(argv: readonly string[]): boolean {
  return argv.some(
    (a) => a === '--share' || a.startsWith('--share=') || a === '--rider' || a.startsWith('--rider='),
  );
}

/** `tandem revoke --share ID` and `tandem revoke --lock L --rider R`. */
export const revokeShare: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(REVOKE_SHARE, argv);
    if (p.help) return print(streams, false, null, helpText(REVOKE_SHARE).trimEnd());
    const shareId = str(p, 'share');
    const lock = str(p, 'lock');
    const rider = str(p, 'rider');
    if ((shareId === undefined) === (rider === undefined) || (rider !== undefined) !== (lock !== undefined)) {
      throw new CliError('ERR_USAGE', 'give --share <id>, or --lock <lock> with --rider <account>', {
        command: 'revoke',
      });
    }
    return cloudGuard(streams, async () => {
      const client = await openClient(p);
      if (shareId !== undefined) {
        const out = await client.revokeShare(shareId);
        await client.session.save();
        return print(
          streams,
          flag(p, 'json'),
          out,
          `revoked share ${out.share.id} (${out.share.rider} on ${out.revocation.lock}): revocation version ` +
            `${out.revocation.version} published; \`tandem locks ${out.revocation.lock}\` shows when the lock acknowledges it`,
        );
      }
      const out = await client.revokeRider(lock!, rider!);
      await client.session.save();
      return print(
        streams,
        flag(p, 'json'),
        out,
        `revoked every share of ${rider} on ${lock}: ${JSON.stringify(out)}`,
      );
    });
  },
};

/** The module run as a command of its own is `tandem share`. */
export const run = share.run;
