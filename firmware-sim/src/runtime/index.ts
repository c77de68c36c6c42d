/** The lock runtime's entry point: what `tandem lock` and the start-up benchmark load. */
export { LockRuntime } from './lock-runtime.js';
export { IDENTITY, LockIdentity } from './identity.js';
export type { LockRuntimeOptions } from './lock-runtime.js';
export { linuxHardware, simulatedHardware } from './hardware.js';
export type { LockHardware } from './hardware.js';
export { DEFAULT_CONFIG, loadLockFileConfig, parseLockFileConfig } from '../config/lock-config.js';
export type { LockFileConfig } from '../config/lock-config.js';
export { SystemClock } from '../../../hardware/src/clock.js';
