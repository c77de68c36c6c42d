/**
 * Child of the `firmware` bench group (bench/firmware.ts, `runtime.*`): starts the lock as `tandem lock` runs
 * it on a Pi, from the same file (`dist/bundle/lock.js`, the one-file bundle the CLI's dispatcher imports for
 * `tandem lock`; tsc's `dist/` where there is no bundle), issue 8 §2: the BLE stack loaded and advertising
 * (bleno through the runtime's own loader, on the virtual radio standing in for the native
 * bluetooth-hci-socket module), the provisioning console on the UART (serialport, its mock binding standing
 * in for /dev/serial0) and the hardware drivers (simulated: the Linux ones spawn libgpiod tools and read IIO
 * files that only a Pi has). It exits as soon as it is locked, serving and advertising.
 *
 *   node bench/start-lock.mjs provision <dir>   # once: provisions a lock in <dir> (lock id, issuer anchor)
 *   node bench/start-lock.mjs start <dir>       # timed: opens the runtime on <dir>, prints one JSON line
 *   node bench/start-lock.mjs start-bare <dir>  # the same without BLE and console (the row before issue 8)
 *   node bench/start-lock.mjs imports           # diagnostic: ms and RSS bytes each module's import adds
 *
 * `start` prints `{"ready": performance.now() ms, "rss": bytes, "maxRSS": KB, "peakKB": VmHWM KB}` once serving.
 *
 * `start` and `start-bare` compile the bundle through Node's module compile cache in `<dir>/../compile-cache`
 * (shared by the runs of one bench, filled by its untimed first run), as the Pi's systemd unit has Node do
 * in /var/lib/tandem/compile-cache (NODE_COMPILE_CACHE, docs/pi-guide.md). Node 22.1 and later have it;
 * on Node 20 `module.enableCompileCache` does not exist and nothing changes.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

const DIST = new URL('../dist/', import.meta.url);
const mod = (path) => import(new URL(path, DIST).href);

const RUNTIME = 'firmware-sim/src/runtime/lock-runtime.js';
const HARDWARE = 'firmware-sim/src/runtime/hardware.js';
const CONFIG = 'firmware-sim/src/config/lock-config.js';
const CLOCK = 'hardware/src/clock.js';
const SERIAL = 'hardware/src/serial/serialport-console.js';
const RADIO = 'hardware/src/virtual-radio/index.js';

// What `tandem lock` loads on a Pi: the CLI's dispatcher imports the lock's one-file bundle
// (scripts/bundle.mjs, dist/bundle/lock.js); tsc's dist/ where no bundle was built.
const BUNDLE = new URL('bundle/lock.js', DIST);
const bundled = existsSync(BUNDLE);

async function loadRuntime() {
  if (bundled) {
    // bin/tandem.js -> the dispatcher (main.js, its command table) -> lock.js: the same files, in that order.
    await import(new URL('bundle/main.js', DIST).href);
    return import(BUNDLE.href);
  }
  const [runtime, hardware, config, clock, serial] = await Promise.all([
    mod(RUNTIME),
    mod(HARDWARE),
    mod(CONFIG),
    mod(CLOCK),
    mod(SERIAL),
  ]);
  return { ...runtime, ...hardware, ...config, ...clock, ...serial, loadVirtualRadio: () => mod(RADIO) };
}

/**
 * The UART console and bleno as a Pi has them, with the two stand-ins named in the module comment, taken
 * from the same file as the runtime (the bundle holds both, loaded only when called).
 */
async function piPeripherals(lock, config) {
  (await lock.loadMockBinding()).createPort(config.hardware.serialPath, {});
  const vr = await lock.loadVirtualRadio();
  const radio = new vr.VirtualRadio({ profiles: { 0: vr.PI_ZERO_W } });
  vr.installVirtualHci(radio);
  return {
    console: new lock.SerialportConsole({
      path: config.hardware.serialPath,
      baudRate: config.hardware.serialBaudRate,
      openPort: lock.mockPortOpener,
    }),
    // The runtime's own loader, as `tandem lock` on a Pi uses it (bleno reads its device id at first use).
    ble: () => {
      process.env.BLENO_HCI_DEVICE_ID = '0';
      return lock.loadSystemBleno();
    },
  };
}

async function open(dir, { pi = false } = {}) {
  const lock = await loadRuntime();
  const { LockRuntime, simulatedHardware, DEFAULT_CONFIG, SystemClock } = lock;
  const config = { ...DEFAULT_CONFIG, dataDir: dir };
  const clock = new SystemClock();
  const hardware = simulatedHardware(clock, config.hardware);
  if (!pi) {
    return LockRuntime.open({
      config,
      hardware: { ...hardware, console: undefined },
      clock,
      simulated: true,
    });
  }
  const { console, ble } = await piPeripherals(lock, config);
  return LockRuntime.open({ config, hardware: { ...hardware, console }, clock, simulated: true, ble });
}

/** Event-loop turns until the BLE service runs (advertising); bounded. */
async function advertising(runtime) {
  for (let i = 0; i < 5000 && runtime.peripheral?.state !== 'running'; i++) {
    await new Promise((r) => setTimeout(r, 1));
  }
  return runtime.peripheral?.state === 'running';
}

