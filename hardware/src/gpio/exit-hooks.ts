/**
 * Registration of synchronous work for process exit. The solenoid driver uses it to drive its line low when
 * the process ends mid-pulse (an uncaught exception, process.exit()). Injected so that tests can fire the
 * hook without ending the test runner.
 */
export interface ExitHooks {
  /** Run `callback` synchronously when the process exits; returns a function that removes it. */
  add(callback: () => void): () => void;
}

/**
 * {@link ExitHooks} on Node's 'exit' event. Signals do not emit 'exit' by default; the firmware owns signal
 * handling and is expected to turn SIGTERM/SIGINT into process.exit() so that these hooks run.
 */
export class ProcessExitHooks implements ExitHooks {
  add(callback: () => void): () => void {
    process.on('exit', callback);
    return () => {
      process.off('exit', callback);
    };
  }
}
