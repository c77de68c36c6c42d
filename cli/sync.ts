/**
 * `tandem sync`: what a rider's phone does whenever it has a network (issue 10 part 6, ARCHITECTURE.md flows
 * 3 and 6): fetch the delegations from Userinfo (fresh tokens bound to the registered key, SPEC §5.9), then
 * for every lock it knows, upload the records it relayed from the lock over BLE (POST /sync, the same checks
 * as the MQTT path) and keep what to carry back: the newest signed revocation update, a time beacon and the
 * outbox acknowledgement, and the issuer's anchor update while the lock has not acknowledged it ([TANDEM-SYNC-5]).
 * `tandem unlock` uses them offline until they expire.
 */
import { flag, helpText, parse } from './args.js';
import type { CommandModule, CommandSpec } from './args.js';
import { CLOUD_EXIT, HTTP_TIMEOUT_OPTION, SESSION_OPTION, cloudGuard, openClient } from './cloud-session.js';

const SYNC: CommandSpec = {
  name: 'sync',
  maxPositionals: 0,
  summary:
    'Fetches the delegations of the logged-in rider and, per lock, uploads relayed records and keeps the ' +
    'revocation update, time beacon and outbox acknowledgement that `tandem unlock` carries to the lock.',
  options: {
    json: { type: 'boolean', description: 'print JSON' },
    session: SESSION_OPTION,
    timeout: HTTP_TIMEOUT_OPTION,
  },
  notes: [
    'Exit status: 0 synced (a lock the cloud refused is reported and the others still synced); 3 the cloud ' +
      'cannot be reached (the cached data stays usable until it expires); 4 log in again.',
  ],
  examples: ['tandem sync', 'tandem sync --json'],
};

/** `tandem sync`. */
export const sync: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(SYNC, argv);
    if (p.help) {
      streams.stdout.write(helpText(SYNC));
      return CLOUD_EXIT.OK;
    }
    return cloudGuard(streams, async () => {
      const { syncAll } = await import('../gateway/src/cloud-client.js');
      const { decodeRevocationUpdate } = await import('../protocol/src/revocation.js');
      const client = await openClient(p);
      client.session.require();
      let out: Awaited<ReturnType<typeof syncAll>>;
      try {
        out = await syncAll(client, (bytes) => decodeRevocationUpdate(bytes).update.version);
      } finally {
        // Whatever was fetched before a failure (refreshed tokens, delegations) is kept.
        await client.session.save();
      }
      if (flag(p, 'json')) {
        streams.stdout.write(
          JSON.stringify(
            {
              keyRegistered: out.keyRegistered,
              delegations: Object.fromEntries(
                Object.entries(out.delegations).map(([lock, d]) => [
                  lock,
                  { owner: d.owner, share: d.share, scope: d.scope, expiresAt: d.expiresAt },
                ]),
              ),
              locks: out.locks.map((l) => ({
                ...l,
                error: l.error === undefined ? undefined : { code: l.error.code, message: l.error.message },
              })),
            },
            null,
            2,
          ) + '\n',
        );
        return CLOUD_EXIT.OK;
      }
      const lines: string[] = [];
      if (!out.keyRegistered) {
        lines.push(
          'no key registered for this login: run `tandem keys register --key <rider key file>` to receive delegations',
        );
      }
      const now = Math.floor(Date.now() / 1000);
      for (const [lock, d] of Object.entries(out.delegations)) {
        lines.push(
          `${lock}: token from ${d.owner} (share ${d.share}, ${d.scope.join(',')}), valid ${d.expiresAt - now} s`,
        );
      }
      for (const l of out.locks) {
        if (l.error !== undefined) {
          lines.push(`${l.lock}: not synced: ${l.error.code}: ${l.error.message}`);
          continue;
        }
        const parts = [
          `${l.uploaded} relayed record(s) uploaded`,
          ...(l.refused.length > 0
            ? [`${l.refused.length} refused (${l.refused.map((r) => r.outcome).join(', ')})`]
            : []),
          ...(l.revocationVersion === undefined
            ? []
            : [`revocation version ${l.revocationVersion} to carry`]),
          ...(l.beacon ? ['time beacon'] : []),
          ...(l.outboxAck ? ['outbox ack to carry'] : []),
          ...(l.anchor ? ['issuer anchor update to carry'] : []),
        ];
        lines.push(`${l.lock}: ${parts.join(', ')}`);
      }
      if (lines.length === 0) lines.push('nothing shared with you yet');
      streams.stdout.write(lines.join('\n') + '\n');
      return CLOUD_EXIT.OK;
    });
  },
};

/** The module run as a command of its own is `tandem sync`. */
export const run = sync.run;
