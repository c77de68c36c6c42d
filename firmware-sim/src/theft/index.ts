/** Theft detection on the lock's accelerometer (README.md, "Theft detection"). */
export { TheftDetector, DEFAULT_THEFT_DETECTOR_CONFIG } from './theft-detector.js';
export type {
  AlarmState,
  TheftDetectorConfig,
  TheftEvent,
  TheftEventKind,
  TheftFeatures,
} from './theft-detector.js';
export { TRACE_KINDS, formatTraceCsv, generateTrace, parseTraceCsv } from './traces.js';
export type { TraceKind, TraceOptions } from './traces.js';
