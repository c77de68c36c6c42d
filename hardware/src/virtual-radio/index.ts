/**
 * Virtual HCI radio: a TypeScript stand-in for `@abandonware/bluetooth-hci-socket` that emulates LE
 * controllers on a shared simulated air, so that the real bleno (lock) and noble (phone) stacks run end to
 * end without Bluetooth hardware. See hardware/README.md, "Virtual radio".
 */
export { VirtualRadio } from './radio.js';
export type {
  VirtualRadioOptions,
  VirtualRadioEvents,
  ConnectionInfo,
  AttOnAir,
  HciChannel,
  HciProvider,
} from './radio.js';
export {
  ANDROID,
  IPHONE,
  IPHONE_15MS,
  PESSIMISTIC_PHONE,
  PI_ZERO_2_W,
  PI_ZERO_W,
  RADIO_PROFILES,
} from './profiles.js';
export type { ControllerProfile } from './profiles.js';
export {
  SIGNALLING_CID,
  SIGNAL,
  judgeParameterRequest,
  parseParameterRequest,
  parameterResponseFrame,
} from './signalling.js';
export type { ParameterRequest, ParameterUpdatePolicy, ParameterVerdict } from './signalling.js';
export { VirtualClock, RealClock } from './clock.js';
export type { RadioClock, RadioTimer, VirtualClockOptions } from './clock.js';
export { installVirtualHci, HCI_SOCKET_MODULE } from './install.js';
export type { VirtualHciInstallation } from './install.js';
export { createHciSocketClass } from './hci-socket.js';
export type { VirtualHciSocketApi, VirtualHciSocketClass, HciDeviceInfo } from './hci-socket.js';
export { serveRadio, connectRadio, RemoteRadio } from './link.js';
export type { RadioServer, RadioEndpoint } from './link.js';
export { VirtualRadioError } from './errors.js';
export type { VirtualRadioErrorCode } from './errors.js';
export { loadBleno, createNoble } from './stacks.js';
export type {
  Bleno,
  BlenoCharacteristicOptions,
  BlenoResultCodes,
  Noble,
  NobleCharacteristic,
  NoblePeripheral,
} from './stacks.js';
