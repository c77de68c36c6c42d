/**
 * `tandem revoke` has two forms: the share form of the sharing API (`--share ID`, or `--lock L --rider R`;
 * cli/share.ts) and the older admin form that revokes a token id on a local `tandem cloud` through its admin
 * channel (`--lock L --token CTI --exp T [--data-dir D]`; cli/cloud.ts). This routes by the options given, so
 * both keep working.
 */
import type { CommandModule } from './args.js';

/** `tandem revoke`, either form. */
export const revoke: CommandModule = {
  run: async (argv, streams) => {
    const { isShareRevoke, revokeShare } = await import('./share.js');
    if (isShareRevoke(argv)) return revokeShare.run(argv, streams);
    return (await import('./cloud.js')).revoke.run(argv, streams);
  },
};

export const run = revoke.run;
