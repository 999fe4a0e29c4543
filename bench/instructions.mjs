// Instructions per request, counted by valgrind's callgrind: a figure that does not move with the
// load of a shared VM (two processes of one build differ by ±10 % in CPU time here, the same
// build's instruction count by well under 1 %). Used to weigh a change to the request path whose
// cost is smaller than the noise of `npm run bench`.
//
//   node bench/instructions.mjs [variant ...]          (after npm run build)
//   variants: a checkout directory (built: dist/ present), optionally followed by
//             ":log=warn" (no request lines) or ":metrics=off"; default: this checkout
//   npm run bench:observability    (= --observability) this checkout with observability on
//             (defaults: metrics and request lines) and off (metrics.enabled false, log_level
//             warn), alternated ROUNDS times (3); prints each pair and the median cost of it
//   env: WARM (requests before counting, 3000), N (requests counted, 2000), CONC (in flight, 1),
//        STREAM=1 (streamed requests instead of whole answers)
//
// Each variant: one bench upstream (not counted), the gateway under callgrind with instrumentation
// off while it warms up (the JIT settles), then on for exactly N requests, then a dump. Prints
// instructions per request (all the gateway's threads: main, GC helpers, libuv) per variant.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const WARM = Number(process.env.WARM ?? 3000), N = Number(process.env.N ?? 2000), CONC = Number(process.env.CONC ?? 1);
const STREAM = process.env.STREAM === '1';
const ADMIN = 'sk-admin-instr-0123456789abcdefghijkl';
const OBSERVABILITY = process.argv[2] === '--observability';
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const HOME = resolve(HERE, '..');
const ON = HOME, OFF = `${HOME}:log=warn:metrics=off`;
const variants = OBSERVABILITY ? Array.from({ length: ROUNDS }, () => [ON, OFF]).flat() : process.argv.slice(2).length > 0 ? process.argv.slice(2) : [HOME];

function start(cmd, args, opts) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  p.stderr.on('data', () => {});
  return new Promise((res, rej) => {
    let buf = '';
    p.on('exit', (c) => rej(new Error(`${args[0]} exited ${c}`)));
    p.stdout.on('data', (d) => {
      if (buf === null) return;
      buf += d;
      const m = buf.match(/LISTENING (\d+)|http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { buf = null; res({ p, port: Number(m[1] ?? m[2]) }); }
    });
  });
}

