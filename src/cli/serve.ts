import cluster from 'node:cluster';
import { pino } from 'pino';
import { loadConfig } from '../config/load.js';
import { startGateway, type RunningGateway } from '../compose/start.js';
import { describeDatabase } from '../store/open.js';
import { startPrimary, workerLinks } from './workers.js';

export async function serve(configPath: string | undefined, opts: { host?: string; port?: string; workers?: string }): Promise<void> {
  const env = { ...process.env };
  if (opts.host !== undefined) env['TOKEN360_HOST'] = opts.host;
  if (opts.port !== undefined) env['TOKEN360_PORT'] = opts.port;
  const { config, source } = loadConfig({ path: configPath, env });
  const workers = parseWorkers(opts.workers ?? env['TOKEN360_WORKERS']);
  if (workers > 1 && config.database === 'sqlite::memory:') throw new Error('--workers needs a database the workers can share: a SQLite file or PostgreSQL, not sqlite::memory:');
  const where = { config: source ?? 'built-in defaults', database: describeDatabase(config.database) };

  if (workers > 1 && cluster.isPrimary) {
    const log = pino({ level: config.log_level });
    const primary = await startPrimary(config, workers, log);
    banner(primary.created, primary.url);
    log.info({ url: primary.url, workers, ...where }, 'token360 listening');
    onSignal((signal) => {
      log.info({ signal }, 'shutting down');
      return primary.stop();
    });
    return;
  }

  const links = cluster.isWorker ? workerLinks(config) : null;
  const gw = await startGateway(config, links === null ? {} : { ...(links.limiter === undefined ? {} : { limiter: links.limiter }), clusterScrape: links.clusterScrape });
  const log = gw.app.log;
  if (links !== null) {
    // The primary prints the keys and the listening line once for all workers.
    links.listening(gw);
    log.info({ url: gw.url, worker: cluster.worker?.id }, 'worker listening');
  } else {
    banner(gw.created, gw.url);
    // After the keys, so that whoever waits for this line has seen them.
    log.info({ url: gw.url, ...where }, 'token360 listening');
  }
  onSignal((signal) => {
    log.info({ signal }, 'shutting down');
    return gw.close().then(
      () => true,
      (e: unknown) => (log.error({ err: e }, 'shutdown failed'), false),
    );
  });
}

/** Shown once, on the start that created them; only their hashes are stored. */
function banner(created: RunningGateway['created'], url: string): void {
  if (created.adminKey === null && created.demoKey === null) return;
  const lines = ['', 'First start: save these keys now, they will not be shown again.'];
  if (created.adminKey !== null) lines.push(`  admin key (TOKEN360_ADMIN_KEY): ${created.adminKey}`);
  if (created.demoKey !== null) lines.push(`  demo API key:                   ${created.demoKey}`);
  lines.push(`  try: curl ${url}/v1/chat/completions -H "Authorization: Bearer <demo API key>" \\`);
  lines.push(`         -H "Content-Type: application/json" -d '{"model":"demo","messages":[{"role":"user","content":"Hello"}]}'`, '');
  process.stdout.write(lines.join('\n') + '\n');
}

/** SIGTERM and SIGINT stop once; the process exits 0 when the stop went well. A worker also stops on its own SIGINT (Ctrl-C reaches the whole group). */
function onSignal(stop: (signal: string) => Promise<boolean>): void {
  let stopping: Promise<boolean> | null = null;
  const on = (signal: string): void => {
    stopping ??= stop(signal);
    void stopping.then((ok) => process.exit(ok ? 0 : 1));
  };
  process.on('SIGTERM', () => on('SIGTERM'));
  process.on('SIGINT', () => on('SIGINT'));
}

function parseWorkers(v: string | undefined): number {
  if (v === undefined || v === '') return 1;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`--workers must be a whole number from 1 to 256, not ${JSON.stringify(v)}`);
  return n;
}
