import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { IpcLimiter, serveLimiter, type Channel } from '../limits/ipc.js';
import { MemoryLimiter } from '../limits/memory.js';
import { serveMetrics } from '../server/metrics-routes.js';
import type { RunningGateway } from '../compose/start.js';

// `token360 serve --workers N` (SPEC §9): N gateway processes on one machine sharing one port
// (node:cluster hands each new connection to a worker in turn). They share the database as
// replicas do; without Redis the primary keeps the one limiter and the workers ask it over IPC,
// so a limit stays one limit. The primary serves no request itself: it starts the workers,
// restarts one that dies, gathers their metrics, and stops them all on SIGTERM or SIGINT.

/** What a worker tells the primary once it listens. */
interface Listening {
  t: 't360:listening';
  url: string;
  created: RunningGateway['created'];
}
interface MetricsQuery {
  t: 't360:metrics';
  id: number;
}
interface MetricsAnswer {
  t: 't360:metrics:answer';
  id: number;
  text?: string;
  error?: string;
}

const is = <T extends { t: string }>(m: unknown, t: T['t']): m is T => typeof m === 'object' && m !== null && (m as { t?: unknown }).t === t;

export interface PrimaryLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A worker that dies is started again after this long, doubling while they keep dying, up to RESTART_MAX_MS. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;

/**
 * The primary: starts `n` workers and resolves once all listen, with their URL and any keys a
 * worker created on a first start (printed once, by the caller). Stops them all on the returned
 * `stop()`, which resolves once every worker has exited.
 */
export async function startPrimary(config: Config, n: number, log: PrimaryLog): Promise<{ url: string; created: RunningGateway['created']; stop(): Promise<boolean> }> {
  // Structured clone on the channel: the limiter's bigints cross as they are.
  cluster.setupPrimary({ serialization: 'advanced' });
  const limiter = config.redis === undefined || config.redis === '' ? new MemoryLimiter() : null;
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  let failed = false;
  let restartMs = RESTART_MIN_MS;
  const created: RunningGateway['created'] = { demoKey: null, adminKey: null };
  let ready!: (url: string) => void;
  let broken!: (e: Error) => void;
  const allListening = new Promise<string>((resolve, reject) => ((ready = resolve), (broken = reject)));
  let listening = 0;
  let startedAll = false;
  let metricsServer: { close(): Promise<void> } | null = null;

  const fork = (): void => {
    const w = cluster.fork();
    const shared = limiter === null ? null : serveLimiter(limiter, w as unknown as Channel);
    w.on('message', (m: unknown) => {
      if (is<Listening>(m, 't360:listening')) {
        created.demoKey ??= m.created.demoKey;
        created.adminKey ??= m.created.adminKey;
        restartMs = RESTART_MIN_MS;
        if (!startedAll && ++listening === n) {
          startedAll = true;
          ready(m.url);
        }
      } else if (is<MetricsQuery>(m, 't360:metrics')) {
        aggregator.clusterMetrics().then(
          (text) => w.send({ t: 't360:metrics:answer', id: m.id, text } satisfies MetricsAnswer),
          (e: unknown) => w.send({ t: 't360:metrics:answer', id: m.id, error: e instanceof Error ? e.message : String(e) } satisfies MetricsAnswer),
        );
      }
    });
    w.once('exit', (code, signal) => {
      void shared?.exited();
      if (stopping) {
        if (code !== 0) failed = true;
        return;
      }
      // A worker that cannot start (a bad port, a database it cannot open) would fail again: give up.
      if (!startedAll) {
        broken(new Error(`a worker exited during start-up (${signal ?? `code ${code}`}); its error is above`));
        return;
      }
      log.error({ worker: w.id, code, signal }, 'a worker exited; starting another');
      const wait = restartMs;
      restartMs = Math.min(RESTART_MAX_MS, restartMs * 2);
      setTimeout(() => (stopping ? undefined : fork()), wait).unref();
    });
  };
  for (let i = 0; i < n; i++) fork();

  const stop = async (): Promise<boolean> => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once('exit', () => resolve());
            w.process.kill('SIGTERM');
          }),
      ),
    );
    await metricsServer?.close();
    return !failed;
  };

  let url: string;
  try {
    url = await allListening;
  } catch (e) {
    await stop();
    throw e;
  }
  if (config.metrics.port !== undefined) {
    metricsServer = await serveMetrics({ contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() }, config.metrics.port);
  }
  log.info({ workers: n, limits: limiter === null ? 'redis' : 'primary process' }, 'workers listening');
  return { url, created, stop };
}

/** A worker's side: the limiter and the metrics it asks the primary for. */
export function workerLinks(config: Config): { limiter: IpcLimiter | undefined; clusterScrape: () => Promise<string>; listening(gw: RunningGateway): void } {
  const channel: Channel = {
    send: (m) => process.send!(m),
    on: (e, f) => process.on(e, f),
    off: (e, f) => process.off(e, f),
  };
  let next = 0;
  const asked = new Map<number, { resolve(t: string): void; reject(e: Error): void }>();
  process.on('message', (m: unknown) => {
    if (!is<MetricsAnswer>(m, 't360:metrics:answer')) return;
    const p = asked.get(m.id);
    if (p === undefined) return;
    asked.delete(m.id);
    if (m.text !== undefined) p.resolve(m.text);
    else p.reject(new Error(m.error ?? 'no metrics'));
  });
  return {
    limiter: config.redis === undefined || config.redis === '' ? new IpcLimiter(channel) : undefined,
    clusterScrape: () =>
      new Promise<string>((resolve, reject) => {
        const id = next++;
        asked.set(id, { resolve, reject });
        process.send!({ t: 't360:metrics', id } satisfies MetricsQuery);
      }),
    listening: (gw) => void process.send!({ t: 't360:listening', url: gw.url, created: gw.created } satisfies Listening),
  };
}
