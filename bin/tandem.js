#!/usr/bin/env node
// Launcher of the `tandem` CLI (package.json "bin"). Plain JavaScript so that it runs without a TypeScript
// loader: it only imports the compiled dispatcher, which imports each command lazily (cli/main.ts).
const EXIT_USAGE = 2; // cli/README.md, "Exit codes"

// The esbuild bundle (scripts/bundle.mjs) starts fastest; tsc's output in dist/ is the fallback where the
// bundle could not be built.
let cli;
for (const entry of ['../dist/bundle/main.js', '../dist/cli/main.js']) {
  try {
    cli = await import(entry);
    break;
  } catch (e) {
    // Only a missing build is passed over; any other failure is a real error and keeps its stack.
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !/dist[\\/](bundle|cli)[\\/]/.test(String(e.message))) throw e;
  }
}
if (cli === undefined) {
  process.stderr.write(
    'ERR_USAGE: the tandem CLI is not built (dist/cli/main.js is missing).\n' +
      "Run 'npm run build' in the repository, then try again.\n",
  );
  process.exit(EXIT_USAGE);
}
await cli.runProcess();
