/**
 * The lock's console commands (provisioning, diagnostics and, with simulated hardware, fault injection).
 * Provisioning (flow 1): lock id, trust anchors, MQTT settings, and the claim that registers the owner key
 * and closes provisioning for good. The device key is made by the lock itself at first start; the console
 * only shows its public half.
 */
import { Status, publicKeyFromRaw } from '../../../protocol/src/index.js';
import type { Alg } from '../../../protocol/src/index.js';
import { ARG, ConsoleError } from '../console/console-interpreter.js';
import type { ConsoleCommand } from '../console/console-interpreter.js';
import type { LockRuntime } from './lock-runtime.js';
import { IDENTITY } from './lock-runtime.js';
import { loadOrCreateMqttPassword, writeNewMqttPassword } from '../mqtt/credentials.js';
import { mqttPasswordPath } from '../mqtt/start-lock-mqtt.js';
import { claimReceiptLine, recordClaimReceipt } from './claim-receipt.js';

/** ConfigStore key: the MQTT password has been shown on the console ([TANDEM-MQTT-13]). */
const MQTT_PASSWORD_SHOWN = 'identity.mqttPasswordShown';

const hexBytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
const role = ARG.oneOf('role', ['issuer', 'owner']);
const pubkey = ARG.hex('public-key', 32, 65);
const kid = ARG.hex('kid', 1, 16);

function keyOf(alg: string, hex: string): Uint8Array {
  try {
    return publicKeyFromRaw(alg as Alg, hexBytes(hex)).raw;
  } catch (e) {
    throw new ConsoleError(
      'ERR_CONSOLE_USAGE',
      `<public-key> is not a valid ${alg} key: ${(e as Error).message}`,
    );
  }
}

/** The command table for `runtime`. */
export function runtimeCommands(runtime: LockRuntime): ConsoleCommand[] {
  const sim = () => {
    const s = runtime.options.hardware.sim;
    if (!s) throw new ConsoleError('ERR_CONSOLE_SIMULATION_ONLY', 'no simulated hardware');
    return s;
  };
  const format = (o: Record<string, unknown>) =>
    Object.entries(o)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' ');
  return [
    {
      name: 'status',
      args: [],
      help: 'lock state, time bound, provisioning',
      access: 'always',
      run: () => format(runtime.status()),
    },
    {
      name: 'time',
      args: [],
      help: 'the trusted time bound',
      access: 'always',
      run: () => {
        const b = runtime.trustedClock.bound();
        const unknown = runtime.trustedClock.uncertainty() === null;
        // [TANDEM-TIME-6]: after a boot only the floor is known; say what brings the upper bound back.
        return `earliest=${new Date(b.earliest * 1000).toISOString()} latest=${unknown ? 'unknown (relay a beacon bound to a challenge nonce: tandem unlock --issuer-key or --beacon)' : new Date(b.latest * 1000).toISOString()} source=${runtime.trustedClock.source()}`;
      },
    },
    {
      name: 'provision show',
      args: [],
      help: 'identity, device key, anchors',
      access: 'always',
      run: () =>
        [
          `lock-id=${runtime.lockId ?? '-'} claimed=${runtime.claimed}`,
          `device-key=${Buffer.from(runtime.devicePublicKey).toString('hex')} (Ed25519)`,
          ...runtime.anchors
            .list()
            .map(
              (a) =>
                `anchor kid=${Buffer.from(a.kid).toString('hex')} ${a.role} ${a.name} ${a.alg} ${Buffer.from(a.key).toString('hex')}`,
            ),
          `mqtt=${runtime.options.config.mqtt?.url ?? '-'} username=${runtime.lockId ?? '-'}`,
          ...claimReceiptLine(runtime.stores.config),
        ].join('\n'),
    },
    {
      name: 'provision lock-id',
      args: [ARG.lockId],
      help: 'set the lock id (before the claim)',
      access: 'unclaimed',
      run: async ([id]) => {
        if (runtime.authority && runtime.lockId !== id) {
          throw new ConsoleError('ERR_CONSOLE_CLOSED', 'the lock id is fixed once the lock serves requests');
        }
        await runtime.stores.config.set(IDENTITY.lockId, id!);
        await runtime.reload();
        return `lock-id=${id}`;
      },
    },
    {
      name: 'provision anchor add',
      args: [kid, ARG.alg, pubkey, role, ARG.name],
      help: 'trust a key: the cloud issuer, or an owner',
      access: 'unclaimed',
      run: async ([k, alg, key, r, name]) => {
        await runtime.anchors.add({
          kid: hexBytes(k!),
          alg: alg as Alg,
          key: keyOf(alg!, key!),
          role: r as 'issuer' | 'owner',
          name: name!,
        });
        await runtime.reload();
        return `anchor ${k} added`;
      },
    },
    {
      name: 'provision anchor remove',
      args: [kid],
      help: 'stop trusting a key (never the last issuer)',
      access: 'unclaimed',
      run: async ([k]) => {
        const refusal = await runtime.anchors.remove(hexBytes(k!));
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
        if (runtime.lockId === undefined || runtime.anchors.count('issuer') === 0) {
          throw new ConsoleError(
            'ERR_CONSOLE_USAGE',
            'set the lock id and an issuer anchor before the claim',
          );
        }
        await runtime.anchors.add({
          kid: hexBytes(k!),
          alg: alg as Alg,
          key: keyOf(alg!, key!),
          role: 'owner',
          name: owner!,
        });
        // [TANDEM-CLAIM-1]: stored before provisioning closes, so `provision show` can always print it.
        const receipt = await recordClaimReceipt(runtime.stores.config, (r) => runtime.signClaimReceipt(r), {
          lockId: runtime.lockId,
          owner: owner!,
          alg: alg as Alg,
          key: keyOf(alg!, key!),
          kid: hexBytes(k!),
          claimedAt: runtime.trustedClock.bound().earliest,
        });
        await runtime.stores.config.set(IDENTITY.claimed, true);
        return `claimed by ${owner}; provisioning closed; claim-receipt=${receipt}`;
      },
    },
    {
      name: 'audit',
      args: [{ ...ARG.uint('count', 50), optional: true }],
      help: 'the newest audit records (default 10)',
      access: 'always',
      run: ([n]) => {
        const count = Math.min(Number(n ?? 10), 50);
        const records = runtime.stores.audit.records().slice(-count);
        return (
          records
            .map((r) => `#${r.seq} ${new Date(r.time).toISOString()} ${r.payload.length} B`)
            .join('\n') || '(empty)'
        );
      },
    },
    {
      name: 'sim latch push',
      args: [],
      help: 'a rider pushes the shackle closed',
      access: 'simulation',
      run: () => `latched=${sim().mechanism.push()}`,
    },
    {
      name: 'sim fault',
      args: [ARG.oneOf('fault', ['jammed', 'stuck', 'open-circuit', 'latch-disconnected', 'clear'])],
      help: 'inject a hardware fault',
      access: 'simulation',
      run: ([f]) => {
        const { mechanism } = sim();
        if (f === 'clear') {
          mechanism.clearFault();
          mechanism.solenoid.clearFault();
          mechanism.latch.clearFault();
        } else if (f === 'jammed') mechanism.injectFault('jammed');
        else if (f === 'latch-disconnected') mechanism.latch.injectFault('disconnected');
        else mechanism.solenoid.injectFault(f as 'stuck' | 'open-circuit');
        return `fault=${f}`;
      },
    },
    {
      name: 'sim motion',
      args: [
        ARG.oneOf('kind', ['bump', 'shake', 'carry', 'tilt']),
        { ...ARG.uint('ms-or-deg', 600_000), optional: true },
      ],
      help: 'move the simulated accelerometer',
      access: 'simulation',
      run: ([kind, n]) => {
        const a = sim().accelerometer;
        const v = Number(n ?? (kind === 'tilt' ? 40 : 5000));
        if (kind === 'bump') a.bump();
        else if (kind === 'shake') a.shake(v);
        else if (kind === 'carry') {
          a.tilt(40);
          a.move(v);
        } else a.tilt(v);
        return `motion=${kind}`;
      },
    },
    {
      name: 'alarm clear',
      args: [],
      help: 'clear the theft alarm (simulation; an owner does it with a signed command)',
      access: 'simulation',
      run: async () => {
        runtime.theft.clearAlarm();
        await runtime.stateMachine.clearAlarm();
        return `state=${runtime.stateMachine.reportedState} status=${Status[Status.OK]}`;
      },
    },
    ...mqttCommands(runtime),
  ];
}