try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('bench/instructions.mjs needs valgrind (Debian: apt-get install valgrind)');
  process.exit(2);
}
const up = await start('node', [join(HERE, 'upstream.mjs')]);
const body = JSON.stringify({ model: 'bench', ...(STREAM ? { stream: true, stream_options: { include_usage: true } } : {}), messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Say hello in one short sentence.' }] });

async function measure(spec) {
  const [dirPart, ...opts] = spec.split(':');
  const dir = resolve(dirPart);
  const opt = Object.fromEntries(opts.map((o) => o.split('=')));
  const tmp = mkdtempSync(join(tmpdir(), 'instr-'));
  const cfg = join(tmp, 'c.yaml');
  writeFileSync(cfg, [
    'server: { host: 127.0.0.1, port: 0 }',
    `database: sqlite:${tmp}/db.sqlite`,
    `admin_key: ${ADMIN}`,
    `log_level: ${opt.log ?? 'info'}`,
    ...(opt.metrics === 'off' ? ['metrics: { enabled: false }'] : []),
    'providers:',
    `  up: { type: openai, base_url: http://127.0.0.1:${up.port}/v1, api_key: sk-x }`,
    'models:',
    '  bench: { pricing: { input: 1, output: 3.2 }, max_output_tokens: 4096, deployments: [{ provider: up, model: bench-upstream }] }',
    '',
  ].join('\n'));
  const out = join(tmp, 'cg.out');
  // --predictable-gc-schedule: the collector runs when allocation calls for it, not on timers or
  // idle tasks, which valgrind (fifty times slower) would make fire many times per request.
  const g = await start('valgrind', ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${out}`, 'node', '--predictable-gc-schedule', join(dir, 'dist/cli/main.js'), 'serve', '--config', cfg], { cwd: tmp });
  const origin = `http://127.0.0.1:${g.port}`;
  const admin = async (path, b) => (await request(origin + path, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(b) })).body.json();
  const acct = await admin('/admin/accounts', { name: 'instr', credit: '1000000' });
  const key = (await admin('/admin/keys', { account_id: acct.id, name: 'instr', limits: { rpm: 1e9, tpm: 1e12, concurrency: 100000, daily_spend: '1000000' } })).key;
  const agent = new Agent({ connections: CONC });
  const run = async (n) => {
    let left = n;
    const worker = async () => {
      while (left-- > 0) {
        const r = await request(origin + '/v1/chat/completions', { method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
        await r.body.text();
        if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
      }
    };
    await Promise.all(Array.from({ length: CONC }, worker));
  };
  await run(WARM);
  const ctl = (...a) => execFileSync('callgrind_control', [...a, String(g.p.pid)], { stdio: 'pipe' });
  ctl('-i', 'on');
  await run(N);
  ctl('-d');
  ctl('-i', 'off');
  // The dump is written as <out>.<n>; its summary line holds the instructions counted since "on".
  const dumps = readdirSync(tmp).filter((f) => f.startsWith('cg.out.'));
  const text = readFileSync(join(tmp, dumps.sort().at(-1)), 'utf8');
  const total = Number(/^summary: (\d+)/m.exec(text)?.[1] ?? /^totals: (\d+)/m.exec(text)?.[1]);
  // The optimising compilers still run now and then long after warm-up, in bursts that differ
  // from run to run; a server's steady state is what it runs, so their share is set apart.
  const annotated = execFileSync('callgrind_annotate', ['--threshold=100', join(tmp, dumps.sort().at(-1))], { encoding: 'utf8', maxBuffer: 1 << 28 });
  let compile = 0, gc = 0;
  for (const line of annotated.split('\n')) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (m === null || m[2].includes('PROGRAM TOTALS')) continue;
    const n = Number(m[1].replaceAll(',', ''));
    if (COMPILE.test(m[2])) compile += n;
    else if (GC.test(m[2])) gc += n;
  }
  g.p.kill('SIGTERM');
  await new Promise((r) => g.p.on('exit', r));
  // KEEP=1 keeps the dumps (and says where) for callgrind_annotate.
  if (process.env.KEEP === '1') console.error(`dumps of ${spec}: ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
  return { total: total / N, compile: compile / N, gc: gc / N };
}

const COMPILE = /compiler::|maglev::|Maglev|turboshaft::|Builtins_CompileLazy|Compiler::|BytecodeGenerator|interpreter::Bytecode|internal::Parser|PreParser|internal::Scanner|baseline::/;
const GC = /Heap::|Scavenge|MarkCompact|Marking|Sweeper|Evacuat|MinorMC|RememberedSet|SlotSet|Builtins_RecordWrite|MemoryAllocator|ConcurrentMarking/;
const fmt = (n) => Math.round(n).toLocaleString('en');
console.log(`${WARM} requests to warm up, ${N} counted, ${CONC} in flight, ${STREAM ? 'streamed' : 'whole answers'}`);
console.log('variant\tinstructions/request\twithout compilers\tof which GC\twithout compilers and GC');
const results = [];
for (const v of variants) {
  const r = await measure(v);
  results.push({ variant: v, ...r });
  console.log(`${v}\t${fmt(r.total)}\t${fmt(r.total - r.compile)}\t${fmt(r.gc)}\t${fmt(r.total - r.compile - r.gc)}`);
}
if (OBSERVABILITY) {
  const pct = (a, b) => (100 * (a - b)) / b;
  const med = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const steady = [], all = [], mutator = [];
  for (let i = 0; i + 1 < results.length; i += 2) {
    const [on, off] = [results[i], results[i + 1]];
    steady.push(pct(on.total - on.compile, off.total - off.compile));
    all.push(pct(on.total, off.total));
    mutator.push(pct(on.total - on.compile - on.gc, off.total - off.compile - off.gc));
    console.log(`round ${i / 2 + 1}: observability costs ${steady.at(-1).toFixed(1)} % more instructions per request (${all.at(-1).toFixed(1)} % with the compilers, ${mutator.at(-1).toFixed(1)} % without them and the collector)`);
  }
  console.log(`median: ${med(steady).toFixed(1)} % (${med(all).toFixed(1)} % with the compilers, ${med(mutator).toFixed(1)} % without them and the collector)`);
  const out = join(HERE, 'results', 'observability.json');
  writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), node: process.version, warm: WARM, counted: N, concurrency: CONC, stream: STREAM, results, steadyPct: steady, allPct: all, mutatorPct: mutator }, null, 2) + '\n');
  console.log(`written to ${out}`);
}
up.p.kill();
