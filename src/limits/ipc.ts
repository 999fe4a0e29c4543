import type { AdmitRequest, AdmitResult, LimitState, Limiter, SpendResult, Subject, Ticket } from './types.js';

// `serve --workers N` without Redis: the primary process keeps the one in-process limiter and the
// workers ask it over the cluster's IPC channel, so a limit is one limit across the workers (as
// Redis makes it across machines). Messages go with the `advanced` serialization (structured
// clone): bigints cross as they are.

/** What both ends of the channel look like: a cluster Worker in the primary, `process` in a worker. */
export interface Channel {
  send(message: unknown): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

type Op = 'admit' | 'peek' | 'release' | 'reserveSpend' | 'settleSpend';

interface Call {
  t: 't360:limit';
  id: number;
  op: Op;
  args: unknown[];
}
interface Answer {
  t: 't360:limit:answer';
  id: number;
  value?: unknown;
  error?: string;
}
/** The primary asks the worker for a subject's recorded spend today (the store is the worker's). */
interface SpentQuery {
  t: 't360:spent';
  id: number;
  subject: Subject;
}
interface SpentAnswer {
  t: 't360:spent:answer';
  id: number;
  value?: bigint;
  error?: string;
}

const is = <T extends { t: string }>(m: unknown, t: T['t']): m is T => typeof m === 'object' && m !== null && (m as { t?: unknown }).t === t;

/** A worker's limiter: every call is a round trip to the primary's. */
export class IpcLimiter implements Limiter {
  readonly kind = 'memory' as const;
  private next = 0;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly spentQueries = new Map<number, (s: Subject) => Promise<bigint>>();
  private readonly listener = (m: unknown): void => this.receive(m);

  constructor(private readonly channel: Channel) {
    channel.on('message', this.listener);
  }

  admit(req: AdmitRequest): Promise<AdmitResult> {
    return this.call('admit', [req]) as Promise<AdmitResult>;
  }

  peek(subject: Subject, now: number): Promise<LimitState> {
    return this.call('peek', [subject, now]) as Promise<LimitState>;
  }

  async release(ticket: Ticket, actualTokens: number, now: number): Promise<void> {
    await this.call('release', [ticket, actualTokens, now]);
  }

  async reserveSpend(subjects: Subject[], amount: bigint, day: string, spentToday: (s: Subject) => Promise<bigint>): Promise<SpendResult> {
    const id = this.next++;
    this.spentQueries.set(id, spentToday);
    try {
      return (await this.call('reserveSpend', [subjects, amount, day, id])) as SpendResult;
    } finally {
      this.spentQueries.delete(id);
    }
  }

  async settleSpend(subjects: Subject[], reserved: bigint, actual: bigint, day: string): Promise<void> {
    await this.call('settleSpend', [subjects, reserved, actual, day]);
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.channel.off('message', this.listener);
    for (const p of this.pending.values()) p.reject(new Error('the limiter is closed'));
    this.pending.clear();
  }

  private call(op: Op, args: unknown[]): Promise<unknown> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.channel.send({ t: 't360:limit', id, op, args } satisfies Call);
    });
  }

  private receive(m: unknown): void {
    if (is<Answer>(m, 't360:limit:answer')) {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.value);
    } else if (is<SpentQuery>(m, 't360:spent')) {
      const ask = this.spentQueries.get(m.id);
      const answer = (a: Omit<SpentAnswer, 't' | 'id'>): void => void this.channel.send({ t: 't360:spent:answer', id: m.id, ...a } satisfies SpentAnswer);
      if (ask === undefined) answer({ error: 'no such query' });
      else ask(m.subject).then((value) => answer({ value }), (e: unknown) => answer({ error: e instanceof Error ? e.message : String(e) }));
    }
  }
}

/**
 * The primary's side for one worker: answers its calls with the shared limiter, and when the
 * worker exits gives back what its requests still held (their concurrency slots, their spend
 * reservations), as a replica's Redis entries expire when it dies.
 */
export function serveLimiter(limiter: Limiter, worker: Channel): { exited(): Promise<void> } {
  const tickets = new Map<string, Ticket>();
  const reservations: { subjects: Subject[]; amount: bigint; day: string }[] = [];
  // Keyed by the worker's query id: a reserveSpend asks for one subject at a time.
  const asked = new Map<number, { resolve(v: bigint): void; reject(e: Error): void }>();
  const spentToday = (query: number) => (subject: Subject): Promise<bigint> =>
    new Promise((resolve, reject) => {
      asked.set(query, { resolve, reject });
      worker.send({ t: 't360:spent', id: query, subject } satisfies SpentQuery);
    });

  const run = async (c: Call): Promise<unknown> => {
    switch (c.op) {
      case 'admit': {
        const r = await limiter.admit(c.args[0] as AdmitRequest);
        if (r.ok) tickets.set(r.ticket.requestId, r.ticket);
        return r;
      }
      case 'peek':
        return limiter.peek(c.args[0] as Subject, c.args[1] as number);
      case 'release': {
        const ticket = c.args[0] as Ticket;
        tickets.delete(ticket.requestId);
        return limiter.release(ticket, c.args[1] as number, c.args[2] as number);
      }
      case 'reserveSpend': {
        const [subjects, amount, day, query] = c.args as [Subject[], bigint, string, number];
        const r = await limiter.reserveSpend(subjects, amount, day, spentToday(query));
        if (r.ok) reservations.push({ subjects, amount, day });
        return r;
      }
      case 'settleSpend': {
        const [subjects, reserved, actual, day] = c.args as [Subject[], bigint, bigint, string];
        const i = reservations.findIndex((r) => r.amount === reserved && r.day === day && sameSubjects(r.subjects, subjects));
        if (i >= 0) reservations.splice(i, 1);
        return limiter.settleSpend(subjects, reserved, actual, day);
      }
    }
  };

  worker.on('message', (m: unknown) => {
    if (is<SpentAnswer>(m, 't360:spent:answer')) {
      const p = asked.get(m.id);
      if (p === undefined) return;
      asked.delete(m.id);
      if (m.error !== undefined || m.value === undefined) p.reject(new Error(m.error ?? 'no answer'));
      else p.resolve(m.value);
      return;
    }
    if (!is<Call>(m, 't360:limit')) return;
    run(m).then(
      (value) => worker.send({ t: 't360:limit:answer', id: m.id, value } satisfies Answer),
      (e: unknown) => worker.send({ t: 't360:limit:answer', id: m.id, error: e instanceof Error ? e.message : String(e) } satisfies Answer),
    );
  });

  return {
    async exited() {
      for (const p of asked.values()) p.reject(new Error('the worker exited'));
      asked.clear();
      const now = Date.now();
      // Its requests ended with it: nothing was delivered that the books will charge (their holds are released as interrupted, cost 0).
      for (const t of tickets.values()) await limiter.release(t, t.tokens, now);
      tickets.clear();
      for (const r of reservations.splice(0)) await limiter.settleSpend(r.subjects, r.amount, 0n, r.day);
    },
  };
}

function sameSubjects(a: Subject[], b: Subject[]): boolean {
  return a.length === b.length && a.every((s, i) => s.id === b[i]!.id);
}
