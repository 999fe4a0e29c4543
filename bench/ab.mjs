// Two builds of the gateway compared in one run, interleaved, so that the drift of a shared VM
// (figures here move by 2x within minutes) hits both alike:
//
//   node bench/ab.mjs <checkout A> <checkout B>        (each built: dist/ present)
//   env: BLOCKS (30), PER (requests per block, 200), CONC (requests in flight, 1),
//        LOG_LEVEL (warn; info writes a request line per request to a pipe this process drains)
//
// One bench upstream; both gateways with the same config; blocks of PER requests alternate
// between them (A then B, then B then A); per block, each gateway process's CPU (/proc, 10 ms
// ticks) and the p50 latency; prints the medians over blocks and in how many blocks B was slower.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';

const [dirA, dirB] = process.argv.slice(2).map((d) => resolve(d));
if (dirB === undefined) {
  console.error('usage: node bench/ab.mjs <checkout A> <checkout B>');
  process.exit(2);
}
const BLOCKS = Number(process.env.BLOCKS ?? 30), PER = Number(process.env.PER ?? 200);
const TCK = 100;
function cpu(pid) { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / TCK; }
function start(cmd, args, opts) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts });
  // Once the port is known the output is only drained (request log lines at LOG_LEVEL=info), never kept.
  return new Promise((res) => { let buf = ''; p.stdout.on('data', (d) => { if (buf === null) return; buf += d; const m = buf.match(/LISTENING (\d+)|http:\/\/127\.0\.0\.1:(\d+)/); if (m) { buf = null; res({ p, port: Number(m[1] ?? m[2]) }); } }); });
}
const up = await start('node', [fileURLToPath(new URL('./upstream.mjs', import.meta.url))]);
const ADMIN = 'sk-admin-ab-0123456789abcdefghijkl';
async function gateway(dir) {
  const tmp = mkdtempSync(join(tmpdir(), 'ab-'));
  const cfg = join(tmp, 'c.yaml');
  writeFileSync(cfg, `server: { host: 127.0.0.1, port: 0 }\ndatabase: sqlite:${tmp}/db.sqlite\nadmin_key: ${ADMIN}\nlog_level: ${process.env.LOG_LEVEL ?? 'warn'}\nproviders:\n  up: { type: openai, base_url: http://127.0.0.1:${up.port}/v1, api_key: sk-x }\nmodels:\n  bench: { pricing: { input: 1, output: 3.2 }, max_output_tokens: 4096, deployments: [{ provider: up, model: bench-upstream }] }\n`);
  const g = await start('node', [join(dir, 'dist/cli/main.js'), 'serve', '--config', cfg], { cwd: tmp });
  const origin = `http://127.0.0.1:${g.port}`;
  const call = async (m, path, body) => { const r = await request(origin + path, { method: m, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }); return r.body.json(); };
  const acct = await call('POST', '/admin/accounts', { name: 'ab', credit: '1000000' });
  const key = await call('POST', '/admin/keys', { account_id: acct.id, name: 'ab', limits: { rpm: 1e9, tpm: 1e12, concurrency: 100000, daily_spend: '1000000' } });
  return { ...g, origin, key: key.key };
}
const A = await gateway(dirA), B = await gateway(dirB);
const body = JSON.stringify({ model: 'bench', messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Say hello in one short sentence.' }] });
const agents = new Map();
async function block(g, n) {
  const conc = Number(process.env.CONC ?? 1);
  const agent = agents.get(g) ?? agents.set(g, new Agent({ connections: conc })).get(g);
  const lat = []; const c0 = cpu(g.p.pid);
  let left = n;
  const worker = async () => { while (left-- > 0) { const t = performance.now(); const r = await request(g.origin + '/v1/chat/completions', { method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body }); await r.body.text(); if (r.statusCode !== 200) throw new Error('status ' + r.statusCode); lat.push(performance.now() - t); } };
  await Promise.all(Array.from({ length: conc }, worker));
  await new Promise((r) => setTimeout(r, 150));
  lat.sort((a, b) => a - b);
  return { cpuUs: ((cpu(g.p.pid) - c0) * 1e6) / n, p50: lat[Math.floor(n / 2)] };
}
await block(A, 300); await block(B, 300);
const res = { A: [], B: [] };
for (let i = 0; i < BLOCKS; i++) { const order = i % 2 === 0 ? [['A', A], ['B', B]] : [['B', B], ['A', A]]; for (const [n, g] of order) res[n].push(await block(g, PER)); }
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
for (const n of ['A', 'B']) console.log(n, 'cpu/req µs', med(res[n].map((x) => x.cpuUs)).toFixed(1), 'p50 ms', med(res[n].map((x) => x.p50)).toFixed(3));
let wins = 0; for (let i = 0; i < BLOCKS; i++) if (res.B[i].p50 > res.A[i].p50) wins++;
console.log(`blocks where B's p50 > A's: ${wins}/${BLOCKS}`);
for (const g of [A, B, up]) g.p.kill();
process.exit(0);
