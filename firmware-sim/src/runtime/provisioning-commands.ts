/**
 * The console's provisioning commands (ARCHITECTURE.md, flow 1): lock id, trust anchors, the MQTT password,
 * and the claim that registers the owner key and closes provisioning for good. The device key is made by the
 * lock itself at first start ({@link LockIdentity.load}); the console only shows its public half.
 */
import { ARG, ConsoleError } from '../console/console-interpreter.js';
import type { ConsoleCommand } from '../console/console-interpreter.js';
import type { AnchorStore } from '../lock/index.js';
import { anchorFromConsole, hexBytes } from './identity.js';
import type { LockIdentity } from './identity.js';
import type { ClaimInput } from './claim-receipt.js';

/** What provisioning reads and changes of the lock: its identity and anchors, nothing else. */
export interface ProvisioningTarget {
  readonly identity: Pick<
    LockIdentity,
    | 'lockId'
    | 'setLockId'
    | 'claimed'
    | 'markClaimed'
    | 'devicePublicKey'
    | 'mqttPasswordShown'
    | 'markMqttPasswordShown'
  >;
  readonly anchors: Pick<AnchorStore, 'list' | 'add' | 'remove' | 'count'>;
  /** The broker URL of the config file's `mqtt` section, if any. */
  readonly mqttUrl: string | undefined;
  /** The MQTT password ([TANDEM-MQTT-13]): the stored one (made at first use), or a new one. */
  readonly mqttPassword: { current(): Promise<string>; renew(): Promise<string> };
  /**
   * The claim receipt ([TANDEM-CLAIM-1], `claim-receipt.ts`): `record` signs it with the device key at the
   * lock's time floor and keeps it; `lines` shows the kept one.
   */
  readonly claimReceipt: {
    record(input: Omit<ClaimInput, 'claimedAt'>): Promise<string>;
    lines(): string[];
  };
  /** True once the lock serves requests: its lock id is then fixed. */
  serving(): boolean;
  /** Starts what the identity now allows (authority, BLE, MQTT). */
  reload(): Promise<void>;
}

const role = ARG.oneOf('role', ['issuer', 'owner']);
const pubkey = ARG.hex('public-key', 32, 65);
const kid = ARG.hex('kid', 1, 16);

/** The provisioning table. */
export function provisioningCommands(target: ProvisioningTarget): ConsoleCommand[] {
  const { identity, anchors } = target;
  return [
    {
      name: 'provision show',
      args: [],
      help: 'identity, device key, anchors',
      access: 'always',
      run: () =>
        [
          `lock-id=${identity.lockId ?? '-'} claimed=${identity.claimed}`,
          `device-key=${Buffer.from(identity.devicePublicKey).toString('hex')} (Ed25519)`,
          ...anchors
            .list()
            .map(
              (a) =>
                `anchor kid=${Buffer.from(a.kid).toString('hex')} ${a.role} ${a.name} ${a.alg} ${Buffer.from(a.key).toString('hex')}`,
            ),
          `mqtt=${target.mqttUrl ?? '-'} username=${identity.lockId ?? '-'}`,
          ...target.claimReceipt.lines(),
        ].join('\n'),
    },
    {
      name: 'provision lock-id',
      args: [ARG.lockId],
      help: 'set the lock id (before the claim)',
      access: 'unclaimed',
      run: async ([id]) => {
        if (target.serving() && identity.lockId !== id) {
          throw new ConsoleError('ERR_CONSOLE_CLOSED', 'the lock id is fixed once the lock serves requests');
        }
        await identity.setLockId(id!);
        await target.reload();
        return `lock-id=${id}`;
      },
    },
    {
      name: 'provision anchor add',
      args: [kid, ARG.alg, pubkey, role, ARG.name],
      help: 'trust a key: the cloud issuer, or an owner',
      access: 'unclaimed',
      run: async ([k, alg, key, r, name]) => {
        await anchors.add(anchorFromConsole(k!, alg!, key!, r as 'issuer' | 'owner', name!));
        await target.reload();
        return `anchor ${k} added`;
      },
    },
    {
      name: 'provision anchor remove',
      args: [kid],
      help: 'stop trusting a key (never the last issuer)',
      access: 'unclaimed',
      run: async ([k]) => {
        const refusal = await anchors.remove(hexBytes(k!));
        if (refusal) throw new ConsoleError('ERR_CONSOLE_USAGE', `anchor ${k} not removed: ${refusal}`);
        return `anchor ${k} removed`;
      },
    },
    {
      name: 'provision claim',
      args: [kid, ARG.alg, pubkey, ARG.name],
      help: "register the owner's phone key and close provisioning",
      access: 'unclaimed',
      run: async ([k, alg, key, owner]) => {
        if (identity.lockId === undefined || anchors.count('issuer') === 0) {
          throw new ConsoleError(
            'ERR_CONSOLE_USAGE',
            'set the lock id and an issuer anchor before the claim',
          );
        }
        const anchor = anchorFromConsole(k!, alg!, key!, 'owner', owner!);
        await anchors.add(anchor);
        // [TANDEM-CLAIM-1]: stored before provisioning closes, so `provision show` can always print it.
        const receipt = await target.claimReceipt.record({
          lockId: identity.lockId,
          owner: owner!,
          alg: anchor.alg,
          key: anchor.key,
          kid: anchor.kid,
        });
        await identity.markClaimed();
        return `claimed by ${owner}; provisioning closed; claim-receipt=${receipt}`;
      },
    },
    // The MQTT password ([TANDEM-MQTT-13]) is shown once, for registration with the cloud (which keeps only a
    // hash). Showing it again would let anyone at the console later copy a live credential; a new one can be
    // made instead, which the cloud must then register.
    {
      name: 'mqtt password',
      args: [],
      help: 'show the MQTT password once, to register it with the cloud',
      access: 'always',
      run: async () => {
        if (identity.mqttPasswordShown) {
          throw new ConsoleError(
            'ERR_CONSOLE_CLOSED',
            'the MQTT password was shown once already; `mqtt password new` makes a new one (register it with the cloud)',
          );
        }
        const password = await target.mqttPassword.current();
        await identity.markMqttPasswordShown();
        return `username=${identity.lockId ?? '-'} password=${password}`;
      },
    },
    {
      name: 'mqtt password new',
      args: [],
      help: 'make a new MQTT password and show it once (used from the next start)',
      access: 'unclaimed',
      run: async () => {
        const password = await target.mqttPassword.renew();
        await identity.markMqttPasswordShown();
        return `username=${identity.lockId ?? '-'} password=${password} (used from the next start)`;
      },
    },
  ];
}
