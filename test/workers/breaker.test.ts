// The circuit breaker's state machine on a manual clock.
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../functions/edge/breaker.ts';

function breaker(threshold = 3, cooldownMs = 1000) {
  const clock = { t: 0 };
  return { clock, b: new CircuitBreaker({ failureThreshold: threshold, cooldownMs, now: () => clock.t }) };
}

describe('CircuitBreaker', () => {
  it('stays closed until threshold consecutive failures, and a success resets the count', () => {
    const { b } = breaker(3);
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    expect(b.state).toBe('closed');
    b.failure();
    expect(b.state).toBe('open');
  });

  it('sheds attempts while open and says for how long', () => {
    const { b, clock } = breaker(1, 1000);
    b.failure();
    clock.t = 400;
    expect(b.acquire()).toBe(600);
    expect(b.waitMs()).toBe(600);
  });

  it('lets exactly one probe through when half-open', () => {
    const { b, clock } = breaker(1, 1000);
    b.failure();
    clock.t = 1000;
    expect(b.state).toBe('half-open');
    expect(b.acquire()).toBe(0);
    expect(b.acquire()).toBeGreaterThan(0);
    b.success();
    expect(b.state).toBe('closed');
    expect(b.acquire()).toBe(0);
  });

  it('reopens for a full cooldown when the probe fails', () => {
    const { b, clock } = breaker(5, 1000);
    for (let i = 0; i < 5; i++) b.failure();
    clock.t = 1500;
    expect(b.acquire()).toBe(0);
    b.failure();
    expect(b.state).toBe('open');
    expect(b.acquire()).toBe(1000);
  });

  it('counts a probe that never reports as lost after a cooldown, and lets the next caller probe', () => {
    const { b, clock } = breaker(1, 1000);
    b.failure();
    clock.t = 1000;
    expect(b.acquire()).toBe(0);
    // The probe's request was cancelled: neither success() nor failure() ever comes.
    clock.t = 1999;
    expect(b.acquire()).toBeGreaterThan(0);
    clock.t = 2000;
    expect(b.acquire()).toBe(0);
    b.success();
    expect(b.state).toBe('closed');
  });
});
