/**
 * Logging of refusals and notable events. Every refusal is logged with a reason (issue 9: "refused and logged
 * with a reason"); the sink is injected so that tests can assert what was logged, and defaults to `debug`
 * namespaces (`tandem:cloud:broker`, `tandem:cloud:bridge`, `DEBUG=tandem:cloud:*` to see them).
 */
import createDebug from 'debug';

/** One log entry. */
export interface LogEntry {
  readonly level: 'info' | 'warn';
  /** Which part wrote it: `broker`, `bridge`, `ingest`, `admin`. */
  readonly source: string;
  /** What happened, e.g. `refused publish`, `refused connect`, `fork`. */
  readonly event: string;
  /** The MQTT user name or lock id concerned, when known. */
  readonly who?: string | undefined;
  /** Why it was refused, or other facts. */
  readonly reason?: string | undefined;
}

/** Where log entries go. */
export type LogSink = (entry: LogEntry) => void;

const sinks = new Map<string, createDebug.Debugger>();

/** The default sink: one `debug` namespace per source. */
export const debugSink: LogSink = (e) => {
  let d = sinks.get(e.source);
  if (d === undefined) {
    d = createDebug(`tandem:cloud:${e.source}`);
    sinks.set(e.source, d);
  }
  d(
    '%s %s%s%s',
    e.level,
    e.event,
    e.who === undefined ? '' : ` ${e.who}`,
    e.reason === undefined ? '' : `: ${e.reason}`,
  );
};
