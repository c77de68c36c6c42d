/**
 * Stand-alone radio process for demos: serves one real-time {@link VirtualRadio} so that a lock process and
 * one or more phone processes (each `connectRadio()` + `installVirtualHci()`) can meet.
 *
 *   node --import tsx hardware/src/virtual-radio/serve.ts --path /tmp/tandem-radio.sock \
 *     [--interval 30] [--ll 27] [--mtu-cap 185] [--loss 0.05] [--latency 0] [--seed 1] [--supervision 2000]
 *
 * `--port N` serves on 127.0.0.1:N instead of a Unix socket. Stops on SIGINT/SIGTERM.
 */
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { VirtualRadio } from './radio.js';
import type { VirtualRadioOptions } from './radio.js';
import { serveRadio } from './link.js';
import type { RadioServer } from './link.js';

/** Parse the command line and serve until a signal arrives; resolves with the running server. */
export async function main(argv: string[]): Promise<RadioServer> {
  const { values } = parseArgs({
    args: argv,
    options: {
      path: { type: 'string' },
      port: { type: 'string' },
      interval: { type: 'string' },
      ll: { type: 'string' },
      'mtu-cap': { type: 'string' },
      loss: { type: 'string' },
      latency: { type: 'string' },
      seed: { type: 'string' },
      supervision: { type: 'string' },
      'adv-interval': { type: 'string' },
    },
  });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const options: VirtualRadioOptions = {
    connectionIntervalMs: num(values.interval),
    linkLayerPayload: num(values.ll),
    attMtuCap: num(values['mtu-cap']),
    lossRate: num(values.loss),
    latencyMs: num(values.latency),
    seed: num(values.seed),
    supervisionTimeoutMs: num(values.supervision),
    advertisingIntervalMs: num(values['adv-interval']),
  };
  const radio = new VirtualRadio(options);
  const path = values.path;
  if (path === undefined && values.port === undefined) {
    throw new Error('usage: serve.ts --path <unix-socket> | --port <tcp-port on 127.0.0.1> [radio options]');
  }
  if (path !== undefined) rmSync(path, { force: true });
  const server = await serveRadio(radio, path !== undefined ? { path } : { port: Number(values.port) });
  console.log(`virtual radio serving on ${JSON.stringify(server.endpoint)}`);
  radio.on('connect', (c) =>
    console.log(`connect ${c.centralAddress} -> ${c.peripheralAddress}, ${c.intervalMs} ms`),
  );
  radio.on('disconnect', (c) =>
    console.log(
      `disconnect ${c.centralAddress} -> ${c.peripheralAddress}, reason 0x${c.disconnectReason?.toString(16)}`,
    ),
  );
  const stop = (): void => {
    void server.close().then(() => {
      radio.close();
      process.exit(0);
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return server;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error((err as Error).message);
    process.exit(2);
  });
}