/**
 * The MQTT link's console commands: its status, and its password ([TANDEM-MQTT-13]), shown once for
 * registration with the cloud (which keeps only a hash). Showing it again would let anyone at the console
 * later copy a live credential; a new one can be made instead, which the cloud must then register.
 */
function mqttCommands(runtime: LockRuntime): ConsoleCommand[] {
  const path = () => mqttPasswordPath(runtime.options.config);
  return [
    {
      name: 'mqtt',
      args: [],
      help: 'MQTT link: broker, up/down, last error, counters',
      access: 'always',
      run: () => {
        const s = runtime.mqtt?.status();
        if (!s) return `mqtt=${runtime.status().mqtt} url=${runtime.options.config.mqtt?.url ?? '-'}`;
        return `mqtt=${s.link} url=${s.url} username=${runtime.lockId ?? '-'} attempt=${s.attempt} connects=${s.connects} published=${s.published} refused=${s.refused} lastError=${JSON.stringify(s.lastError ?? null)}`;
      },
    },
    {
      name: 'mqtt password',
      args: [],
      help: 'show the MQTT password once, to register it with the cloud',
      access: 'always',
      run: async () => {
        if (runtime.stores.config.get(MQTT_PASSWORD_SHOWN) === true) {
          throw new ConsoleError(
            'ERR_CONSOLE_CLOSED',
            'the MQTT password was shown once already; `mqtt password new` makes a new one (register it with the cloud)',
          );
        }
        const password = await loadOrCreateMqttPassword(path(), runtime.options.random);
        await runtime.stores.config.set(MQTT_PASSWORD_SHOWN, true);
        return `username=${runtime.lockId ?? '-'} password=${password}`;
      },
    },
    {
      name: 'mqtt password new',
      args: [],
      help: 'make a new MQTT password and show it once (used from the next start)',
      access: 'unclaimed',
      run: async () => {
        const password = await writeNewMqttPassword(path(), runtime.options.random);
        await runtime.stores.config.set(MQTT_PASSWORD_SHOWN, true);
        return `username=${runtime.lockId ?? '-'} password=${password} (used from the next start)`;
      },
    },
  ];
}
