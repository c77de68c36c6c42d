/**
 * `tandem lock`: runs the lock runtime (issue 3, "How it starts"). On the Pi: `tandem lock --config
 * /etc/tandem/lock.json`, under systemd, which restarts it after a crash; it always comes back locked. On a
 * laptop or CI: `tandem lock --simulate`, with simulated solenoid, latch and accelerometer and the console
 * on a pseudo-terminal (or this terminal's stdin/stdout with `--console stdio`).
 */
import { existsSync } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { SystemClock } from '../hardware/src/clock.js';
import type { SerialConsole } from '../hardware/src/interfaces.js';
import { PtyConsole } from '../hardware/src/serial/pty-console.js';
import { StreamConsole } from '../hardware/src/serial/stream-console.js';
import { ConfigError, DEFAULT_CONFIG, loadLockFileConfig } from '../firmware-sim/src/config/lock-config.js';
import type { LockFileConfig } from '../firmware-sim/src/config/lock-config.js';
import { linuxHardware, simulatedHardware } from '../firmware-sim/src/runtime/hardware.js';
import { LockRuntime } from '../firmware-sim/src/runtime/lock-runtime.js';
import type { BlenoLoader } from '../firmware-sim/src/ble/index.js';
import { CliError, EXIT, choice, flag, helpText, parse, parseUint, str } from './args.js';
import type { CliStreams, CommandSpec, Parsed } from './args.js';
import { Duplex } from 'node:stream';

const SPEC: CommandSpec = {
  name: 'lock',
  maxPositionals: 0,
  summary:
    'Runs the lock: hardware, stores, trusted time, the offline decision, theft detection and the provisioning console. It starts locked and stays locked on any fault; stop it with Ctrl-C or SIGTERM.',
  options: {
    config: {
      type: 'string',
      value: '<file>',
      description:
        'the lock configuration (JSON; samples in firmware-sim/config/); default: embedded defaults',
    },
    simulate: {
      type: 'boolean',
      description: 'simulated solenoid, latch and accelerometer instead of the Pi hardware',
    },
    console: {
      type: 'string',
      value: 'uart|pty|stdio|none',
      description:
        'where the provisioning console is: the configured UART (default on hardware), a pseudo-terminal made with socat (default with --simulate when socat is installed), this terminal, or none',
    },
    'data-dir': { type: 'string', value: '<dir>', description: "override the configuration's dataDir" },
    ble: {
      type: 'string',
      value: 'hci|none',
      description:
        'serve the GATT service with bleno on the system HCI adapter (default on hardware) or not at all (default with --simulate unless a radio is named)',
    },
    radio: {
      type: 'string',
      value: '<socket>',
      description:
        'serve BLE on the virtual radio listening at this Unix socket (node hardware/src/virtual-radio/serve.ts)',
    },
    'serve-radio': {
      type: 'string',
      value: '<socket>',
      description: 'host a virtual radio in this process, listening at this Unix socket, and serve BLE on it',
    },
    'device-id': {
      type: 'string',
      value: '<n>',
      description: "this lock's device id on the virtual radio (default 0)",
    },
  },
  notes: [
    'The lock identity (lock id, trust anchors, MQTT settings, the owner claim) is provisioned over the console: type help there.',
  ],
  examples: [
    'tandem lock --config firmware-sim/config/sim.json --simulate',
    'tandem lock --simulate --console stdio --data-dir /tmp/lock1',
    'tandem lock --simulate --serve-radio /tmp/tandem-radio.sock   # then: tandem unlock <lock> --radio /tmp/tandem-radio.sock',
    'sudo systemctl start tandem-lock   # on the Pi: runs tandem lock --config /etc/tandem/lock.json',
  ],
};

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, program)));
}

function log0(streams: CliStreams, consoleKind: string): NodeJS.WritableStream {
  return consoleKind === 'stdio' ? streams.stderr : streams.stdout;
}

/**
 * Makes `path` free for a radio server. A socket file left behind by a lock that was killed (Ctrl-C, kill -9)
 * is stale when nobody accepts on it: it is removed and reused. A socket someone listens on belongs to a
 * running lock or radio, and is never taken from it (issue 11 §4: the restart failed with EADDRINUSE, exit 70).
 */
