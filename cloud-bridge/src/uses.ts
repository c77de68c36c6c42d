/**
 * The uses a lock reported, counted against the shares they were made under ([TANDEM-SYNC-4]; issue 10). A
 * share with `maxUses` stops yielding delegated tokens once the cloud has seen that many uses
 * (`isLive` in oidc/delegations.ts), and the owner sees the count in the API's share view (`usesReported`).
 *
 * The lock is the authority on uses ([TANDEM-USES-1]); the cloud only mirrors what it reports. The ingestor
 * (ingest.ts) calls {@link countUse} once per audit record it stores for the first time, on both paths (MQTT
 * and a phone's upload), so a replayed or re-uploaded record never counts twice. A record counts when:
 *
 * - it is a request the lock counted ([TANDEM-USES-2]): its `event` is its command's own name (the lock
 *   accepted it, or acted before a fault), and the command is neither STATUS nor READ_AUDIT;
 * - its token id (key 8, the leaf's `cti`) is the `cti` of a share of that lock ([TANDEM-DLG-4], `shareCti`);
 * - the chain was one token (the `signers` detail names one signer, [TANDEM-AUDIT-1]): a delegator writes his
 *   link's `cti` himself ([TANDEM-USES-5]), so a re-sharer could otherwise write another rider's share id into
 *   his link and use up that rider's share in the cloud's view. Uses under a link are not mirrored: the
 *   record names the leaf only, and the lock still enforces the root's `maxUses` itself.
 */
import type { AuditRecord } from '../../protocol/src/mqtt.js';
import { Command } from '../../protocol/src/pop.js';
import { shareCti } from './oidc/delegations.js';
import type { CloudStore } from './store/types.js';

/** Commands that count no use ([TANDEM-USES-2]). */
const UNCOUNTED: ReadonlySet<Command> = new Set([Command.STATUS, Command.READ_AUDIT]);

/** The `event` a lock writes for a request it acted on: the command's name in lower case with dashes. */
export function commandEvent(command: Command): string {
  return Command[command].toLowerCase().replace(/_/g, '-');
}

/** Hex of the one signer thumbprint of a single-token chain, or undefined (several, none, malformed). */
function singleSigner(record: AuditRecord): string | undefined {
  const signers = record.detail.get('signers');
  return typeof signers === 'string' && /^[0-9a-f]{16}$/.test(signers) ? signers : undefined;
}

/** True when the lock counted a use for this record ([TANDEM-USES-2]) under a one-token chain. */
export function isCountedUse(record: AuditRecord): boolean {
  const { command, tokenId } = record;
  if (command === undefined || tokenId === undefined || UNCOUNTED.has(command)) return false;
  if (record.event !== commandEvent(command)) return false; // refused, busy, rate-limited...
  return singleSigner(record) !== undefined;
}

const same = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && Buffer.from(a).equals(Buffer.from(b));

/**
 * Counts one use against the share the record's token stands for, if any; returns that share's id. Called
 * after the record was stored for the first time, with the record already verified for its lock.
 */
export async function countUse(store: CloudStore, record: AuditRecord): Promise<string | undefined> {
  if (!isCountedUse(record)) return undefined;
  const tokenId = record.tokenId!;
  // shareCti is 16 bytes ([TANDEM-DLG-4]); any other length is a token the cloud did not mint.
  if (tokenId.length !== 16) return undefined;
  const share = (await store.sharesOfLock(record.lockId)).find((s) => same(shareCti(s.id), tokenId));
  if (share === undefined) return undefined;
  await store.reportUses(share.id, 1);
  return share.id;
}
