import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { Limiter, Subject, Ticket } from '../../src/limits/types.js';
import type { Limits } from '../../src/store/types.js';

/**
 * What every Limiter must do, written against the interface alone so that the in-process and
 * the Redis limiter run the same suite. Time is passed in, so windows are checked to the millisecond.
 */
export function limiterContract(name: string, make: () => Promise<Limiter>): void {
  const subject = (limits: Limits, kind = 'key'): Subject => ({ id: `${kind}:${randomUUID()}`, limits });
  const T = 1_800_000_000_000;

  describe(`limiter contract: ${name}`, () => {
    test('rpm: a burst of twice the limit admits exactly the limit, and the window frees 60 s after each admission', async () => {
      const l = await make();
      const s = subject({ rpm: 5 });
      const burst = await Promise.all(Array.from({ length: 10 }, () => l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T })));
      assert.equal(burst.filter((r) => r.ok).length, 5);
      const refused = burst.find((r) => !r.ok)!;
      assert.ok(!refused.ok && refused.limit === 'rpm' && refused.retryAfterMs === 60_000);
      assert.equal((await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + 59_999 })).ok, false);
      const later = await Promise.all(Array.from({ length: 6 }, () => l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + 60_001 })));
      assert.equal(later.filter((r) => r.ok).length, 5);
      await l.close();
    });

    test('rpm headers: remaining counts this request as used', async () => {
      const l = await make();
      const s = subject({ rpm: 3 });
      const r1 = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T });
      assert.ok(r1.ok);
      assert.deepEqual(r1.state.requests, { limit: 3, remaining: 2, resetMs: 60_000 });
      const r2 = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + 1000 });
      assert.deepEqual(r2.state.requests, { limit: 3, remaining: 1, resetMs: 59_000 });
      await l.close();
    });

    test('tpm: admits while the window has room, and settles to the actual tokens', async () => {
      const l = await make();
      const s = subject({ tpm: 100 });
      const admitted = [];
      for (let i = 0; i < 5; i++) {
        const r = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 30, now: T + i });
        if (r.ok) admitted.push(r.ticket);
      }
      assert.equal(admitted.length, 3);
      await l.release(admitted[0]!, 10, T + 10);
      const r = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 30, now: T + 11 });
      assert.ok(r.ok, 'the 20 tokens freed by the correction admit one more request');
      assert.equal(r.state.tokens?.remaining, 0);
      const over = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + 12 });
      assert.ok(!over.ok && over.limit === 'tpm');
      assert.equal((await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 30, now: T + 60_001 })).ok, true);
      await l.close();
    });

    test('a window that moves over hundreds of admissions: counts, token sums with corrections, and reset times stay exact', async () => {
      const l = await make();
      const s = subject({ rpm: 100, tpm: 100_000 });
      const STEP = 700;
      const tokens = new Map<number, number>();
      const late = new Map<number, Ticket>();
      for (let i = 0; i < 300; i++) {
        const now = T + i * STEP;
        const r = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: i + 1, now });
        assert.ok(r.ok, `admission ${i}`);
        tokens.set(i, i + 1);
        // Live: admitted less than 60 s ago.
        const oldest = Math.max(0, i - Math.ceil(60_000 / STEP) + 1);
        let sum = 0;
        for (let j = oldest; j <= i; j++) sum += tokens.get(j)!;
        const resetMs = T + oldest * STEP + 60_000 - now;
        assert.deepEqual(r.state.requests, { limit: 100, remaining: 100 - (i - oldest + 1), resetMs }, `requests after ${i}`);
        assert.deepEqual(r.state.tokens, { limit: 100_000, remaining: 100_000 - sum, resetMs }, `tokens after ${i}`);
        // Most requests end soon after, having used twice their estimate. Every fifth ends only
        // after it left the window, before the next admission: its correction changes nothing.
        if (i % 5 === 0) late.set(i, r.ticket);
        else {
          await l.release(r.ticket, 2 * (i + 1), now + STEP / 2);
          tokens.set(i, 2 * (i + 1));
        }
        // The oldest has left the window 100 ms before the next admission (none has pruned it yet).
        const leaving = late.get(oldest);
        if (leaving !== undefined && T + oldest * STEP + 60_000 < now + STEP - 100) {
          late.delete(oldest);
          await l.release(leaving, 1_000_000, now + STEP - 100);
        }
      }
      assert.ok(late.size < 20, 'the late releases were made');
      await l.close();
    });

    test('a burst of thousands, then the window empties of it: what follows is counted exactly', async () => {
      const l = await make();
      const s = subject({ rpm: 5000, tpm: 1_000_000 });
      for (let i = 0; i < 3000; i++) assert.ok((await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + i })).ok);
      const full = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 10, now: T + 3000 });
      assert.ok(full.ok);
      assert.deepEqual(full.state.requests, { limit: 5000, remaining: 1999, resetMs: 57_000 });
      const tickets: Ticket[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 100, now: T + 70_000 + i * 1000 });
        assert.ok(r.ok);
        tickets.push(r.ticket);
        assert.deepEqual(r.state.requests, { limit: 5000, remaining: 5000 - (i + 1), resetMs: 60_000 - i * 1000 });
        assert.equal(r.state.tokens?.remaining, 1_000_000 - 100 * (i + 1));
      }
      await l.release(tickets[0]!, 40, T + 75_000);
      const last = await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + 75_001 });
      assert.ok(last.ok);
      assert.equal(last.state.tokens?.remaining, 1_000_000 - (40 + 4 * 100 + 1));
      await l.close();
    });

    test('concurrency: a slot frees when its request is released', async () => {
      const l = await make();
      const s = subject({ concurrency: 2 });
      const rs = await Promise.all(Array.from({ length: 4 }, () => l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T })));
      const ok = rs.filter((r) => r.ok);
      assert.equal(ok.length, 2);
      const refused = rs.find((r) => !r.ok)!;
      assert.ok(!refused.ok && refused.limit === 'concurrency' && refused.retryAfterMs > 0 && refused.retryAfterMs <= 60_000);
      const first = ok[0]!;
      assert.ok(first.ok);
      await l.release(first.ticket, 1, T + 5);
      assert.equal((await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + 6 })).ok, true);
      assert.equal((await l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + 7 })).ok, false);
      await l.close();
    });

    test('key and account: a request refused by one uses none of the other', async () => {
      const l = await make();
      const key = subject({ rpm: 10 });
      const account = subject({ rpm: 2 }, 'acct');
      const rs = [];
      for (let i = 0; i < 4; i++) rs.push(await l.admit({ subjects: [key, account], requestId: randomUUID(), tokens: 1, now: T + i }));
      assert.deepEqual(rs.map((r) => r.ok), [true, true, false, false]);
      const refused = rs[2]!;
      assert.ok(!refused.ok && refused.subject.id === account.id);
      assert.equal(refused.state.requests?.remaining, 8, 'the key shows only its two admitted requests');
      await l.close();
    });

    test('daily spend: reservations and actual spend count; the recorded spend seeds a new day', async () => {
      const l = await make();
      const s = subject({ daily_spend: 1000n });
      let asked = 0;
      const spent = async (): Promise<bigint> => (asked++, 300n);
      assert.deepEqual(await l.reserveSpend([s], 400n, '2030-01-01', spent), { ok: true });
      assert.equal(asked, 1);
      const r = await l.reserveSpend([s], 400n, '2030-01-01', spent);
      assert.ok(!r.ok && r.subject.id === s.id, '300 spent + 400 reserved + 400 passes 1000');
      await l.settleSpend([s], 400n, 100n, '2030-01-01');
      assert.deepEqual(await l.reserveSpend([s], 600n, '2030-01-01', spent), { ok: true }, '300 + 100 + 600 = 1000 fits exactly');
      assert.equal(asked, 1, 'the store is read once per subject and day');
      assert.equal((await l.reserveSpend([s], 1n, '2030-01-01', spent)).ok, false);
      assert.deepEqual(await l.reserveSpend([s], 600n, '2030-01-02', spent), { ok: true }, 'a new day starts from the recorded spend');
      await l.close();
    });

    test('concurrent admissions never pass the limit', async () => {
      const l = await make();
      const s = subject({ rpm: 7, concurrency: 50 });
      const rs = await Promise.all(Array.from({ length: 60 }, (_, i) => l.admit({ subjects: [s], requestId: randomUUID(), tokens: 1, now: T + (i % 3) })));
      assert.equal(rs.filter((r) => r.ok).length, 7);
      await l.close();
    });
  });
}