export async function claimRadioSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') return;
    throw new CliError('ERR_IO', `--serve-radio ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (!isSocket) {
    throw new CliError('ERR_USAGE', `--serve-radio ${path} exists and is not a socket; choose another path`);
  }
  const listening = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (listening) {
    throw new CliError(
      'ERR_IO',
      `--serve-radio ${path}: another process is serving a radio there (a lock still running?); stop it, or choose another path`,
    );
  }
  await unlink(path).catch((e: unknown) => {
    if ((e as { code?: unknown }).code !== 'ENOENT') {
      throw new CliError(
        'ERR_IO',
        `--serve-radio ${path}: cannot remove the stale socket: ${(e as Error).message}`,
      );
    }
  });
}

/**
 * How the lock gets bleno: the system's HCI adapter, or bleno on a virtual radio (hosted here or reached over
 * a Unix socket). The virtual HCI module is installed before bleno is first required (hardware/README.md).
 */
async function bleLoader(
  p: Parsed,
  simulate: boolean,
  log: NodeJS.WritableStream,
  cleanups: (() => Promise<void>)[],
): Promise<BlenoLoader | undefined> {
  const radioPath = str(p, 'radio');
  const servePath = str(p, 'serve-radio');
  if (radioPath !== undefined && servePath !== undefined) {
    throw new CliError('ERR_USAGE', '--radio and --serve-radio are exclusive: join a radio, or host one');
  }
  const deviceId =
    str(p, 'device-id') === undefined ? 0 : parseUint(str(p, 'device-id')!, 'device-id', 0, 255);
  if (radioPath !== undefined || servePath !== undefined) {
    if (str(p, 'ble') === 'hci')
      throw new CliError('ERR_USAGE', '--ble hci and a virtual radio are exclusive');
    const vr = await import('../hardware/src/virtual-radio/index.js');
    if (servePath !== undefined) {
      const radio = new vr.VirtualRadio({
        clock: new vr.RealClock(),
        connectionIntervalMs: 30,
        linkLayerPayload: 27,
      });
      await claimRadioSocket(servePath);
      const server = await vr.serveRadio(radio, servePath);
      // Closing the server removes its socket file, so that the next start finds the path free.
      cleanups.push(() => server.close());
      vr.installVirtualHci(radio);
      log.write(`virtual radio: listening at ${servePath}\n`);
    } else {
      vr.installVirtualHci(await vr.connectRadio(radioPath!));
    }
    return () => vr.loadBleno({ deviceId });
  }
  const kind = choice(str(p, 'ble'), ['hci', 'none'] as const, 'ble', simulate ? 'none' : 'hci');
  if (kind === 'none') return undefined;
  const { loadSystemBleno } = await import('../firmware-sim/src/ble/bleno-lock-peripheral.js');
  return loadSystemBleno;
}

/** Runs the lock until SIGINT or SIGTERM. */
export async function run(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(SPEC, argv);
  if (p.help) {
    streams.stdout.write(helpText(SPEC));
    return EXIT.OK;
  }
  const simulate = flag(p, 'simulate');
  const consoleKind = choice(
    str(p, 'console'),
    ['uart', 'pty', 'stdio', 'none'] as const,
    'console',
    simulate ? (onPath('socat') ? 'pty' : 'stdio') : 'uart',
  );
  if (consoleKind === 'uart' && simulate) {
    throw new CliError(
      'ERR_USAGE',
      '--console uart needs the real hardware: drop --simulate or pick pty|stdio|none',
    );
  }
  let config: LockFileConfig;
  const path = str(p, 'config');
  try {
    config = path === undefined ? DEFAULT_CONFIG : await loadLockFileConfig(path);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError('ERR_INPUT', `${e.code}: ${e.message}`);
    throw e;
  }
  const dataDir =
    str(p, 'data-dir') ?? (path === undefined && simulate ? join('.tandem-tmp', 'lock') : config.dataDir);
  config = { ...config, dataDir };

  const cleanups: (() => Promise<void>)[] = [];
  const ble = await bleLoader(p, simulate, log0(streams, consoleKind), cleanups);
  const clock = new SystemClock();
  const hardware = simulate ? simulatedHardware(clock, config.hardware) : linuxHardware(config.hardware);
  let console: SerialConsole | undefined;
  if (consoleKind === 'pty') console = new PtyConsole({});
  else if (consoleKind === 'stdio') {
    console = new StreamConsole({
      stream: Duplex.from({ readable: streams.stdin, writable: streams.stdout }),
    });
  } else if (consoleKind === 'uart') console = hardware.console;

  let runtime: LockRuntime;
  try {
    runtime = await LockRuntime.open({
      config,
      hardware: { ...hardware, ...(console ? {} : { console: undefined }) },
      clock,
      ...(console ? { console } : {}),
      simulated: simulate,
      ...(ble ? { ble } : {}),
      // bleno is wedged beyond an in-process restart: exit so that systemd starts the lock again, locked.
      onFatal: (e) => {
        streams.stderr.write(`${e.code}: ${e.message}; exiting so the service manager restarts the lock\n`);
        void runtime.close().finally(() => process.exit(EXIT.INTERNAL));
      },
    });
  } catch (e) {
    // Hardware, store and BLE failures at start carry a code and a message that says what to do.
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_')) {
      throw new CliError('ERR_IO', `the lock could not start: ${code}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    throw e;
  }
  const s = runtime.status();
  const log = consoleKind === 'stdio' ? streams.stderr : streams.stdout;
  // A daemon ends when told to: the process exits once the runtime has closed (solenoid released, time floor
  // persisted), whatever handles (console, timers) remain; a close that hangs is cut short, since the
  // solenoid driver de-energises on exit by itself. The handlers go in before the banner: writes to a pipe are
  // synchronous, so a supervisor that signals as soon as it reads the banner would otherwise meet the default
  // action of SIGTERM (killed, no orderly stop).
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.write(`${signal}: stopping; the lock stays locked\n`);
    const cutShort = setTimeout(() => process.exit(EXIT.INTERNAL), 5000);
    runtime.close().then(
      async () => {
        for (const c of cleanups) await c().catch(() => undefined);
        clearTimeout(cutShort);
        process.exit(EXIT.OK);
      },
      () => process.exit(EXIT.INTERNAL),
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  log.write(
    `tandem lock ${s.lockId}: ${s.state}${runtime.corrupt.length > 0 ? ' (SAFE MODE: ' + runtime.corrupt.join(', ') + ' corrupt)' : ''}; ` +
      `${simulate ? 'simulated hardware' : 'Raspberry Pi hardware'}; data in ${dataDir}\n`,
  );
  if (console instanceof PtyConsole)
    log.write(`console: attach with  picocom -b 115200 ${console.peerPath}\n`);
  else if (consoleKind === 'stdio') log.write('console: type commands here (help lists them)\n');
  if (!runtime.authority)
    log.write('not provisioned: set lock-id, an issuer anchor and the claim on the console\n');

  return new Promise<number>(() => {});
}