/**
 * Peak RSS of this process image in KB: VmHWM of /proc/self/status. `resourceUsage().maxRSS` is not used for
 * the ratio because Linux carries the larger of the parent's and the child's peak across fork and exec, so
 * a child of a big bench process reports the parent's peak (falls back to it where /proc is missing).
 */
function peakRssKB() {
  try {
    const m = /VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

const [command, dir] = process.argv.slice(2);
if ((command === 'start' || command === 'start-bare') && dir !== undefined) {
  nodeModule.enableCompileCache?.(join(dirname(dir), 'compile-cache'));
}
if (command === 'provision') {
  const { IDENTITY } = await loadRuntime();
  const { generateKeyPair } = await mod('protocol/src/index.js');
  const runtime = await open(dir);
  await runtime.stores.config.set(IDENTITY.lockId, 'lock-bench');
  const issuer = generateKeyPair('EdDSA');
  await runtime.anchors.add({
    kid: Uint8Array.of(1),
    alg: issuer.publicKey.alg,
    key: issuer.publicKey.raw,
    role: 'issuer',
    name: 'tandem',
  });
  await runtime.close();
  process.exit(0);
} else if (command === 'start' || command === 'start-bare') {
  const pi = command === 'start';
  const runtime = await open(dir, { pi });
  await runtime.reload();
  if (pi && !(await advertising(runtime))) {
    process.stderr.write(`BLE not advertising: ${JSON.stringify(runtime.status())}\n`);
    process.exit(1);
  }
  if (runtime.authority === undefined || runtime.stateMachine.reportedState !== 'locked') {
    process.stderr.write(`not serving: ${JSON.stringify(runtime.status())}\n`);
    process.exit(1);
  }
  const ready = performance.now();
  const rss = process.memoryUsage().rss;
  const maxRSS = process.resourceUsage().maxRSS;
  process.stdout.write(`${JSON.stringify({ ready, rss, maxRSS, peakKB: peakRssKB() })}\n`);
  process.exit(0);
} else if (command === 'imports') {
  // Each step costs only what it loads new (modules are cached), so that each line is that layer's own cost.
  // With the bundle: the files `tandem lock` loads, in its order, then what the Pi peripherals load when
  // they start (serialport's native binding, bleno; the virtual radio is the bench's stand-in for the HCI
  // socket). Without: third-party packages first, then ours from the bottom of the import graph up.
  const steps = bundled
    ? [
        ['ESM loader (first dynamic import)', () => import('data:text/javascript,export default 0')],
        ['dispatcher (bundle/main.js)', () => import(new URL('bundle/main.js', DIST).href)],
        ['lock bundle (bundle/lock.js)', () => import(BUNDLE.href)],
        ['serialport + native binding', async () => (await import(BUNDLE.href)).loadMockBinding()],
        [
          'virtual radio (stand-in)',
          async () => {
            const vr = await (await import(BUNDLE.href)).loadVirtualRadio();
            vr.installVirtualHci(new vr.VirtualRadio());
          },
        ],
        [
          'bleno',
          async () => {
            process.env.BLENO_HCI_DEVICE_ID = '0';
            (await import(BUNDLE.href)).loadSystemBleno();
          },
        ],
      ]
    : [
        ['ESM loader (first dynamic import)', () => import('data:text/javascript,export default 0')],
        ['debug', () => import('debug')],
        ['cbor-x', () => import('cbor-x')],
        ['protocol', () => mod('protocol/src/index.js')],
        ['hardware (clock, sim gpio, sim accel)', () => mod(HARDWARE)],
        ['firmware-sim/store', () => mod('firmware-sim/src/store/index.js')],
        ['firmware-sim/lock', () => mod('firmware-sim/src/lock/index.js')],
        ['firmware-sim/theft', () => mod('firmware-sim/src/theft/theft-detector.js')],
        ['firmware-sim/ble', () => mod('firmware-sim/src/ble/index.js')],
        ['firmware-sim/console', () => mod('firmware-sim/src/console/console-interpreter.js')],
        ['serialport', () => import('serialport')],
        [
          'bleno (virtual HCI)',
          async () => {
            const vr = await mod(RADIO);
            vr.installVirtualHci(new vr.VirtualRadio());
            vr.loadBleno({ deviceId: 0 });
          },
        ],
        ['firmware-sim/runtime', () => mod(RUNTIME)],
        ['config', () => mod(CONFIG)],
      ];
  const ms = {};
  const rss = {};
  for (const [name, load] of steps) {
    const t = performance.now();
    const r = process.memoryUsage().rss;
    await load();
    ms[name] = performance.now() - t;
    rss[name] = process.memoryUsage().rss - r;
  }
  process.stdout.write(`${JSON.stringify({ ms, rss })}\n`);
  process.exit(0);
} else {
  process.stderr.write('usage: node bench/start-lock.mjs provision|start|start-bare <dir> | imports\n');
  process.exit(2);
}
