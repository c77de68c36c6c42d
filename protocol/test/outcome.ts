/** Test helper: how a protocol call ends. */
import { ProtocolError } from '../src/errors.js';

/**
 * `'accepted'`, or `<code>: <message>` of the {@link ProtocolError} that `f` throws. Any other exception is
 * rethrown, failing the test: `protocol/` throws nothing else (SPEC §10, [TANDEM-STATUS-2]).
 */
export function outcome(f: () => unknown): string {
  try {
    f();
    return 'accepted';
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return `${e.code}: ${e.message}`;
  }
}
