/**
 * The console's diagnostic commands: read-only views of the running lock (state, trusted time, the audit
 * log, the MQTT link), open at all times, before and after the claim.
 */
import { ARG } from '../console/console-interpreter.js';
import type { ConsoleCommand } from '../console/console-interpreter.js';
import { describeAuditRecord } from '../lock/audit.js';
import type { TrustedClock } from '../lock/index.js';
import type { LinkStatus } from '../mqtt/lock-mqtt-client.js';
import type { AuditLog } from '../store/index.js';

/** What the diagnostics read of the lock. */
export interface DiagnosticSource {
  /** The runtime's one-line summary (`status`). */
  status(): Record<string, string | number | boolean>;
  readonly time: Pick<TrustedClock, 'bound' | 'uncertainty' | 'source'>;
  readonly audit: Pick<AuditLog, 'records'>;
  readonly lockId: () => string | undefined;
  /** The MQTT link's counters, once it runs. */
  mqttStatus(): LinkStatus | undefined;
  /** The broker URL of the config file's `mqtt` section, if any. */
  readonly mqttUrl: string | undefined;
}

const format = (o: Record<string, unknown>): string =>
  Object.entries(o)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');

/** The diagnostics table. */
export function diagnosticCommands(source: DiagnosticSource): ConsoleCommand[] {
  return [
    {
      name: 'status',
      args: [],
      help: 'lock state, time bound, provisioning',
      access: 'always',
      run: () => format(source.status()),
    },
    {
      name: 'time',
      args: [],
      help: 'the trusted time bound',
      access: 'always',
      run: () => {
        const b = source.time.bound();
        const unknown = source.time.uncertainty() === null;
        // [TANDEM-TIME-6]: after a boot only the floor is known; say what brings the upper bound back.
        return `earliest=${new Date(b.earliest * 1000).toISOString()} latest=${unknown ? 'unknown (relay a beacon bound to a challenge nonce: tandem unlock --issuer-key or --beacon)' : new Date(b.latest * 1000).toISOString()} source=${source.time.source()}`;
      },
    },
    {
      name: 'audit',
      args: [{ ...ARG.uint('count', 50), optional: true }],
      help: 'the newest audit records (default 10)',
      access: 'always',
      run: ([n]) => {
        const count = Math.min(Number(n ?? 10), 50);
        const records = source.audit.records().slice(-count);
        return (
          records
            .map((r) => `#${r.seq} ${describeAuditRecord(r.payload)} ${r.payload.length} B`)
            .join('\n') || '(empty)'
        );
      },
    },
    {
      name: 'mqtt',
      args: [],
      help: 'MQTT link: broker, up/down, last error, counters',
      access: 'always',
      run: () => {
        const s = source.mqttStatus();
        if (!s) return `mqtt=${source.status().mqtt} url=${source.mqttUrl ?? '-'}`;
        return `mqtt=${s.link} url=${s.url} username=${source.lockId() ?? '-'} attempt=${s.attempt} connects=${s.connects} published=${s.published} refused=${s.refused} lastError=${JSON.stringify(s.lastError ?? null)}`;
      },
    },
  ];
}
