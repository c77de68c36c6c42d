/**
 * Module-resolution hook: makes `require('@abandonware/bluetooth-hci-socket')` (as done by bleno's hci.js
 * and mgmt.js and noble's hci.js) return the virtual socket class, so the native module is never loaded.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import createDebug from 'debug';
import { createHciSocketClass } from './hci-socket.js';
import type { VirtualHciSocketClass } from './hci-socket.js';
import type { HciProvider } from './radio.js';

const debug = createDebug('tandem:radio');

/** The package name the stacks require. */
export const HCI_SOCKET_MODULE = '@abandonware/bluetooth-hci-socket';

/** A file name that does not exist: the module object is put straight into the CommonJS cache under it. */
const VIRTUAL_FILENAME = fileURLToPath(new URL('./virtual-bluetooth-hci-socket.cjs', import.meta.url));

type ResolveFilename = (request: string, parent: unknown, isMain: boolean, options?: unknown) => string;

/** The parts of CommonJS `Module` used here, including the two internals every require hook relies on. */
interface ModuleInternals {
  new (id: string): { filename: string; loaded: boolean; exports: unknown };
  _resolveFilename: ResolveFilename;
  _cache: Record<string, unknown>;
}

const Module = createRequire(import.meta.url)('node:module') as ModuleInternals;
const internals = Module;

/** What {@link installVirtualHci} returns. */
export interface VirtualHciInstallation {
  /** The class that `require('@abandonware/bluetooth-hci-socket')` now returns. */
  readonly SocketClass: VirtualHciSocketClass;
  /** Remove the hook (modules that already hold the class keep it). */
  uninstall(): void;
}

let originalResolve: ResolveFilename | null = null;

/**
 * Hook CommonJS resolution so that the next `require('@abandonware/bluetooth-hci-socket')` returns a class
 * bound to `provider` (a {@link VirtualRadio} in this process, or a {@link RemoteRadio} from
 * {@link connectRadio}). Call it before bleno or noble is first required. Installing again rebinds the
 * class for modules required afterwards.
 */
export function installVirtualHci(provider: HciProvider): VirtualHciInstallation {
  const SocketClass = createHciSocketClass(provider);
  const mod = new Module(VIRTUAL_FILENAME);
  mod.filename = VIRTUAL_FILENAME;
  mod.loaded = true;
  mod.exports = SocketClass;
  internals._cache[VIRTUAL_FILENAME] = mod;
  if (originalResolve === null) {
    const original = internals._resolveFilename;
    originalResolve = original;
    internals._resolveFilename = function (request, parent, isMain, options) {
      if (request === HCI_SOCKET_MODULE || request.startsWith(`${HCI_SOCKET_MODULE}/`))
        return VIRTUAL_FILENAME;
      return original.call(this, request, parent, isMain, options);
    };
  }
  debug('virtual HCI socket installed');
  return {
    SocketClass,
    uninstall(): void {
      if (internals._cache[VIRTUAL_FILENAME] === mod) delete internals._cache[VIRTUAL_FILENAME];
      if (originalResolve !== null) {
        internals._resolveFilename = originalResolve;
        originalResolve = null;
      }
    },
  };
}
