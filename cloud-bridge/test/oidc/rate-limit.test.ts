/** LoginRateLimiter ([TANDEM-DLG-8]) with an injected clock. */
import { describe, expect, it } from 'vitest';
import { LoginRateLimiter } from '../../src/oidc/rate-limit.js';

function limiter() {
  const clock = { t: 1_000_000 };
  const l = new LoginRateLimiter({
    perAccount: { max: 3, windowSeconds: 60 },
    perAddress: { max: 5, windowSeconds: 60 },
    now: () => clock.t,
    maxKeys: 4,
  });
  return { l, clock };
}

describe('LoginRateLimiter', () => {
  it('refuses an account after max failures, with the seconds until the oldest one leaves the window', () => {
    const { l, clock } = limiter();
    for (let i = 0; i < 3; i++) {
      expect(l.check('adam', 'ip1').allowed).toBe(true);
      l.failure('adam', 'ip1');
      clock.t += 10_000;
    }
    expect(l.check('adam', 'ip1')).toEqual({ allowed: false, retryAfter: 30 });
    expect(l.check('adam', 'ip2').allowed).toBe(false); // per account, whatever the address
    expect(l.check('bianca', 'ip2').allowed).toBe(true);
    clock.t += 30_000;
    expect(l.check('adam', 'ip1').allowed).toBe(true);
  });

  it('refuses an address spraying many accounts', () => {
    const { l } = limiter();
    for (const a of ['a1', 'a2', 'a3', 'a4', 'a5']) l.failure(a, 'ip9');
    expect(l.check('someone-new', 'ip9').allowed).toBe(false);
    expect(l.check('someone-new', 'ip8').allowed).toBe(true);
  });

  it('a success clears the account, not the address', () => {
    const { l } = limiter();
    l.failure('adam', 'ip1');
    l.failure('adam', 'ip1');
    l.success('adam');
    l.failure('adam', 'ip1');
    l.failure('adam', 'ip1');
    expect(l.check('adam', 'ip7').allowed).toBe(true);
    l.failure('x', 'ip1');
    expect(l.check('zed', 'ip1').allowed).toBe(false);
  });

  it('tracks a bounded number of keys', () => {
    const { l } = limiter();
    for (let i = 0; i < 3; i++) l.failure('first', `ip-${i}`);
    expect(l.check('first', 'elsewhere').allowed).toBe(false);
    for (let i = 0; i < 4; i++) l.failure(`other-${i}`, 'ipx');
    // 'first' was the oldest of five accounts with room for four: forgotten.
    expect(l.check('first', 'elsewhere').allowed).toBe(true);
  });
});
