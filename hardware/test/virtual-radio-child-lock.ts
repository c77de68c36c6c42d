/**
 * Child process for virtual-radio-multiprocess.test.ts: a bleno lock on HCI device 0 of a radio served by
 * the parent. Usage: node --import tsx virtual-radio-child-lock.ts <unix-socket-path>
 * Prints "ready <address>" once advertising, and exits when the link closes.
 */
import { connectRadio, installVirtualHci, loadBleno } from '../src/virtual-radio/index.js';
import { startLock } from './virtual-radio-fixture.js';

const path = process.argv[2];
if (path === undefined) {
  console.error('usage: virtual-radio-child-lock.ts <unix-socket-path>');
  process.exit(2);
}
const remote = await connectRadio(path);
remote.on('error', (err) => {
  console.error(`${err.code}: ${err.message}`);
  process.exit(1);
});
remote.on('close', () => process.exit(0));
installVirtualHci(remote);
const bleno = loadBleno({ deviceId: 0 });
await startLock(bleno);
bleno.on('accept', (address: string) => console.log(`accept ${address}`));
bleno.on('disconnect', (address: string) => console.log(`disconnect ${address}`));
console.log(`ready ${bleno.address}`);
