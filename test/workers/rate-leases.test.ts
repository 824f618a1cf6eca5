// The isolate's side of rate limiting (functions/edge/rate-limit.ts): leases of tokens against a
// bucket that a fake object keeps, on a clock the test moves.
import { describe, expect, it } from 'vitest';
import { LEASE_MS, type LeaseCall, TokenLeases, leaseCap } from '../../functions/edge/rate-limit.ts';

/** A key's object with `tokens` in its bucket and no refill: what it granted is all that may be spent. */
function fakeObject(tokens: number, limit = 6000) {
  const calls: { want: number; returned: number }[] = [];
  let bucket = tokens;
  let failing = false;
  const call: LeaseCall = async (want, returned) => {
    calls.push({ want, returned });
    await Promise.resolve();
    if (failing) throw new Error('object unavailable');
    bucket += returned;
    const granted = bucket >= 1 ? Math.min(want, Math.floor(bucket)) : 0;
    bucket -= granted;
    return { granted, allowed: granted > 0, limit, remaining: bucket, retryAfterSeconds: granted ? 0 : 1, resetSeconds: 5 };
  };
  return {
    call,
    calls,
    get bucket() {
      return bucket;
    },
    fail(on: boolean) {
      failing = on;
    },
  };
}

function setup(tokens: number, limit = 6000) {
  let now = 1_000_000;
  const leases = new TokenLeases(16, () => now);
  const object = fakeObject(tokens, limit);
  const background: Promise<unknown>[] = [];
  const take = () => leases.take('key', limit, object.call, (work) => background.push(work));
  return {
    object,
    take,
    settle: () => Promise.all(background.splice(0)),
    advance(ms: number) {
      now += ms;
    },
  };
}

describe('token leases', () => {
  it('lease about a second of the key rate, at most 32 tokens, and none below 120 a minute', () => {
    expect([60, 119, 120, 600, 1920, 1_000_000].map(leaseCap)).toEqual([1, 1, 2, 10, 32, 32]);
  });

  it('admit exactly the tokens the object granted, however the requests interleave', async () => {
    const { object, take, settle } = setup(50);
    const decisions = [];
    for (let wave = 0; wave < 10; wave++) {
      decisions.push(...(await Promise.all(Array.from({ length: 10 }, take))));
      await settle();
    }
    expect(decisions.filter((d) => d.allowed)).toHaveLength(50);
    expect(decisions.slice(50).every((d) => !d.allowed && d.retryAfterSeconds === 1)).toBe(true);
    expect(object.bucket).toBe(0);
  });

  it('grow with demand, so a busy key asks the object rarely', async () => {
    const { object, take, settle } = setup(1_000_000);
    for (let i = 0; i < 200; i++) {
      expect((await take()).allowed).toBe(true);
      await settle();
    }
    // 1 + 2 + 4 + 8 + 16 tokens in the first five calls, then 32 a call: 11 calls for 200 requests.
    expect(object.calls.length).toBeLessThanOrEqual(11);
    expect(Math.max(...object.calls.map((c) => c.want))).toBe(32);
  });

  it('give back what expired unspent with the next call, and ask for less', async () => {
    const { object, take, settle, advance } = setup(1000);
    for (let i = 0; i < 6; i++) {
      await take();
      await settle();
    }
    const held = 1000 - object.bucket - 6;
    expect(held).toBeGreaterThan(0);
    advance(LEASE_MS);
    const before = object.calls.length;
    expect((await take()).allowed).toBe(true);
    const renewal = object.calls[before];
    expect(renewal.returned).toBe(held);
    expect(renewal.want).toBeLessThan(object.calls[before - 1].want);
    await settle();
    // Nothing was lost or spent twice: the key gets exactly its 1,000 tokens in all.
    let admitted = 7;
    while ((await take()).allowed) {
      admitted++;
      await settle();
    }
    expect(admitted).toBe(1000);
  });

  it('do not spend an expired lease', async () => {
    const { object, take, settle, advance } = setup(3, 600);
    await take(); // lease of 1, then a prefetch of 2
    await settle();
    expect(object.bucket).toBe(0);
    advance(LEASE_MS);
    // The 2 prefetched tokens expired: they go back and come out again as a fresh lease.
    expect((await take()).allowed).toBe(true);
    expect(object.calls[2]).toEqual({ want: 1, returned: 2 });
  });

  it('share one call among the requests that wait for it', async () => {
    const { object, take } = setup(100);
    const decisions = await Promise.all(Array.from({ length: 5 }, take));
    expect(decisions.every((d) => d.allowed)).toBe(true);
    // 1 token, then 2, then 4: three calls, each shared by the requests waiting at the time.
    expect(object.calls.length).toBeLessThanOrEqual(3);
  });

  it('reject when the object fails, and ask it again next time', async () => {
    const { object, take } = setup(10);
    object.fail(true);
    await expect(take()).rejects.toThrow('object unavailable');
    object.fail(false);
    expect((await take()).allowed).toBe(true);
  });

  it('give up on an object that does not answer, and ask it again next time', async () => {
    const object = fakeObject(100);
    let hang = true;
    const call: LeaseCall = (want, returned) => (hang ? new Promise(() => {}) : object.call(want, returned));
    const leases = new TokenLeases(16, Date.now, 20);
    const take = () => leases.take('key', 6000, call, () => {});
    // Every request waiting for the hung lease is released with an error (takeToken lets it through).
    const waiting = await Promise.allSettled([take(), take(), take()]);
    expect(waiting.map((w) => w.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(String((waiting[0] as PromiseRejectedResult).reason)).toMatch(/did not answer within 20 ms/);
    hang = false;
    expect((await take()).allowed).toBe(true);               // the first call to reach the object
    expect(object.calls[0]).toEqual({ want: 1, returned: 0 });
  });

  it('ask the object on every request for a key under 120 a minute (exact remaining)', async () => {
    const { object, take, settle } = setup(3, 60);
    const decisions = [];
    for (let i = 0; i < 4; i++) {
      decisions.push(await take());
      await settle();
    }
    expect(decisions.map((d) => [d.allowed, d.remaining])).toEqual([
      [true, 2],
      [true, 1],
      [true, 0],
      [false, 0],
    ]);
    expect(object.calls).toHaveLength(4);
  });
});
