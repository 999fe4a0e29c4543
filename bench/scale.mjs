// The scaled set-ups beside the embedded one, in one run (`npm run bench -- --store postgres
// --replicas 2`, or `node bench/scale.mjs …` after `npm run build`):
//
//   embedded      one process, SQLite (the default set-up)
//   postgres      one process, PostgreSQL (with --store postgres)
//   replicas N    `serve --workers N` on the chosen store (SQLite file: the primary keeps the
//                 limiter; PostgreSQL: Redis shares it, as replicas on several machines do)
//
// One bench upstream; every gateway with the same models and a key with all four limits set;
// blocks of PER requests with CONC in flight alternate between the set-ups (rotating the order),
// so that the drift of a shared VM hits all alike. Per block: requests per second, CPU per request
// of all the set-up's processes (/proc, 10 ms ticks) and p50 latency; the medians over blocks are
// printed, with each set-up's ratio to the embedded one. Everything talks to 127.0.0.1 only and
// the run ends by itself.
//
//   options: --store sqlite|postgres (sqlite)  --replicas N (2)  --blocks N (12)  --per N (2000)  --conc N (32)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';

const argv = process.argv.slice(2);
const value = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};
const STORE = value('--store', 'sqlite');
const REPLICAS = Number(value('--replicas', 2));
const BLOCKS = Number(value('--blocks', 12));
const PER = Number(value('--per', 2000));
const CONC = Number(value('--conc', 32));
const PG = 'postgres://postgres@127.0.0.1:5432';
const REDIS = 'redis://127.0.0.1:6379';
if (!['sqlite', 'postgres'].includes(STORE) || !(REPLICAS >= 2)) {
  console.error('usage: node bench/scale.mjs [--store sqlite|postgres] [--replicas N>=2] [--blocks N] [--per N] [--conc N]');
  process.exit(2);
}
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADMIN = 'sk-admin-scale-0123456789abcdefghijk';
const TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const children = [];
const killAll = () => {
  for (const p of children) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
  }
};
process.on('exit', killAll);
setTimeout(() => (console.error('bench/scale: time limit (15 min) reached'), process.exit(1)), 15 * 60_000).unref();

/** utime+stime of a process and its children (a cluster's workers), in seconds. */
function treeCpu(pid) {
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop();
    try {
      const s = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      total += (Number(f[11]) + Number(f[12])) / TCK;
      stack.push(...readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {}
  }
  return total;
}

function start(args, env = {}) {
  const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_ENV: 'production', ...env } });
  children.push(p);
  return new Promise((resolve, reject) => {
    let buf = '';
    p.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
    p.stdout.on('data', (d) => {
      if (buf === null) return;
      buf += d;
      // The bench upstream says LISTENING; the gateway's primary says `token360 listening` once every worker listens.
      const m = /LISTENING (\d+)|"url":"http:\/\/127\.0\.0\.1:(\d+)"[^\n]*"msg":"token360 listening"/.exec(buf);
      if (m) {
        buf = null;
        resolve({ p, port: Number(m[1] ?? m[2]) });
      }
    });
  });
}

function newPgDatabase() {
  const name = `token360_bench_${process.pid}_${Date.now()}`;
  execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-qc', `CREATE DATABASE ${name}`]);
  process.on('exit', () => {
    try {
      execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
    } catch {}
  });
  return `${PG}/${name}`;
}

const up = await start([join(ROOT, 'bench/upstream.mjs')]);

