// How long usage summaries take (GET /admin/usage/summary, `token360 usage --summary`, /v1/me)
// over a SQLite store of 1,000,000 usage records.
//
//   npm run bench:summary                      builds, then runs this
//   node bench/usage-summary.mjs [--records N] [--db-dir DIR] [--runs N]
//
// Seeds the records through the store's own write path (recordUsage: the group commit, the
// triggers that keep the daily totals), into a temporary file store: 30 days ending now,
// 100 accounts with 3 keys each, 8 models, 3 requests in 20 failed. Then times each
// grouping over the whole range and over one account, twice: with a range aligned to UTC days
// (the default range; only daily totals are read) and with one that is not (now - 30 days to
// now: the records of the two partial days at the edges are read too). Prints the median and the
// slowest of --runs runs, in milliseconds. Stops the process's own store and removes its files.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openStore } from '../dist/store/open.js';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const RECORDS = Number(arg('--records', '1000000'));
const RUNS = Number(arg('--runs', '5'));
const DAY = 86_400_000;
const BATCH = 20_000;

const dir = mkdtempSync(join(arg('--db-dir', tmpdir()), 'token360-bench-summary-'));
const file = join(dir, 'usage.db');
const store = await openStore(`sqlite:${file}`);

try {
  const now = Date.now();
  const span = 30 * DAY;
  const accounts = Array.from({ length: 100 }, (_, i) => `acct_bench${String(i).padStart(14, '0')}`);
  const keys = accounts.flatMap((a, i) => [0, 1, 2].map((k) => ({ accountId: a, keyId: `key_bench${String(i * 3 + k).padStart(15, '0')}` })));
  const models = ['gpt-5', 'gpt-5-mini', 'claude-sonnet', 'claude-haiku', 'gemini-pro', 'glm-5.1', 'deepseek-v3', 'org/llama-70b'];
  const statuses = [200, 200, 200, 200, 200, 200, 200, 200, 200, 429, 200, 200, 200, 200, 200, 200, 200, 200, 502, 499];

  // mulberry32: the same records every run.
  let seed = 42;
  const rand = (n) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };

  const seedStart = performance.now();
  for (let done = 0; done < RECORDS; done += BATCH) {
    const writes = [];
    for (let i = done; i < Math.min(RECORDS, done + BATCH); i++) {
      const who = keys[rand(keys.length)];
      const status = statuses[rand(statuses.length)];
      const ok = status === 200;
      const prompt = 50 + rand(4000);
      writes.push(
        store.recordUsage({
          traceId: `trace_bench${String(i).padStart(16, '0')}`,
          ...who,
          model: models[rand(models.length)],
          provider: 'bench',
          upstreamModel: 'bench-upstream',
          promptTokens: prompt,
          completionTokens: ok ? rand(2000) : 0,
          cachedTokens: ok ? rand(prompt) : 0,
          cacheWriteTokens: ok ? rand(100) : 0,
          reasoningTokens: ok ? rand(500) : 0,
          cost: ok ? BigInt(rand(50_000_000)) : 0n,
          status,
          errorType: ok ? null : 'bench',
          stream: rand(2) === 1,
          latencyMs: rand(5000),
          ttftMs: null,
          // Spread over the 30 days, in order, as a live gateway writes them.
          createdAt: now - span + Math.floor((i * span) / RECORDS),
          attempts: 1,
        }),
      );
    }
    await Promise.all(writes);
  }
  const seedMs = performance.now() - seedStart;
  const size = statSync(file).size + (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0);
  console.log(
    `seeded ${RECORDS.toLocaleString('en')} records through recordUsage in ${(seedMs / 1000).toFixed(1)} s ` +
      `(${Math.round(RECORDS / (seedMs / 1000)).toLocaleString('en')} records/s); database ${(size / 1e6).toFixed(0)} MB`,
  );

  const endOfToday = (Math.floor(now / DAY) + 1) * DAY;
  const ranges = {
    'aligned (last 30 UTC days)': { from: endOfToday - span, to: endOfToday },
    'unaligned (now - 30 d .. now)': { from: now - span, to: now },
  };
  const account = accounts[7];
  const rows = [];
  for (const [rangeName, range] of Object.entries(ranges)) {
    for (const scope of ['all accounts', 'one account']) {
      for (const groupBy of ['day', 'model', 'key', 'account']) {
        const q = { groupBy, ...range, ...(scope === 'one account' ? { accountId: account } : {}) };
        const times = [];
        let result;
        for (let r = 0; r < RUNS; r++) {
          const t = performance.now();
          result = await store.summarizeUsage(q);
          times.push(performance.now() - t);
        }
        times.sort((x, y) => x - y);
        const requests = result.reduce((n, g) => n + g.requests, 0);
        rows.push([rangeName, scope, groupBy, String(result.length), requests.toLocaleString('en'), times[Math.floor(times.length / 2)].toFixed(1), times[times.length - 1].toFixed(1)]);
      }
    }
  }
  const header = ['range', 'scope', 'group_by', 'groups', 'requests', 'median ms', 'max ms'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log([line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n'));
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
