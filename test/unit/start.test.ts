/**
 * `npm start` (scripts/start.ts) as a real process on free ports, with its own wrangler state folder:
 * both services come up, the printed dev key is accepted by the edge, and SIGINT stops everything
 * (exit 0, both ports free again).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../functions/origin/process.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const START = join(REPO, 'scripts', 'start.ts');

/** True if 127.0.0.1:`port` can be bound now. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

let child: ChildProcess | undefined;
let stateDir: string | undefined;
let output = '';

afterAll(async () => {
  // Only after a failure: stop the script, then whatever of its process groups is left.
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 12_000));
    for (const m of output.matchAll(/^\[start\] (?:origin|edge) pid (\d+)$/gm)) {
      try {
        process.kill(-Number(m[1]), 'SIGKILL');
      } catch {
        // gone
      }
    }
    child.kill('SIGKILL');
  }
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
}, 20_000);

describe('npm start', () => {
  it('starts the origin and the edge, seeds a working dev key, and stops cleanly on SIGINT', async () => {
    const [edgePort, originPort] = [await freePort(), await freePort()];
    stateDir = await mkdtemp(join(tmpdir(), 'latentsight-start-'));
    const started = performance.now();
    const env: NodeJS.ProcessEnv = { ...process.env, EDGE_PORT: String(edgePort), ORIGIN_PORT: String(originPort), LATENTSIGHT_STATE_DIR: stateDir, ORIGIN_THREADS: '1' };
    delete env.LATENTSIGHT_DEV_KEY;
    const proc = spawn(process.execPath, ['--import', 'tsx', START], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));

    const key = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no dev key printed within 60 s:\n${output}`)), 60_000);
      const look = () => {
        const m = /^ {2}dev API key {2}(\S+)$/m.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      proc.stdout!.on('data', look);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`npm start exited with ${code} before it was ready:\n${output}`));
      });
    });
    const readyMs = performance.now() - started;
    expect(key).toMatch(/^ls_dev_[0-9a-f]{32}$/);
    // The generated key is kept beside the KV it was seeded into.
    expect((await readFile(join(stateDir, 'latentsight-dev-key'), 'utf8')).trim()).toBe(key);

    const edge = `http://127.0.0.1:${edgePort}`;
    expect(output).toContain(`API          ${edge}/v1`);
    expect(output).toContain(`docs         ${edge}/docs`);
    const health = await fetch(`${edge}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const models = await fetch(`${edge}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect(models.status).toBe(200);
    const { codecs } = (await models.json()) as { codecs: { id: string }[] };
    expect(codecs.length).toBeGreaterThan(0);
    expect((await fetch(`http://127.0.0.1:${originPort}/v2/health/ready`)).status).toBe(200);

    // The seeded key authenticates (the check after auth, the media type, answers 415); another does not (401).
    const analyze = (k: string) =>
      fetch(`${edge}/v1/analyze`, { method: 'POST', headers: { authorization: `Bearer ${k}`, 'content-type': 'text/plain' }, body: 'x' });
    const accepted = await analyze(key);
    expect(accepted.status, await accepted.text()).toBe(415);
    expect((await analyze('ls_dev_00000000000000000000000000000000')).status).toBe(401);

    proc.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(code, output).toBe(0);
    expect(await isFree(edgePort)).toBe(true);
    expect(await isFree(originPort)).toBe(true);
    console.log(`npm start: healthy after ${(readyMs / 1000).toFixed(1)} s`);
  }, 100_000);
});
