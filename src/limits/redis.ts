import { Redis } from 'ioredis';
import { WINDOW_MS, type AdmitRequest, type AdmitResult, type LimitName, type LimitState, type Limiter, type SpendResult, type Subject, type Ticket } from './types.js';

/** A concurrency slot of a replica that died is given back after this long. */
const LEASE_MS = 15 * 60_000;
const PREFIX = 't360:';

// Lua shared by the scripts below: `now` and `window` must be locals of the script.
const WINDOW_FNS = `
local function prune(rk, tk, sk)
  redis.call('ZREMRANGEBYSCORE', rk, '-inf', now - window)
  local old = redis.call('ZRANGEBYSCORE', tk, '-inf', now - window)
  if #old > 0 then
    local sub = 0
    for _, m in ipairs(old) do sub = sub + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', tk, '-inf', now - window)
    redis.call('DECRBY', sk, sub)
  end
end
local function oldest(k)
  local o = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if #o == 0 then return 0 end
  return tonumber(o[2]) + window - now
end
`;

// Admission for all subjects in one round trip, atomically (Redis runs a script alone).
// Per subject: a sorted set of request admissions (rpm), a sorted set of `id:tokens` entries plus
// a running sum (tpm), and a sorted set of in-flight leases (concurrency). Phase 1 checks every
// subject, phase 2 records only when all passed: a refused request uses none of the limits.
const ADMIT = `
local now = tonumber(ARGV[1])
local id = ARGV[2]
local tokens = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local n = #KEYS / 4
${WINDOW_FNS}
local function state(i)
  local rk, tk, sk = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3]
  return {redis.call('ZCARD', rk), oldest(rk), tonumber(redis.call('GET', sk) or '0'), oldest(tk)}
end
for i = 0, n - 1 do
  local rk, tk, sk, ck = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local rpm, tpm, conc = tonumber(ARGV[6+i*3]), tonumber(ARGV[7+i*3]), tonumber(ARGV[8+i*3])
  prune(rk, tk, sk)
  if rpm > 0 and redis.call('ZCARD', rk) >= rpm then
    local s = state(0)
    return {0, i, 'rpm', oldest(rk), s[1], s[2], s[3], s[4]}
  end
  if tpm > 0 then
    local sum = tonumber(redis.call('GET', sk) or '0')
    if sum + tokens > tpm then
      local wait = window
      if tokens <= tpm then
        local entries = redis.call('ZRANGE', tk, 0, -1, 'WITHSCORES')
        for j = 1, #entries, 2 do
          if sum + tokens <= tpm then break end
          sum = sum - tonumber(string.match(entries[j], ':(%d+)$'))
          wait = tonumber(entries[j+1]) + window - now
        end
      end
      local s = state(0)
      return {0, i, 'tpm', wait, s[1], s[2], s[3], s[4]}
    end
  end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', ck, '-inf', now)
    if redis.call('ZCARD', ck) >= conc then
      local s = state(0)
      return {0, i, 'concurrency', 1000, s[1], s[2], s[3], s[4]}
    end
  end
end
for i = 0, n - 1 do
  local rk, tk, sk, ck = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local rpm, tpm, conc = tonumber(ARGV[6+i*3]), tonumber(ARGV[7+i*3]), tonumber(ARGV[8+i*3])
  if rpm > 0 then
    redis.call('ZADD', rk, now, id)
    redis.call('PEXPIRE', rk, window)
  end
  if tpm > 0 then
    redis.call('ZADD', tk, now, id .. ':' .. tokens)
    redis.call('INCRBY', sk, tokens)
    redis.call('PEXPIRE', tk, window)
    redis.call('PEXPIRE', sk, window)
  end
  if conc > 0 then
    redis.call('ZADD', ck, now + lease, id)
    redis.call('PEXPIRE', ck, lease)
  end
end
local s = state(0)
return {1, 0, '', 0, s[1], s[2], s[3], s[4]}
`;

// The first subject's windows, pruned, without recording anything.
const PEEK = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rk, tk, sk = KEYS[1], KEYS[2], KEYS[3]
${WINDOW_FNS}
prune(rk, tk, sk)
return {1, 0, '', 0, redis.call('ZCARD', rk), oldest(rk), tonumber(redis.call('GET', sk) or '0'), oldest(tk)}
`;

// Frees the concurrency slot and rewrites the tpm entry with the actual tokens, if it is still in the window.
const RELEASE = `
local id = ARGV[1]
local est = ARGV[2]
local actual = tonumber(ARGV[3])
for i = 0, #KEYS / 3 - 1 do
  local tk, sk, ck = KEYS[i*3+1], KEYS[i*3+2], KEYS[i*3+3]
  redis.call('ZREM', ck, id)
  local member = id .. ':' .. est
  local score = redis.call('ZSCORE', tk, member)
  if score then
    redis.call('ZREM', tk, member)
    redis.call('ZADD', tk, score, id .. ':' .. actual)
    redis.call('INCRBY', sk, actual - tonumber(est))
  end
end
return 1
`;

// Daily spend per subject and UTC day: a hash of `spent` and `reserved` (nano-dollars; exact in
// Lua's doubles below 2^53, i.e. $9M a day). A subject with no hash yet asks the caller for the
// recorded spend (return {-1, i}), and the caller runs the script again with it.
const RESERVE = `
local amount = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local init = tonumber(ARGV[2 + i*2])
    if init < 0 then return {-1, i - 1} end
    redis.call('HSET', KEYS[i], 'spent', init, 'reserved', 0)
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
for i = 1, #KEYS do
  local limit = tonumber(ARGV[1 + i*2])
  local spent = tonumber(redis.call('HGET', KEYS[i], 'spent'))
  local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved'))
  if spent + reserved + amount > limit then return {0, i - 1} end
