import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import pg from 'pg';

/** The PostgreSQL the tests use (CI starts it): trust auth, user postgres, an existing database `test`. */
export const PG_SERVER = process.env['TOKEN360_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432';

export interface TestDatabase {
  url: string;
  name: string;
  /** Drops the database, ending whatever connections are left. */
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: `${PG_SERVER}/test` });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A new, empty database of this run's own (so parallel runs never meet); drop it in `after()`. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `token360_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  return {
    url: `${PG_SERVER}/${name}`,
    name,
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/**
 * A TCP relay in front of the test PostgreSQL, to take the database away from a store and give
 * it back: `cut()` drops every connection and refuses new ones, `restore()` listens again on
 * the same port.
 */
export interface PgRelay {
  port: number;
  /** The URL of `database` through the relay. */
  url(database: string): string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** A network partition: connections stay open, and nothing passes either way (new ones included). */
  freeze(): void;
  /** Requests still reach the server, its answers are lost: what was sent is done, and nobody hears of it. */
  deafen(): void;
  /** Ends the partition (or the deafness): the connections are dropped (as a peer that gave up would), new ones pass. */
  thaw(): void;
  close(): Promise<void>;
}

export async function startPgRelay(): Promise<PgRelay> {
  const target = new URL(PG_SERVER);
  const sockets = new Set<Socket>();
  const upstreams = new Map<Socket, Socket>();
  let frozen = false;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };
  const server = createServer((client) => {
    track(client);
    if (frozen) {
      client.pause();
      return;
    }
    const upstream = connect(Number(target.port || 5432), target.hostname);
    track(upstream);
    upstreams.set(upstream, client);
    upstream.on('close', () => upstreams.delete(upstream));
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number): Promise<void> => new Promise((res, rej) => server.once('error', rej).listen(port, '127.0.0.1', () => res()));
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const cut = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = new Promise<void>((res) => server.close(() => res()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  return {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    cut,
    restore: () => listen(port),
    freeze: () => {
      frozen = true;
      for (const s of sockets) {
        s.unpipe();
        s.pause();
      }
    },
    deafen: () => {
      frozen = true;
      for (const [upstream, client] of upstreams) {
        upstream.unpipe(client);
        upstream.on('data', () => undefined);
      }
    },
    thaw: () => {
      frozen = false;
      for (const s of sockets) s.destroy();
    },
    close: cut,
  };
}
