// One error base class for every folder (issue 12 item 5; STYLE.md, after jose's JOSEError): each coded error
// class is a TandemError whose `code` and `name` its callers can rely on. CliError alone is not: `tandem --help`
// loads no protocol/ code (test/cli.test.ts).
import { describe, expect, it } from 'vitest';
import { ProtocolError, TandemError, isTandemError } from '../protocol/src/errors.js';
import { HardwareError } from '../hardware/src/interfaces.js';
import { VirtualRadioError } from '../hardware/src/virtual-radio/errors.js';
import { BleError } from '../firmware-sim/src/ble/errors.js';
import { ConfigError } from '../firmware-sim/src/config/lock-config.js';
import { ConsoleError } from '../firmware-sim/src/console/console-interpreter.js';
import { LockError } from '../firmware-sim/src/lock/errors.js';
import { MqttLinkError } from '../firmware-sim/src/mqtt/errors.js';
import { StoreError } from '../firmware-sim/src/store/errors.js';
import { GatewayError } from '../gateway/src/errors.js';
import { CloudError } from '../cloud-bridge/src/errors.js';
import { OidcError } from '../cloud-bridge/src/oidc/errors.js';

const cause = new Error('underlying');
const cases: [string, Error & { code: string }][] = [
  ['ProtocolError', new ProtocolError('ERR_CBOR_INVALID', 'CBOR item truncated', { cause })],
  ['HardwareError', new HardwareError('ERR_HW_NOT_OPEN', 'solenoid used before open()', { cause })],
  ['VirtualRadioError', new VirtualRadioError('ERR_RADIO_CLOCK', 'negative step', { cause })],
  ['BleError', new BleError('ERR_BLE_PERMISSION', 'grant CAP_NET_ADMIN', { cause })],
  ['ConfigError', new ConfigError('ERR_CONFIG_INVALID', 'pulseMs must be a number', { cause })],
  ['ConsoleError', new ConsoleError('ERR_CONSOLE_USAGE', '<kid> must be hex', { cause })],
  ['LockError', new LockError('ERR_LOCK_CLOSED', 'used after close()', { cause })],
  ['MqttLinkError', new MqttLinkError('ERR_MQTT_CREDENTIALS', 'password file not 0600', { cause })],
  ['StoreError', new StoreError('ERR_STORE_IO', 'EIO on write', { cause })],
  ['GatewayError', new GatewayError('ERR_GW_TIMEOUT', 'no result within 5 s', { cause })],
  ['CloudError', new CloudError('ERR_CLOUD_CONFIG', 'port out of range', { cause })],
  ['OidcError', new OidcError('ERR_OIDC_CONFIG', 'issuer URL missing', { cause })],
];

describe('TandemError', () => {
  it.each(cases)('%s is a TandemError with its code, name, message and cause', (name, e) => {
    expect(e).toBeInstanceOf(TandemError);
    expect(e).toBeInstanceOf(Error);
    expect(isTandemError(e)).toBe(true);
    expect(isTandemError(e, e.code)).toBe(true);
    expect(isTandemError(e, 'ERR_SOMETHING_ELSE')).toBe(false);
    expect(e.name).toBe(name);
    expect(e.code).toMatch(/^ERR_[A-Z0-9_]+$/);
    expect(e.message.length).toBeGreaterThan(0);
    expect(e.cause).toBe(cause);
  });

  it('a plain Error, or an object with a code, is not a TandemError', () => {
    expect(isTandemError(new Error('x'))).toBe(false);
    expect(isTandemError({ code: 'ERR_CBOR_INVALID', message: 'x' })).toBe(false);
    expect(isTandemError(undefined)).toBe(false);
  });
});