end
for i = 1, #KEYS do redis.call('HINCRBY', KEYS[i], 'reserved', amount) end
return {1, 0}
`;

const SETTLE_SPEND = `
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local r = tonumber(redis.call('HGET', KEYS[i], 'reserved')) - tonumber(ARGV[1])
    if r < 0 then r = 0 end
    redis.call('HSET', KEYS[i], 'reserved', r)
    redis.call('HINCRBY', KEYS[i], 'spent', ARGV[2])
  end
end
return 1
`;

/** ok, refused subject, limit, retry ms, then the first subject's: rpm count, rpm reset ms, tpm sum, tpm reset ms. */
type Reply = [number, number, string, number, number, number, number, number];

function stateOf(first: Subject, r: Reply): LimitState {
  const state: LimitState = {};
  if (first.limits.rpm !== undefined) state.requests = { limit: first.limits.rpm, remaining: Math.max(0, first.limits.rpm - Number(r[4])), resetMs: Number(r[5]) };
  if (first.limits.tpm !== undefined) state.tokens = { limit: first.limits.tpm, remaining: Math.max(0, first.limits.tpm - Number(r[6])), resetMs: Number(r[7]) };
  return state;
}

/** Limits shared by every replica through one Redis: one script call per admission. */
export class RedisLimiter implements Limiter {
  readonly kind = 'redis' as const;

  constructor(readonly redis: Redis) {
    redis.defineCommand('t360admit', { lua: ADMIT });
    redis.defineCommand('t360release', { lua: RELEASE });
    redis.defineCommand('t360peek', { lua: PEEK });
    redis.defineCommand('t360reserve', { lua: RESERVE });
    redis.defineCommand('t360settle', { lua: SETTLE_SPEND });
  }

  private call<T>(name: string, keys: string[], args: (string | number)[]): Promise<T> {
    const fn = (this.redis as unknown as Record<string, (n: number, ...a: (string | number)[]) => Promise<T>>)[name]!;
    return fn.call(this.redis, keys.length, ...keys, ...args);
  }

  async admit(req: AdmitRequest): Promise<AdmitResult> {
    const keys: string[] = [];
    const args: (string | number)[] = [req.now, req.requestId, req.tokens, WINDOW_MS, LEASE_MS];
    for (const s of req.subjects) {
      const base = `${PREFIX}${s.id}:`;
      keys.push(`${base}r`, `${base}t`, `${base}ts`, `${base}c`);
      args.push(s.limits.rpm ?? 0, s.limits.tpm ?? 0, s.limits.concurrency ?? 0);
    }
    const r = await this.call<Reply>('t360admit', keys, args);
    const state = stateOf(req.subjects[0]!, r);
    if (Number(r[0]) === 1) return { ok: true, ticket: { requestId: req.requestId, subjects: req.subjects, tokens: req.tokens }, state };
    return { ok: false, limit: r[2] as LimitName, subject: req.subjects[Number(r[1])]!, retryAfterMs: Number(r[3]), state };
  }

  async peek(subject: Subject, now: number): Promise<LimitState> {
    const base = `${PREFIX}${subject.id}:`;
    return stateOf(subject, await this.call<Reply>('t360peek', [`${base}r`, `${base}t`, `${base}ts`], [now, WINDOW_MS]));
  }

  async release(ticket: Ticket, actualTokens: number): Promise<void> {
    const keys: string[] = [];
    for (const s of ticket.subjects) {
      const base = `${PREFIX}${s.id}:`;
      keys.push(`${base}t`, `${base}ts`, `${base}c`);
    }
    await this.call('t360release', keys, [ticket.requestId, ticket.tokens, actualTokens]);
  }

  async reserveSpend(subjects: Subject[], amount: bigint, day: string, spentToday: (s: Subject) => Promise<bigint>): Promise<SpendResult> {
    const limited = subjects.filter((s) => s.limits.daily_spend !== undefined);
    if (limited.length === 0) return { ok: true };
    const keys = limited.map((s) => `${PREFIX}${s.id}:spend:${day}`);
    const inits = limited.map(() => '-1');
    for (let attempt = 0; attempt <= limited.length; attempt++) {
      const args: string[] = [amount.toString(), String(2 * 86_400_000)];
      limited.forEach((s, i) => args.push(s.limits.daily_spend!.toString(), inits[i]!));
      const [code, index] = await this.call<[number, number]>('t360reserve', keys, args);
      if (code === 1) return { ok: true };
      if (code === 0) return { ok: false, subject: limited[index]! };
      inits[index] = (await spentToday(limited[index]!)).toString();
    }
    return { ok: false, subject: limited[0]! };
  }

  async settleSpend(subjects: Subject[], reserved: bigint, actual: bigint, day: string): Promise<void> {
    const limited = subjects.filter((s) => s.limits.daily_spend !== undefined);
    if (limited.length === 0) return;
    await this.call('t360settle', limited.map((s) => `${PREFIX}${s.id}:spend:${day}`), [reserved.toString(), actual.toString()]);
  }

  ping(): Promise<boolean> {
    return this.redis.ping().then((r) => r === 'PONG', () => false);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
