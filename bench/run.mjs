// Token360 benchmark: what the gateway adds on top of a direct call to the upstream.
//
//   npm run bench                  full run (about 3-4 minutes)
//   npm run bench -- --quick       about 30 seconds
//   npm run bench -- --profile     CPU profile of the gateway under a throughput round (prints the top 15)
//   options: --rounds N  --streams N  --no-streams  --floor  --db-dir DIR  --log-level L  --out FILE
//   --floor also measures bench/floor-proxy.mjs (a bare Node JSON proxy) as a reference point
//   npm run bench -- --store postgres --replicas 2    the scaled set-ups beside the embedded one (bench/scale.mjs)
//
// Everything runs on 127.0.0.1; every phase is bounded in requests or time; children are stopped on exit.
// See bench/README.md for what each figure means.

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Pool } from 'undici';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const RESULTS = join(BENCH_DIR, 'results');

// ---------------------------------------------------------------------------------------------
// Parameters

const argv = process.argv.slice(2);
// The scaled set-ups (another store, several processes) are their own run: bench/scale.mjs.
if (argv.includes('--store') || argv.includes('--replicas')) {
  await import('./scale.mjs');
  await new Promise(() => {}); // scale.mjs exits when done
}
const flag = (name) => argv.includes(name);
const value = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};
const QUICK = flag('--quick');
const PROFILE = flag('--profile');
const FLOOR = flag('--floor');

const P = {
  rounds: Number(value('--rounds', QUICK ? 3 : 5)),
  warmupSec: QUICK ? 1 : 3,
  latencyRequests: QUICK ? 400 : 3000, // sequential, one connection, per side per round
  throughputConnections: Number(value('--connections', 64)), // --connections changes it (for --profile at 1 connection, say)
  throughputSec: QUICK ? 1.5 : 5, // per side per round
  ttftRequests: QUICK ? 40 : 150, // sequential streams per side per round
  ttftUpstream: { chunks: 6, firstMs: 5, paceMs: 2 }, // upstream pacing for the TTFT phase
  streams: flag('--no-streams') ? 0 : Number(value('--streams', 8000)),
  streamPaceMs: 2000, // held streams: one chunk every this many ms until released
  streamWindow: 256, // at most this many streams requested but not yet open
  streamHoldSec: QUICK ? 0.5 : 3, // all open: keep them open this long, sampling RSS
  streamOpenTimeoutSec: 90,
  streamDrainTimeoutSec: 60,
  profileSec: QUICK ? 4 : 10,
  // info (the default, as operators run it): one request log line per request, to a pipe this process drains.
  logLevel: value('--log-level', 'info'),
  dbDir: value('--db-dir', os.tmpdir()), // where the gateway's SQLite file lives (try /dev/shm to take the disk out)
  out: value('--out', join(RESULTS, PROFILE ? 'profile.json' : 'latest.json')),
};

const TARGETS = {
  cpu_per_request_us: 100,
  added_latency_p50_ms: 0.25,
  added_latency_p99_ms: 1,
  added_ttft_p50_ms: 1,
  open_streams: 8000,
  open_streams_rss_mib: 800,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(a.join(' ') + '\n');
const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** Nearest-rank percentile of an already sorted array. */
const pct = (sorted, p) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]);
const round = (x, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(d)));

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime+stime of a process, in seconds. */
function cpuSeconds(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", field 3 (state) is f[0]; utime is field 14 → f[11], stime field 15 → f[12].
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** VmRSS and VmHWM of a process, in MiB. */
function memory(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s);
    return m ? Number(m[1]) / 1024 : null;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

function nofileLimits() {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line.trim().split(/\s+/).slice(3, 5);
    return { soft: soft === 'unlimited' ? Infinity : Number(soft), hard: hard === 'unlimited' ? Infinity : Number(hard) };
  } catch {
    return { soft: null, hard: null };
  }
}

function machine() {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let nproc = os.availableParallelism?.() ?? os.cpus().length;
  try {
    nproc = Number(execFileSync('nproc').toString().trim());
  } catch {
    // keep the os module's answer
  }
  return {
    nproc,
    cpu_model: model,
    mem_total_gib: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    nofile: nofileLimits(),
  };
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Child processes: started with the open-file limit raised to the hard limit, stopped on exit.

const children = new Set();

function spawnNode(name, args, { nofile } = {}) {
  const node = process.execPath;
  const cmd = nofile ? 'sh' : node;
  const cmdArgs = nofile ? ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, node, ...args] : args;
  const child = spawn(cmd, cmdArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } });
  const tail = { out: '', err: '' };
  const keep = (k) => (b) => {
    tail[k] = (tail[k] + b.toString()).slice(-8000);
  };
  child.stdout.on('data', keep('out'));
  child.stderr.on('data', keep('err'));
  child.tail = tail;
  child.label = name;
  child.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stopChild(child, timeoutMs = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const r = await child.exited;
  clearTimeout(t);
  return r;
}

function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

async function startUpstream(nofile, script = 'upstream.mjs', extra = []) {
  const child = spawnNode(script, [join(BENCH_DIR, script), '--port', '0', ...extra], { nofile });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const m = /LISTENING (\d+)/.exec(child.tail.out);
    if (m) return { child, port: Number(m[1]), origin: `http://127.0.0.1:${m[1]}` };
    if (child.exitCode !== null) break;
    await sleep(20);
  }
  throw new Error(`bench/${script} did not start: ${child.tail.err || child.tail.out}`);
}