async function setup(name, { database, workers = 1, redis = false }) {
  const tmp = mkdtempSync(join(tmpdir(), 'token360-scale-'));
  const cfg = join(tmp, 'c.yaml');
  writeFileSync(
    cfg,
    [
      'server: { host: 127.0.0.1, port: 0, max_concurrent_requests: 10000 }',
      `database: ${database ?? `sqlite:${tmp}/db.sqlite`}`,
      ...(redis ? [`redis: ${REDIS}`] : []),
      `admin_key: ${ADMIN}`,
      'log_level: info',
      `providers: { up: { type: openai, base_url: "http://127.0.0.1:${up.port}/v1", api_key: sk-x, max_connections: 256 } }`,
      'models:',
      '  bench: { pricing: { input: 1, output: 3.2 }, max_output_tokens: 4096, deployments: [{ provider: up, model: bench-upstream }] }',
    ].join('\n'),
  );
  const g = await start([join(ROOT, 'dist/cli/main.js'), 'serve', '--config', cfg, ...(workers > 1 ? ['--workers', String(workers)] : [])]);
  const origin = `http://127.0.0.1:${g.port}`;
  const call = async (m, path, body) => {
    const r = await request(origin + path, { method: m, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return r.body.json();
  };
  const acct = await call('POST', '/admin/accounts', { name, credit: '1000000' });
  const key = await call('POST', '/admin/keys', { account_id: acct.id, name, limits: { rpm: 1e9, tpm: 1e12, concurrency: 100000, daily_spend: '1000000' } });
  return { name, ...g, origin, key: key.key, agent: new Agent({ connections: CONC }), blocks: [] };
}

const body = JSON.stringify({ model: 'bench', messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Say hello in one short sentence.' }] });

async function block(s, n) {
  const lat = [];
  const c0 = treeCpu(s.p.pid);
  const t0 = performance.now();
  let left = n;
  const one = async () => {
    while (left-- > 0) {
      const t = performance.now();
      const r = await request(s.origin + '/v1/chat/completions', { method: 'POST', dispatcher: s.agent, headers: { authorization: `Bearer ${s.key}`, 'content-type': 'application/json' }, body });
      await r.body.text();
      if (r.statusCode !== 200) throw new Error(`${s.name}: status ${r.statusCode}`);
      lat.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CONC }, one));
  const secs = (performance.now() - t0) / 1000;
  // Deferred work (settlements, usage records) lands in the block that caused it.
  await new Promise((r) => setTimeout(r, 150));
  lat.sort((a, b) => a - b);
  return { rps: n / secs, cpuUs: ((treeCpu(s.p.pid) - c0) * 1e6) / n, p50: lat[Math.floor(lat.length / 2)] };
}

const storeDb = STORE === 'postgres' ? newPgDatabase() : undefined;
const setups = [await setup('embedded (SQLite, 1 process)', {})];
if (STORE === 'postgres') setups.push(await setup('PostgreSQL, 1 process', { database: storeDb }));
setups.push(
  await setup(`${REPLICAS} workers (${STORE === 'postgres' ? 'PostgreSQL + Redis' : 'SQLite file, limiter in the primary'})`, {
    database: STORE === 'postgres' ? newPgDatabase() : undefined,
    workers: REPLICAS,
    redis: STORE === 'postgres',
  }),
);
for (const s of setups) await block(s, Math.min(PER, 500)); // warm-up
for (let i = 0; i < BLOCKS; i++) {
  const order = setups.map((_, j) => setups[(i + j) % setups.length]);
  for (const s of order) s.blocks.push(await block(s, PER));
}
const med = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
};
const base = setups[0];
const baseRps = med(base.blocks.map((b) => b.rps));
console.log(`\nToken360 scale bench: ${BLOCKS} blocks of ${PER} requests, ${CONC} in flight, node ${process.version}, ${execFileSync('nproc').toString().trim()} cores; medians over blocks\n`);
console.log('| set-up | req/s | × embedded | CPU µs/request (all processes) | p50 ms |');
console.log('| --- | --- | --- | --- | --- |');
for (const s of setups) {
  const rps = med(s.blocks.map((b) => b.rps));
  console.log(`| ${s.name} | ${rps.toFixed(0)} | ${(rps / baseRps).toFixed(2)} | ${med(s.blocks.map((b) => b.cpuUs)).toFixed(0)} | ${med(s.blocks.map((b) => b.p50)).toFixed(2)} |`);
}
killAll();
process.exit(0);
