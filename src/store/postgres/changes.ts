import pg from 'pg';
import type { StoreLog } from '../types.js';

/** The channel every write to keys and accounts notifies, in its own transaction. */
export const CHANGES_CHANNEL = 'token360_changes';

const RECONNECT_MS = [100, 250, 500, 1000, 2000, 5000];

/**
 * How often the listening connection is asked a trivial query. A connection that only listens
 * sends nothing, so one that a NAT or a proxy silently dropped would otherwise look alive for
 * hours (TCP keepalive) while notifications no longer come; the query keeps it in use and finds
 * it dead within a few seconds.
 */
const HEARTBEAT_MS = 2_000;

/**
 * revision() for PostgreSQL: a dedicated connection LISTENs on CHANGES_CHANNEL and counts the
 * notifications of other store instances (each payload names the instance that wrote, so a
 * store's own writes, already counted by its localRevision, do not move it twice). PostgreSQL
 * delivers a notification when its transaction commits, so another replica's change is seen
 * within milliseconds, not synchronously.
 *
 * While the connection is down nothing can be known: the count then moves on every read, so
 * caches keyed on it keep nothing, and once more when listening resumes (what was missed).
 */
export class ChangeFeed {
  private count = 0;
  private client: pg.Client | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly origin: string,
    private readonly log: StoreLog,
  ) {}

  /** Connects and listens; rejects when the database cannot be reached. */
  async start(): Promise<void> {
    await this.connect();
  }

  revision(): number {
    if (this.client === null) this.count++;
    return this.count;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const c = new pg.Client(this.config);
    c.on('error', (err) => this.lost(c, err));
    c.on('end', () => this.lost(c, null));
    c.on('notification', (n) => {
      if (n.payload !== this.origin) this.count++;
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANGES_CHANNEL}`);
    } catch (e) {
      c.connection.stream.destroy();
      throw e;
    }
    if (this.closed) {
      await c.end().catch(() => undefined);
      return;
    }
    this.client = c;
    this.count++;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      c.query('SELECT 1').catch((err: Error) => this.lost(c, err));
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
    if (this.failures > 0) this.log.warn({}, 'listening for changes to keys and accounts again');
    this.failures = 0;
  }

  private lost(c: pg.Client, err: Error | null): void {
    if (c !== this.client || this.closed) return;
    this.client = null;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
    // A connection that stopped answering is not waited for.
    c.connection.stream.destroy();
    this.log.warn({ err }, 'lost the connection that listens for changes to keys and accounts: cached keys are not used until it is back');
    this.reconnect();
  }

  private reconnect(): void {
    if (this.closed || this.timer !== null) return;
    const ms = RECONNECT_MS[Math.min(this.failures, RECONNECT_MS.length - 1)]!;
    this.failures++;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect().catch(() => this.reconnect());
    }, ms);
    this.timer.unref();
  }
}