function gatewayConfig({ port, dbPath, adminKey, upstreamPort, maxConnections }) {
  const up = `http://127.0.0.1:${upstreamPort}`;
  const t = P.ttftUpstream;
  const pricing = '{ input: 1.00, output: 3.20, cached_input: 0.20 }';
  return `# Generated by bench/run.mjs: the full policy (auth, per-key limits, holds, settlement, usage records).
server:
  host: 127.0.0.1
  port: ${port}
  max_concurrent_requests: ${maxConnections}
database: sqlite:${dbPath}
admin_key: ${adminKey}
log_level: ${P.logLevel}
providers:
  bench_fast:
    type: openai
    base_url: ${up}/v1
    api_key: sk-bench-upstream
    max_connections: 256
  bench_ttft:
    type: openai
    base_url: ${up}/s/${t.chunks}/${t.firstMs}/${t.paceMs}/v1
    api_key: sk-bench-upstream
    max_connections: 256
  bench_hold:
    type: openai
    base_url: ${up}/h/${P.streamPaceMs}/v1
    api_key: sk-bench-upstream
    max_connections: ${maxConnections}
models:
  bench:
    owned_by: bench
    pricing: ${pricing}
    context_window: 128000
    max_output_tokens: 4096
    deployments: [{ provider: bench_fast, model: bench-upstream }]
  bench-ttft:
    owned_by: bench
    pricing: ${pricing}
    context_window: 128000
    max_output_tokens: 4096
    deployments: [{ provider: bench_ttft, model: bench-upstream }]
  bench-hold:
    owned_by: bench
    pricing: ${pricing}
    context_window: 128000
    max_output_tokens: 4096
    deployments: [{ provider: bench_hold, model: bench-upstream }]
`;
}

async function waitHealthy(origin, child, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const r = await fetch(`${origin}/health`);
      if (r.ok) return;
    } catch {
      // not yet listening
    }
    await sleep(50);
  }
  throw new Error(`the gateway did not start: ${(child.tail.err || child.tail.out).trim().slice(-2000) || `exit ${child.exitCode}`}`);
}

async function startGateway({ tmp, upstreamPort, nofile, profileDir }) {
  const port = await freePort();
  const adminKey = `bench-admin-${randomBytes(16).toString('hex')}`;
  const dbPath = join(tmp, 'bench.db');
  const configPath = join(tmp, 'token360.yaml');
  const maxConnections = Math.max(10_000, P.streams + 1000);
  const config = gatewayConfig({ port, dbPath, adminKey, upstreamPort, maxConnections });
  writeFileSync(configPath, config);
  const nodeFlags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=500'] : [];
  const child = spawnNode('gateway', [...nodeFlags, join(ROOT, 'dist/cli/main.js'), 'serve', '--config', configPath], { nofile });
  const origin = `http://127.0.0.1:${port}`;
  await waitHealthy(origin, child);
  return { child, origin, adminKey, config, configPath };
}

