/** Wall-clock milliseconds of `runs` calls of `fn`, after `warmup` untimed calls (JIT, caches). */
export function timeRuns(fn: () => unknown, runs: number, warmup = 3): number[] {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return times;
}

/** The median, shared with the evaluations: robust to the noise of a shared 2-core machine. */
export { median } from '../../src/eval/rd.ts';
