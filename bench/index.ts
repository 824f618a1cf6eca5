/**
 * `npm run bench -- <name> [...]`: runs benchmarks by name and prints one JSON line each.
 * With no name, runs all of them.
 */
import { benchEdge } from './edge.ts';
import { benchEntropy } from './entropy.ts';
import { benchInt8 } from './int8.ts';
import { benchJobs } from './jobs.ts';
import { benchLoad } from './load.ts';
import { benchOrigin } from './origin.ts';
import { benchStorage } from './storage.ts';

const BENCHES: Record<string, () => Record<string, unknown> | Promise<Record<string, unknown>>> = {
  edge: benchEdge,
  entropy: benchEntropy,
  int8: benchInt8,
  jobs: benchJobs,
  load: benchLoad,
  origin: benchOrigin,
  storage: benchStorage,
};

const names = process.argv.slice(2);
const unknown = names.filter((n) => !(n in BENCHES));
if (unknown.length) {
  console.error(`Unknown benchmark: ${unknown.join(', ')}. Known: ${Object.keys(BENCHES).join(', ')}.`);
  process.exit(2);
}
for (const name of names.length ? names : Object.keys(BENCHES)) {
  console.log(JSON.stringify(await BENCHES[name]()));
}
