import { loadConfig } from '../config/load.js';
import { startGateway } from '../compose/start.js';
import { describeDatabase } from '../store/open.js';

export async function serve(configPath: string | undefined, opts: { host?: string; port?: string }): Promise<void> {
  const env = { ...process.env };
  if (opts.host !== undefined) env['TOKEN360_HOST'] = opts.host;
  if (opts.port !== undefined) env['TOKEN360_PORT'] = opts.port;
  const { config, source } = loadConfig({ path: configPath, env });
  const gw = await startGateway(config);
  const log = gw.app.log;
  // Shown once, on the start that created them; only their hashes are stored.
  if (gw.created.adminKey !== null || gw.created.demoKey !== null) {
    const lines = ['', 'First start: save these keys now, they will not be shown again.'];
    if (gw.created.adminKey !== null) lines.push(`  admin key (TOKEN360_ADMIN_KEY): ${gw.created.adminKey}`);
    if (gw.created.demoKey !== null) lines.push(`  demo API key:                   ${gw.created.demoKey}`);
    lines.push(`  try: curl ${gw.url}/v1/chat/completions -H "Authorization: Bearer <demo API key>" \\`);
    lines.push(`         -H "Content-Type: application/json" -d '{"model":"demo","messages":[{"role":"user","content":"Hello"}]}'`, '');
    process.stdout.write(lines.join('\n') + '\n');
  }
  // After the keys, so that whoever waits for this line has seen them.
  log.info({ url: gw.url, config: source ?? 'built-in defaults', database: describeDatabase(config.database) }, 'token360 listening');
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    gw.close().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