async function adminCall(gw, method, path, body) {
  const r = await fetch(`${gw.origin}${path}`, {
    method,
    headers: { authorization: `Bearer ${gw.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`admin ${method} ${path} answered ${r.status}: ${text.slice(0, 500)}`);
  return text === '' ? null : JSON.parse(text);
}

/** An account with plenty of credit, and a key whose limits are all set, high enough never to trigger. */
async function provision(gw) {
  const account = await adminCall(gw, 'POST', '/admin/accounts', { name: 'bench', credit: '1000000' });
  const limits = { rpm: 1_000_000_000, tpm: 1_000_000_000_000, concurrency: 100_000, daily_spend: '1000000' };
  const key = await adminCall(gw, 'POST', '/admin/keys', { account_id: account.id, name: 'bench', limits });
  return { account, key, limits };
}

// ---------------------------------------------------------------------------------------------
// Requests

const CHAT_PATH = '/v1/chat/completions';
const chatBody = (model, stream) =>
  JSON.stringify({
    model,
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Say hello and tell me one short fact about benchmarks.' },
    ],
    temperature: 0.7,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });

/** One autocannon run; latencies (ms, full precision) are taken from its per-response events. */
function cannon({ origin, headers, body, connections, duration, amount, keepLatencies = 200_000 }) {
  return new Promise((resolvePromise, reject) => {
    const lat = [];
    const statuses = {};
    const opts = {
      url: origin + CHAT_PATH,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      connections,
      pipelining: 1,
      timeout: 10,
      ...(amount ? { amount } : { duration }),
    };
    const inst = autocannon(opts, (err, res) => (err ? reject(err) : resolvePromise({ res, lat, statuses })));
    inst.on('response', (_client, statusCode, _bytes, responseTime) => {
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
      if (statusCode >= 200 && statusCode < 300 && lat.length < keepLatencies) lat.push(responseTime);
    });
  });
}

function summarizeCannon({ res, lat, statuses }) {
  const sorted = lat.sort((a, b) => a - b);
  const ok = res['2xx'];
  return {
    requests: res.requests.total,
    ok,
    non2xx: res.non2xx,
    errors: res.errors,
    timeouts: res.timeouts,
    statuses,
    duration_s: round(res.duration, 3),
    rps: round(ok / res.duration, 1),
    p50_ms: round(pct(sorted, 50), 4),
    p90_ms: round(pct(sorted, 90), 4),
    p99_ms: round(pct(sorted, 99), 4),
    max_ms: round(sorted[sorted.length - 1] ?? null, 4),
  };
}

/** A sequential streaming client: time from sending the request to the first `data:` chunk with content. */
async function ttftRun(origin, path, headers, body, count) {
  const pool = new Pool(origin, { connections: 1, pipelining: 1, keepAliveTimeout: 60_000, bodyTimeout: 30_000, headersTimeout: 30_000 });
  const ttft = [];
  let failed = 0;
  let incomplete = 0;
  let sampleError = null;
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      let first = null;
      try {
        const res = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body });
        if (res.statusCode !== 200) {
          failed++;
          sampleError ??= `HTTP ${res.statusCode}: ${(await res.body.text()).slice(0, 300)}`;
          continue;
        }
        let buf = '';
        let tail = '';
        for await (const c of res.body) {
          const now = performance.now();
          const s = c.toString();
          if (first === null) {
            buf += s;
            for (let idx = buf.indexOf('\n\n'); idx !== -1 && first === null; idx = buf.indexOf('\n\n')) {
              const ev = buf.slice(0, idx);
              buf = buf.slice(idx + 2);
              if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
              const delta = JSON.parse(ev.slice(6)).choices?.[0]?.delta;
              if (typeof delta?.content === 'string' && delta.content !== '') first = now - t0;
            }
          }
          tail = (tail + s).slice(-64);
        }
        if (first !== null) ttft.push(first);
        if (!tail.endsWith('data: [DONE]\n\n')) {
          incomplete++;
          sampleError ??= `stream ended without [DONE]: …${JSON.stringify(tail)}`;
        }
      } catch (e) {
        failed++;
        sampleError ??= String(e?.message ?? e);
      }
    }
  } finally {
    await pool.close();
  }
  const sorted = ttft.sort((a, b) => a - b);
  return { count, measured: sorted.length, failed, incomplete, sample_error: sampleError, p50_ms: round(pct(sorted, 50), 4), p90_ms: round(pct(sorted, 90), 4), p99_ms: round(pct(sorted, 99), 4) };
}

// ---------------------------------------------------------------------------------------------
// Phases

async function preflight(gw, up, auth) {
  const out = {};
  const r1 = await fetch(gw.origin + CHAT_PATH, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: chatBody('bench', false) });
  const t1 = await r1.text();
  out.non_streamed = { status: r1.status, body: t1.slice(0, 600) };
  out.rate_limit_headers = Object.fromEntries([...r1.headers].filter(([k]) => k.startsWith('x-ratelimit')));
  const r2 = await fetch(gw.origin + CHAT_PATH, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: chatBody('bench-ttft', true) });
  const t2 = await r2.text();
  out.streamed = { status: r2.status, ends_with_done: t2.endsWith('data: [DONE]\n\n'), tail: t2.slice(-300) };
  const d = await fetch(up.origin + CHAT_PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('bench', false) });
  out.direct = { status: d.status };
  await d.text();
  out.ok = r1.status === 200 && r2.status === 200 && out.streamed.ends_with_done && d.status === 200;
  return out;
}

async function latencyPhase(target, headers, body, pid) {
  const before = cpuSeconds(pid);
  const r = summarizeCannon(await cannon({ origin: target, headers, body, connections: 1, amount: P.latencyRequests }));
  await sleep(50);
  r.cpu_us_per_request = round(((cpuSeconds(pid) - before) * 1e6) / Math.max(1, r.requests), 1);
  return r;
}

async function throughputPhase(target, headers, body, measurePids) {
  const before = measurePids.map((pid) => cpuSeconds(pid));
  const r = summarizeCannon(await cannon({ origin: target, headers, body, connections: P.throughputConnections, duration: P.throughputSec, keepLatencies: 500_000 }));
  await sleep(150); // settlement and usage writes happen after the response: count them too
  const after = measurePids.map((pid) => cpuSeconds(pid));
  r.cpu_s = measurePids.map((_, i) => round(after[i] - before[i], 3));
  r.cpu_us_per_request = measurePids.map((_, i) => round(((after[i] - before[i]) * 1e6) / Math.max(1, r.requests), 1));
  return r;
}

/** N concurrent streams through the gateway, all held open by the upstream until every one is open. */
async function openStreamsPhase(gw, up, auth) {
  const n = P.streams;
  const gwPid = gw.child.pid;
  await fetch(`${up.origin}/_reset`).then((r) => r.text());
  const poolCount = Math.ceil(n / 1000);
  const pools = Array.from({ length: poolCount }, () => new Pool(gw.origin, { connections: Math.ceil(n / poolCount), pipelining: 1, keepAliveTimeout: 5_000, headersTimeout: 120_000, bodyTimeout: 120_000, connectTimeout: 30_000 }));
  const body = chatBody('bench-hold', true);
  const headers = { 'content-type': 'application/json', ...auth };
  const st = { issued: 0, opened: 0, completed: 0, failed: 0, broken: 0, openNow: 0, peakOpen: 0, errors: {} };
  const noteError = (k) => {
    st.errors[k] = (st.errors[k] ?? 0) + 1;
  };
  const rss = [];
  let rssMax = 0;
  const sampler = setInterval(() => {
    try {
      const m = memory(gwPid);
      rss.push(round(m.rss, 1));
      rssMax = Math.max(rssMax, m.rss);
    } catch {
      // the gateway is gone; reported below
    }
  }, 250);
  const hwmBefore = memory(gwPid).hwm;
  const cpuBefore = cpuSeconds(gwPid);

  const launch = (i) => {
    pools[i % poolCount]
      .request({ method: 'POST', path: CHAT_PATH, headers, body })
      .then((res) => {
        if (res.statusCode !== 200) {
          st.failed++;
          return res.body.text().then((t) => noteError(`HTTP ${res.statusCode}: ${t.slice(0, 200)}`));
        }
        let open = false;
        let tail = '';
        res.body.on('data', (c) => {
          if (!open) {
            open = true;
            st.opened++;
            st.openNow++;
            if (st.openNow > st.peakOpen) st.peakOpen = st.openNow;
          }
          tail = (tail + c.toString()).slice(-64);
        });
        res.body.on('end', () => {
          if (open) st.openNow--;
          if (tail.endsWith('data: [DONE]\n\n')) st.completed++;
          else {
            st.broken++;
            noteError(`ended without [DONE]: ${tail.slice(-120)}`);
          }
        });
        res.body.on('error', (e) => {
          if (open) st.openNow--;
          else st.failed++;
          st.broken += open ? 1 : 0;
          noteError(`stream error: ${e.message}`);
        });
      })
      .catch((e) => {
        st.failed++;
        noteError(`request error: ${e.code ?? ''} ${e.message}`);
      });
  };

  const t0 = performance.now();
  const openDeadline = Date.now() + P.streamOpenTimeoutSec * 1000;
  while (st.opened + st.failed < n && Date.now() < openDeadline) {
    while (st.issued < n && st.issued - st.opened - st.failed < P.streamWindow) launch(st.issued++);
    await sleep(5);
  }
  const openSec = (performance.now() - t0) / 1000;
  const upAtPeak = await fetch(`${up.origin}/_stats`).then((r) => r.json());
  const allOpen = { client_open: st.openNow, upstream_open: upAtPeak.streams_open, rss_mib: round(memory(gwPid).rss, 1) };
  log(`  streams: ${st.opened}/${n} open after ${openSec.toFixed(1)} s (upstream sees ${upAtPeak.streams_open}); gateway RSS ${allOpen.rss_mib} MiB; holding ${P.streamHoldSec} s`);
  await sleep(P.streamHoldSec * 1000);
  const rssHeld = round(memory(gwPid).rss, 1);
  await fetch(`${up.origin}/_release`).then((r) => r.text());
  const drainDeadline = Date.now() + P.streamDrainTimeoutSec * 1000;
  while (st.completed + st.broken + st.failed < st.issued && Date.now() < drainDeadline) await sleep(20);
  const totalSec = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  await Promise.allSettled(pools.map((p) => p.destroy()));
  const upFinal = await fetch(`${up.origin}/_stats`).then((r) => r.json());
  const mem = memory(gwPid);
  const cpuAfter = cpuSeconds(gwPid);
  // /_reset left streams_peak at the streams then open (0), so this is the peak of this phase.
  return {
    requested: n,
    issued: st.issued,
    opened: st.opened,
    completed: st.completed,
    failed: st.failed,
    broken: st.broken,
    peak_open_client: st.peakOpen,
    peak_open_upstream: upFinal.streams_peak,
    at_all_open: allOpen,
    seconds_to_open_all: round(openSec, 2),
    seconds_total: round(totalSec, 2),
    gateway_rss_peak_sampled_mib: round(rssMax, 1),
    gateway_rss_after_hold_mib: rssHeld,
    gateway_vmhwm_before_mib: round(hwmBefore, 1),
    gateway_vmhwm_after_mib: round(mem.hwm, 1),
    gateway_rss_after_mib: round(mem.rss, 1),
    gateway_cpu_s: round(cpuAfter - cpuBefore, 2),
    rss_samples_mib: rss.filter((_, i) => i % 4 === 0),
    errors: st.errors,
  };
}

// ---------------------------------------------------------------------------------------------
// The run

async function setup({ profileDir } = {}) {
  const lim = nofileLimits();
  const need = P.streams * 2 + 2000;
  const nofile = Number.isFinite(lim.hard) ? lim.hard : Math.max(need, 65536);
  const notes = [];
  if (P.streams > 0 && nofile < need) notes.push(`open-file hard limit ${lim.hard} is below the ${need} the gateway needs for ${P.streams} streams; expect failures`);
  if (P.streams > 0 && lim.soft < P.streams + 1000) notes.push(`this process's open-file soft limit is ${lim.soft}; run with a raised \`ulimit -n\` for ${P.streams} streams`);
  const tmp = mkdtempSync(join(P.dbDir, 'token360-bench-'));
  const up = await startUpstream(nofile);
  let gw;
  try {
    gw = await startGateway({ tmp, upstreamPort: up.port, nofile, profileDir });
  } catch (e) {
    await stopChild(up.child);
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const prov = await provision(gw);
  const auth = { authorization: `Bearer ${prov.key.key}` };
  const floor = FLOOR && !profileDir ? await startUpstream(nofile, 'floor-proxy.mjs', ['--upstream', up.origin]) : null;
  return { tmp, up, gw, floor, prov, auth, nofile, notes };
}

async function teardown(env) {
  const out = {};
  if (env.floor) out.floor_exit = await stopChild(env.floor.child);
  if (env.gw) out.gateway_exit = await stopChild(env.gw.child, 40_000);
  if (env.up) out.upstream_exit = await stopChild(env.up.child);
  rmSync(env.tmp, { recursive: true, force: true });
  return out;
}

async function runBench() {
  const started = Date.now();
  const result = { generated_at: new Date().toISOString(), mode: QUICK ? 'quick' : 'full', machine: machine(), params: P, targets: TARGETS, notes: [], errors: [] };
  let env;
  try {
    env = await setup();
  } catch (e) {
    result.errors.push(`start-up: ${e.message}`);
    return finish(result, started);
  }
  result.notes.push(...env.notes);
  const { up, gw, auth } = env;
  const gwPid = gw.child.pid;
  const upPid = up.child.pid;
  result.gateway = { pid: gwPid, rss_at_start_mib: round(memory(gwPid).rss, 1), config: gw.config.replace(/admin_key: .*/, 'admin_key: <generated>').replace(/sqlite:.*/, 'sqlite:<temp file>') };
  result.key_limits = env.prov.limits;
  log(`machine: ${result.machine.nproc} × ${result.machine.cpu_model}, ${result.machine.mem_total_gib} GiB, node ${process.version}`);
  log(`upstream pid ${upPid} at ${up.origin}; gateway pid ${gwPid} at ${gw.origin} (open-file limit ${env.nofile})`);

  try {
    result.preflight = await preflight(gw, up, auth);
    if (!result.preflight.ok) {
      result.errors.push(`preflight failed: ${JSON.stringify(result.preflight).slice(0, 1500)}`);
      throw new Error('preflight failed');
    }
    if (Object.keys(result.preflight.rate_limit_headers).length === 0) {
      result.notes.push('the gateway sent no x-ratelimit-* headers although the key has rpm and tpm limits: the rate limiter is probably not (yet) on the request path, so its cost is not in these figures');
    }

    const nsBody = chatBody('bench', false);
    log(`warm-up: ${P.warmupSec} s each side at ${P.throughputConnections} connections`);
    for (const origin of [up.origin, gw.origin, ...(env.floor ? [env.floor.origin] : [])]) await cannon({ origin, headers: auth, body: nsBody, connections: P.throughputConnections, duration: P.warmupSec, keepLatencies: 0 });
    await ttftRun(gw.origin, CHAT_PATH, auth, chatBody('bench-ttft', true), 10);

    const rounds = [];
    const t = P.ttftUpstream;
    const ttftDirectPath = `/s/${t.chunks}/${t.firstMs}/${t.paceMs}${CHAT_PATH}`;
    for (let r = 0; r < P.rounds; r++) {
      const order = r % 2 === 0 ? ['direct', 'gateway'] : ['gateway', 'direct'];
      const rr = { round: r + 1, order, latency: {}, throughput: {}, ttft: {} };
      const sides = env.floor ? [...order, 'floor'] : order;
      const originOf = (side) => (side === 'direct' ? up.origin : side === 'gateway' ? gw.origin : env.floor.origin);
      const pidOf = (side) => (side === 'direct' ? upPid : side === 'gateway' ? gwPid : env.floor.child.pid);
      for (const side of sides) rr.latency[side] = await latencyPhase(originOf(side), auth, nsBody, pidOf(side));
      for (const side of sides) {
        const pids = side === 'direct' ? [upPid] : [pidOf(side), upPid];
        const tp = await throughputPhase(originOf(side), auth, nsBody, pids);
        tp.cpu_us_per_request = side === 'direct' ? { upstream: tp.cpu_us_per_request[0] } : { [side]: tp.cpu_us_per_request[0], upstream: tp.cpu_us_per_request[1] };
        tp.cpu_s = side === 'direct' ? { upstream: tp.cpu_s[0] } : { [side]: tp.cpu_s[0], upstream: tp.cpu_s[1] };
        rr.throughput[side] = tp;
      }
      for (const side of order) {
        rr.ttft[side] =
          side === 'direct'
            ? await ttftRun(up.origin, ttftDirectPath, auth, chatBody('bench-ttft', true), P.ttftRequests)
            : await ttftRun(gw.origin, CHAT_PATH, auth, chatBody('bench-ttft', true), P.ttftRequests);
      }
      rounds.push(rr);
      const L = rr.latency;
      const T = rr.throughput;
      log(
        `round ${r + 1}/${P.rounds}: latency p50 ${L.direct.p50_ms} → ${L.gateway.p50_ms} ms, p99 ${L.direct.p99_ms} → ${L.gateway.p99_ms} ms; ` +
          `throughput ${T.direct.rps} → ${T.gateway.rps} req/s (gateway ${T.gateway.cpu_us_per_request.gateway} µs CPU/req); ` +
          `ttft p50 ${rr.ttft.direct.p50_ms} → ${rr.ttft.gateway.p50_ms} ms`,
      );
      for (const side of ['direct', 'gateway']) {
        for (const ph of ['latency', 'throughput']) {
          const x = rr[ph][side];
          if (!x) continue;
          if (x.non2xx > 0 || x.errors > 0 || x.timeouts > 0) result.errors.push(`round ${r + 1} ${ph} ${side}: ${x.non2xx} non-2xx, ${x.errors} errors, ${x.timeouts} timeouts (statuses ${JSON.stringify(x.statuses)})`);
        }
        const tt = rr.ttft[side];
        if (tt.failed > 0 || tt.incomplete > 0) result.errors.push(`round ${r + 1} ttft ${side}: ${tt.failed} failed, ${tt.incomplete} incomplete; ${tt.sample_error}`);
      }
    }
    result.rounds = rounds;
    result.cpu_after_rounds = { gateway_vmhwm_mib: round(memory(gwPid).hwm, 1) };

    if (P.streams > 0) {
      log(`open streams: ${P.streams} concurrent streams through the gateway`);
      result.open_streams = await openStreamsPhase(gw, up, auth);
    }

    result.policy_check = await policyCheck(gw, env.prov);
    result.figures = figures(result);
  } catch (e) {
    result.errors.push(`run: ${e.message}`);
    if (gw.child.exitCode !== null) result.errors.push(`gateway exited with ${gw.child.exitCode}: ${gw.child.tail.err.slice(-2000)}`);
  } finally {
    result.gateway_stderr_tail = gw.child.tail.err.slice(-3000);
    result.shutdown = await teardown(env);
  }
  return finish(result, started);
}

/** Proof that the policy ran: settlement moved the balance, holds are released, usage records exist. */
async function policyCheck(gw, prov) {
  await sleep(300);
  const account = await adminCall(gw, 'GET', `/admin/accounts/${prov.account.id}`);
  const usage = await adminCall(gw, 'GET', `/admin/usage?account_id=${prov.account.id}&limit=1`);
  return {
    credit: prov.account.balance,
    balance_after: account.balance,
    held_after: account.held,
    settled: account.balance !== prov.account.balance,
    last_usage_record: usage.data?.[0] ?? null,
  };
}

function figures(result) {
  const R = result.rounds;
  const med = (f) => median(R.map(f));
  const lat = {
    direct_p50_ms: med((r) => r.latency.direct.p50_ms),
    gateway_p50_ms: med((r) => r.latency.gateway.p50_ms),
    direct_p99_ms: med((r) => r.latency.direct.p99_ms),
    gateway_p99_ms: med((r) => r.latency.gateway.p99_ms),
    added_p50_ms: med((r) => r.latency.gateway.p50_ms - r.latency.direct.p50_ms),
    added_p99_ms: med((r) => r.latency.gateway.p99_ms - r.latency.direct.p99_ms),
  };
  const tp = {
    direct_rps: med((r) => r.throughput.direct.rps),
    gateway_rps: med((r) => r.throughput.gateway.rps),
    ratio: med((r) => r.throughput.gateway.rps / r.throughput.direct.rps),
    direct_p50_ms: med((r) => r.throughput.direct.p50_ms),
    gateway_p50_ms: med((r) => r.throughput.gateway.p50_ms),
    direct_p99_ms: med((r) => r.throughput.direct.p99_ms),
    gateway_p99_ms: med((r) => r.throughput.gateway.p99_ms),
  };
  const cpu = {
    gateway_us: med((r) => r.throughput.gateway.cpu_us_per_request.gateway),
    gateway_us_at_1_connection: med((r) => r.latency.gateway.cpu_us_per_request),
    upstream_us_direct: med((r) => r.throughput.direct.cpu_us_per_request.upstream),
    upstream_us_via_gateway: med((r) => r.throughput.gateway.cpu_us_per_request.upstream),
  };
  const ttft = {
    direct_p50_ms: med((r) => r.ttft.direct.p50_ms),
    gateway_p50_ms: med((r) => r.ttft.gateway.p50_ms),
    added_p50_ms: med((r) => r.ttft.gateway.p50_ms - r.ttft.direct.p50_ms),
    direct_p99_ms: med((r) => r.ttft.direct.p99_ms),
    gateway_p99_ms: med((r) => r.ttft.gateway.p99_ms),
  };
  const floor = R[0].latency.floor
    ? {
        p50_ms: med((r) => r.latency.floor.p50_ms),
        p99_ms: med((r) => r.latency.floor.p99_ms),
        added_p50_ms: med((r) => r.latency.floor.p50_ms - r.latency.direct.p50_ms),
        added_p99_ms: med((r) => r.latency.floor.p99_ms - r.latency.direct.p99_ms),
        rps: med((r) => r.throughput.floor.rps),
        ratio: med((r) => r.throughput.floor.rps / r.throughput.direct.rps),
        cpu_us: med((r) => r.throughput.floor.cpu_us_per_request.floor),
        cpu_us_at_1_connection: med((r) => r.latency.floor.cpu_us_per_request),
      }
    : null;
  for (const o of [lat, tp, cpu, ttft, floor ?? {}]) for (const k of Object.keys(o)) o[k] = round(o[k], k.includes('rps') ? 1 : 4);
  const os_ = result.open_streams;
  const streams = os_
    ? {
        requested: os_.requested,
        completed: os_.completed,
        peak_open_upstream: os_.peak_open_upstream,
        gateway_peak_rss_mib: round(Math.max(os_.gateway_rss_peak_sampled_mib ?? 0, os_.gateway_vmhwm_after_mib ?? 0), 1),
      }
    : null;
  const pass = {
    cpu: cpu.gateway_us !== null && cpu.gateway_us <= TARGETS.cpu_per_request_us,
    latency_p50: lat.added_p50_ms !== null && lat.added_p50_ms <= TARGETS.added_latency_p50_ms,
    latency_p99: lat.added_p99_ms !== null && lat.added_p99_ms <= TARGETS.added_latency_p99_ms,
    ttft: ttft.added_p50_ms !== null && ttft.added_p50_ms <= TARGETS.added_ttft_p50_ms,
    streams: streams ? streams.completed >= TARGETS.open_streams && streams.peak_open_upstream >= TARGETS.open_streams && streams.gateway_peak_rss_mib <= TARGETS.open_streams_rss_mib : null,
  };
  return { cpu_per_request_us: cpu, latency_1_connection: lat, throughput_64_connections: tp, ttft, open_streams: streams, floor_proxy: floor, pass };
}

function table(result) {
  const f = result.figures;
  if (!f) return 'no figures (see errors)';
  const yes = (b) => (b === null ? 'n/a' : b ? 'yes' : 'NO');
  const ms = (x) => (x === null ? '—' : `${x.toFixed(3)} ms`);
  const rows = [
    ['figure', 'direct', 'gateway', 'added / ratio', 'target', 'met'],
    ['CPU per non-streamed request, 64 connections', `${f.cpu_per_request_us.upstream_us_direct} µs (upstream)`, `${f.cpu_per_request_us.gateway_us} µs (gateway)`, '', '≤ 100 µs', yes(f.pass.cpu)],
    ['  same, 1 connection (sequential)', '', `${f.cpu_per_request_us.gateway_us_at_1_connection} µs (gateway)`, '', '', ''],
    ['latency, 1 connection, p50', ms(f.latency_1_connection.direct_p50_ms), ms(f.latency_1_connection.gateway_p50_ms), `+${ms(f.latency_1_connection.added_p50_ms)}`, '≤ 0.25 ms', yes(f.pass.latency_p50)],
    ['latency, 1 connection, p99', ms(f.latency_1_connection.direct_p99_ms), ms(f.latency_1_connection.gateway_p99_ms), `+${ms(f.latency_1_connection.added_p99_ms)}`, '≤ 1 ms', yes(f.pass.latency_p99)],
    ['throughput, 64 connections', `${f.throughput_64_connections.direct_rps} req/s`, `${f.throughput_64_connections.gateway_rps} req/s`, `× ${f.throughput_64_connections.ratio}`, 'report', ''],
    ['  latency at 64 connections, p50 / p99', `${ms(f.throughput_64_connections.direct_p50_ms)} / ${ms(f.throughput_64_connections.direct_p99_ms)}`, `${ms(f.throughput_64_connections.gateway_p50_ms)} / ${ms(f.throughput_64_connections.gateway_p99_ms)}`, '', '', ''],
    ['time to first streamed token, p50', ms(f.ttft.direct_p50_ms), ms(f.ttft.gateway_p50_ms), `+${ms(f.ttft.added_p50_ms)}`, '≤ 1 ms', yes(f.pass.ttft)],
  ];
  if (f.open_streams) {
    const s = f.open_streams;
    rows.push([`${s.requested} concurrent open streams`, '', `${s.completed} completed, ${s.peak_open_upstream} open at once`, '', `all ${TARGETS.open_streams}`, yes(s.completed >= TARGETS.open_streams && s.peak_open_upstream >= TARGETS.open_streams)]);
    rows.push(['  gateway peak RSS during them', '', `${s.gateway_peak_rss_mib} MiB`, '', '≤ 800 MiB', yes(s.gateway_peak_rss_mib <= TARGETS.open_streams_rss_mib)]);
  }
  if (f.floor_proxy) {
    const x = f.floor_proxy;
    rows.push(['reference: bare Node JSON proxy (floor-proxy.mjs)', '', '', '', '', '']);
    rows.push(['  CPU per request, 64 / 1 connection(s)', '', `${x.cpu_us} / ${x.cpu_us_at_1_connection} µs`, '', '', '']);
    rows.push(['  latency, 1 connection, p50 / p99', '', `${ms(x.p50_ms)} / ${ms(x.p99_ms)}`, `+${ms(x.added_p50_ms)} / +${ms(x.added_p99_ms)}`, '', '']);
    rows.push(['  throughput, 64 connections', '', `${x.rps} req/s`, `× ${x.ratio}`, '', '']);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => '| ' + r.map((c, i) => String(c).padEnd(w[i])).join(' | ') + ' |';
  return [line(rows[0]), '|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|', ...rows.slice(1).map(line)].join('\n');
}

function finish(result, started) {
  result.elapsed_s = round((Date.now() - started) / 1000, 1);
  mkdirSync(dirname(P.out), { recursive: true });
  writeFileSync(P.out, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`\nToken360 bench (${result.mode}, ${result.machine.nproc} × ${result.machine.cpu_model}, node ${result.machine.node}), medians of ${P.rounds} rounds:\n\n`);
  process.stdout.write(table(result) + '\n');
  if (result.policy_check) {
    const pc = result.policy_check;
    process.stdout.write(`\npolicy: balance ${pc.credit} → ${pc.balance_after} USD, held after ${pc.held_after}, last usage record ${pc.last_usage_record ? `${pc.last_usage_record.status ?? ''} ${pc.last_usage_record.model ?? ''} cost ${pc.last_usage_record.cost ?? ''}` : 'none'}\n`);
  }
  for (const n of result.notes) process.stdout.write(`note: ${n}\n`);
  for (const e of result.errors) process.stdout.write(`ERROR: ${e}\n`);
  process.stdout.write(`\n${relative(process.cwd(), P.out)} written in ${result.elapsed_s} s\n`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// --profile: the gateway under node --cpu-prof during one throughput round

async function runProfile() {
  const started = Date.now();
  const dir = join(RESULTS, 'profile');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  P.streams = 0;
  const result = { generated_at: new Date().toISOString(), mode: 'profile', machine: machine(), params: P, notes: [], errors: [] };
  let env;
  try {
    env = await setup({ profileDir: dir });
  } catch (e) {
    result.errors.push(`start-up: ${e.message}`);
    writeFileSync(P.out, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(`ERROR: ${e.message}\n`);
    return result;
  }
  try {
    const pre = await preflight(env.gw, env.up, env.auth);
    if (!pre.ok) throw new Error(`preflight failed: ${JSON.stringify(pre).slice(0, 1500)}`);
    const body = chatBody('bench', false);
    log(`warm-up ${P.warmupSec} s, then ${P.profileSec} s at ${P.throughputConnections} connections under --cpu-prof`);
    await cannon({ origin: env.gw.origin, headers: env.auth, body, connections: P.throughputConnections, duration: P.warmupSec, keepLatencies: 0 });
    const saved = P.throughputSec;
    P.throughputSec = P.profileSec;
    result.throughput = await throughputPhase(env.gw.origin, env.auth, body, [env.gw.child.pid]);
    P.throughputSec = saved;
  } catch (e) {
    result.errors.push(e.message);
  }
  result.shutdown = await teardown(env);
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) {
    result.errors.push(`no .cpuprofile written in ${dir} (gateway exit ${JSON.stringify(result.shutdown.gateway_exit)}): ${env.gw.child.tail.err.slice(-1000)}`);
  } else {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the event loop; others are
    // worker threads (the SQLite checkpointer), which would hide the request path.
    const main = files.filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
    const file = join(dir, (main.length > 0 ? main : files).sort().at(-1));
    result.profile_file = relative(ROOT, file);
    Object.assign(result, analyzeProfile(JSON.parse(readFileSync(file, 'utf8'))));
  }
  result.elapsed_s = round((Date.now() - started) / 1000, 1);
  writeFileSync(P.out, JSON.stringify(result, null, 2) + '\n');
  if (result.throughput) process.stdout.write(`\nprofiled round: ${result.throughput.rps} req/s through the gateway, ${result.throughput.cpu_us_per_request[0]} µs CPU/request (with the profiler on)\n`);
  if (result.top_self) {
    process.stdout.write(`\ntop 15 functions by self time (${result.sampled_ms} ms sampled, ${result.busy_ms} ms not idle):\n\n`);
    process.stdout.write(profileTable(result.top_self.slice(0, 15), result.busy_ms) + '\n');
    process.stdout.write(`\nself time by where the code lives:\n\n`);
    process.stdout.write(profileTable(result.by_area.slice(0, 15), result.busy_ms) + '\n');
    process.stdout.write(`\ngateway functions (src/) by inclusive time:\n\n`);
    process.stdout.write(profileTable(result.top_inclusive_src.slice(0, 15), result.busy_ms) + '\n');
  }
  for (const e of result.errors) process.stdout.write(`ERROR: ${e}\n`);
  process.stdout.write(`\n${relative(process.cwd(), P.out)} written in ${result.elapsed_s} s\n`);
  return result;
}

function profileTable(rows, busy) {
  const lines = rows.map((r, i) => `${String(i + 1).padStart(2)}. ${r.ms.toFixed(1).padStart(8)} ms ${((100 * r.ms) / busy).toFixed(1).padStart(5)}%  ${r.name}`);
  return lines.join('\n');
}

// Source maps: dist/**/*.js lines → src/**/*.ts lines, so that the profile names the file to change.
const B64 = Object.fromEntries([...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].map((c, i) => [c, i]));
function decodeVlq(s) {
  const out = [];
  let v = 0;
  let shift = 0;
  for (const ch of s) {
    const d = B64[ch];
    v += (d & 31) << shift;
    if (d & 32) shift += 5;
    else {
      out.push(v & 1 ? -(v >>> 1) : v >>> 1);
      v = 0;
      shift = 0;
    }
  }
  return out;
}
const mapCache = new Map();
function sourceMapFor(jsPath) {
  if (mapCache.has(jsPath)) return mapCache.get(jsPath);
  let m = null;
  try {
    const raw = JSON.parse(readFileSync(jsPath + '.map', 'utf8'));
    const lines = [];
    let src = 0;
    let sl = 0;
    let sc = 0;
    for (const line of raw.mappings.split(';')) {
      const segs = [];
      let col = 0;
      for (const seg of line.split(',')) {
        if (seg === '') continue;
        const d = decodeVlq(seg);
        col += d[0];
        if (d.length >= 4) {
          src += d[1];
          sl += d[2];
          sc += d[3];
          segs.push([col, src, sl]);
        }
      }
      lines.push(segs);
    }
    m = { lines, sources: raw.sources.map((s) => relative(ROOT, resolve(dirname(jsPath), raw.sourceRoot ?? '', s))) };
  } catch {
    m = null;
  }
  mapCache.set(jsPath, m);
  return m;
}
function original(jsPath, line0, col0) {
  const m = sourceMapFor(jsPath);
  const segs = m?.lines[line0];
  if (!segs || segs.length === 0) return null;
  let best = segs[0];
  for (const s of segs) if (s[0] <= col0) best = s;
  return `${m.sources[best[1]]}:${best[2] + 1}`;
}

function describe(cf) {
  const fn = cf.functionName || '(anonymous)';
  const url = cf.url || '';
  if (url === '') return { name: fn, area: fn.startsWith('(') ? fn : '(native / V8 builtins)' };
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (path.startsWith('node:')) return { name: `${fn} ${path}:${cf.lineNumber + 1}`, area: 'node: internals' };
  const rel = relative(ROOT, path);
  if (rel.startsWith('dist/')) {
    const orig = original(path, cf.lineNumber, cf.columnNumber);
    const where = orig ?? `${rel}:${cf.lineNumber + 1}`;
    return { name: `${fn} ${where}`, area: (orig ?? rel).split(':')[0], src: true };
  }
  const nm = rel.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = rel.slice(nm + 'node_modules/'.length).split('/');
    const pkg = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    return { name: `${fn} ${pkg}/${rest.slice(pkg.split('/').length).join('/')}:${cf.lineNumber + 1}`, area: `node_modules/${pkg}` };
  }
  return { name: `${fn} ${rel}:${cf.lineNumber + 1}`, area: rel };
}

function analyzeProfile(prof) {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const info = new Map(prof.nodes.map((n) => [n.id, describe(n.callFrame)]));
  // Sample i lasts until sample i+1: timeDeltas[i+1] (µs).
  const selfUs = new Map();
  const inclUs = new Map();
  const areaUs = new Map();
  let total = 0;
  let idle = 0;
  const { samples, timeDeltas } = prof;
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < timeDeltas.length ? Math.max(0, timeDeltas[i + 1]) : 0;
    if (dt === 0) continue;
    const id = samples[i];
    const d = info.get(id);
    total += dt;
    if (d.name === '(idle)') {
      idle += dt;
      continue;
    }
    selfUs.set(d.name, (selfUs.get(d.name) ?? 0) + dt);
    areaUs.set(d.area, (areaUs.get(d.area) ?? 0) + dt);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const di = info.get(cur);
      if (di.src && !seen.has(di.name)) {
        seen.add(di.name);
        inclUs.set(di.name, (inclUs.get(di.name) ?? 0) + dt);
      }
    }
  }
  void byId;
  const sorted = (m) => [...m].map(([name, us]) => ({ name, ms: round(us / 1000, 1) })).sort((a, b) => b.ms - a.ms);
  return {
    sampled_ms: round(total / 1000, 1),
    idle_ms: round(idle / 1000, 1),
    busy_ms: round((total - idle) / 1000, 1),
    top_self: sorted(selfUs).slice(0, 40),
    by_area: sorted(areaUs).slice(0, 30),
    top_inclusive_src: sorted(inclUs).slice(0, 30),
  };
}

// ---------------------------------------------------------------------------------------------

const overall = setTimeout(() => {
  log('bench: overall time limit reached, stopping');
  killAll();
  process.exit(2);
}, (QUICK ? 5 : 15) * 60_000);
overall.unref();

const outcome = PROFILE ? await runProfile() : await runBench();
killAll();
// Missed targets are figures, not failures; a run that could not measure (start-up, errors) exits 1.
process.exit(outcome?.errors?.length > 0 ? 1 : 0);
