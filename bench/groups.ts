/**
 * Every bench group `npm run bench` knows, in the order it runs them. To add a group, write
 * `bench/<name>.ts` exporting a {@link BenchGroup} and add it to this list.
 */
import type { BenchGroup } from './lib.js';
import { bleGroup } from './ble.js';
import { cloudGroup } from './cloud.js';
import { firmwareGroup } from './firmware.js';
import { mqttGroup } from './mqtt.js';
import { protocolGroup } from './protocol.js';

export const groups: readonly BenchGroup[] = [protocolGroup, bleGroup, firmwareGroup, cloudGroup, mqttGroup];
