import type { Command } from 'commander';
import { pino } from 'pino';
import { auditLog, type Audit } from '../admin/audit.js';
import { presentAccount, presentKey, presentUsage, presentUsageSummary } from '../admin/present.js';
import * as admin from '../admin/service.js';
import type { Store } from '../store/types.js';
import { openCliStore } from './database.js';
import { usageSummaryTable } from './table.js';

// The CLI mirrors the admin API against the configured database (found as `serve` finds it, and
// never created here: see database.ts), through the same service functions, so it accepts and refuses exactly what the API does. A running server sees the
// changes on its next request (see auth/authenticate.ts).

type Out = Record<string, unknown>;

let cliAudit: Audit | null = null;
/**
 * The CLI's changes are audited like the API's, as JSON lines on stderr (stdout stays the
 * command's output); written synchronously, so that a command that exits has said what it did.
 */
function audit(): Audit {
  return (cliAudit ??= auditLog(pino({ level: 'info' }, pino.destination({ dest: 2, sync: true })), { via: 'cli' }));
}

function withStore(program: Command, run: (store: Store, ...args: never[]) => Promise<Out | Out[] | string>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const json = (cmd.opts() as { json?: boolean }).json === true;
    const { store } = await openCliStore(program.opts<{ config?: string }>().config, { create: false });
    try {
      const result = await (run as (s: Store, ...a: unknown[]) => Promise<Out | Out[] | string>)(store, ...args.slice(0, -1));
      print(result, json);
    } finally {
      await store.close();
    }
  };
}

function print(result: Out | Out[] | string, json: boolean): void {
  if (typeof result === 'string') {
    console.log(json ? JSON.stringify({ result }) : result);
  } else if (json) {
    console.log(JSON.stringify(result, null, 2));
  } else if (Array.isArray(result)) {
    if (result.length === 0) console.log('(none)');
    for (const r of result) console.log(Object.entries(r).map(([k, v]) => `${k}=${fmt(v)}`).join('  '));
  } else {
    for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(12)} ${fmt(v)}`);
  }
}

const fmt = (v: unknown): string => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));

interface UsageOpts {
  account?: string; key?: string; from?: string; to?: string; limit?: string; cursor?: string; summary?: boolean; groupBy?: string; json?: boolean;
}

interface LimitOpts { rpm?: string; tpm?: string; concurrency?: string; dailySpend?: string }

function limitsFrom(o: LimitOpts): Out | undefined {
  const l: Out = {};
  if (o.rpm !== undefined) l['rpm'] = Number(o.rpm);
  if (o.tpm !== undefined) l['tpm'] = Number(o.tpm);
  if (o.concurrency !== undefined) l['concurrency'] = Number(o.concurrency);
  if (o.dailySpend !== undefined) l['daily_spend'] = o.dailySpend;
  return Object.keys(l).length > 0 ? l : undefined;
}

export function registerAdminCommands(program: Command): void {
  const accounts = program.command('accounts').description('prepaid accounts');
  accounts
    .command('create')
    .requiredOption('--name <name>', 'account name')
    .option('--credit <usd>', 'initial credit in USD', '0')
    .option('--json', 'print JSON')
    .action(withStore(program, async (store, o: { name: string; credit: string }) => presentAccount(await admin.createAccount(store, { name: o.name, credit: o.credit }, audit()))));
  accounts
    .command('show <id>')
    .option('--json', 'print JSON')
    .action(withStore(program, async (store, id: string) => presentAccount(await admin.getAccount(store, id))));
  accounts
    .command('update <id>')
    .description('rename the account or set its limits (applied across all its keys)')
    .option('--name <name>', 'new name')
    .option('--rpm <n>').option('--tpm <n>').option('--concurrency <n>').option('--daily-spend <usd>')
    .option('--no-limits', 'remove all account limits')
    .option('--json', 'print JSON')
    .action(
      withStore(program, async (store, id: string, o: LimitOpts & { name?: string; limits?: boolean }) => {
        const patch: Out = {};
        if (o.name !== undefined) patch['name'] = o.name;
        const limits = limitsFrom(o);
        if (o.limits === false) patch['limits'] = null;
        else if (limits !== undefined) patch['limits'] = limits;
        return presentAccount(await admin.updateAccount(store, id, patch, audit()));
      }),
    );
  accounts
    .command('credit <id>')
    .requiredOption('--amount <usd>', 'amount in USD')
    .option('--note <text>', 'ledger note')
    .option('--idempotency-key <key>', 'credit at most once for this key')
    .option('--json', 'print JSON')
    .action(
      withStore(program, async (store, id: string, o: { amount: string; note?: string; idempotencyKey?: string }) =>
        presentAccount(await admin.creditAccount(store, id, { amount: o.amount, ...(o.note ? { note: o.note } : {}) }, o.idempotencyKey, audit())),
      ),
    );

  const keys = program.command('keys').description('API keys');
  keys
    .command('create')
    .requiredOption('--account <id>', 'account id')
    .option('--name <name>', 'key name')
    .option('--models <list>', 'comma-separated model ids or globs (default: all)')
    .option('--rpm <n>').option('--tpm <n>').option('--concurrency <n>').option('--daily-spend <usd>')
    .option('--expires-at <time>', 'ISO 8601 time')
    .option('--json', 'print JSON')
    .action(
      withStore(program, async (store, o: LimitOpts & { account: string; name?: string; models?: string; expiresAt?: string }) => {
        const limits = limitsFrom(o);
        const { key, secret } = await admin.createKey(store, {
          account_id: o.account,
          ...(o.name ? { name: o.name } : {}),
          ...(o.models ? { models: o.models.split(',').map((m) => m.trim()).filter((m) => m !== '') } : {}),
          ...(limits !== undefined ? { limits } : {}),
          ...(o.expiresAt ? { expires_at: o.expiresAt } : {}),
        }, audit());
        return presentKey(key, secret);
      }),
    );
  keys
    .command('list')
    .option('--account <id>', 'only this account')
    .option('--json', 'print JSON')
    .action(withStore(program, async (store, o: { account?: string }) => (await admin.listKeys(store, { account_id: o.account })).map((k) => presentKey(k))));
  for (const [name, frozen] of [['freeze', true], ['unfreeze', false]] as const) {
    keys
      .command(`${name} <id>`)
      .option('--json', 'print JSON')
      .action(withStore(program, async (store, id: string) => presentKey(await admin.updateKey(store, id, { frozen }, audit()))));
  }
  keys
    .command('revoke <id>')
    .option('--json', 'print JSON')
    .action(withStore(program, async (store, id: string) => (await admin.revokeKey(store, id, audit()), `revoked ${id}`)));

  program
    .command('usage')
    .description('usage records, newest first; or, with --summary, their totals per day, model, key or account')
    .option('--account <id>').option('--key <id>').option('--from <time>', 'ISO 8601 or Unix seconds, inclusive').option('--to <time>', 'exclusive')
    .option('--limit <n>', 'records per page', '100').option('--cursor <cursor>')
    .option('--summary', 'totals instead of records (default range: the last 30 UTC days, today included)')
    .option('--group-by <group>', 'with --summary: day, model, key or account', 'day')
    .option('--json', 'print JSON')
    .action(
      withStore(program, async (store, o: UsageOpts) => {
        if (o.summary === true) {
          const query = { group_by: o.groupBy, from: o.from, to: o.to, account_id: o.account, key_id: o.key };
          const summary = presentUsageSummary(await admin.summarizeUsage(store, query));
          return o.json === true ? summary : usageSummaryTable(summary);
        }
        const page = await admin.listUsage(store, { account_id: o.account, key_id: o.key, from: o.from, to: o.to, limit: o.limit, cursor: o.cursor });
        const data = page.data.map(presentUsage);
        // --json: the admin API's shape; text: a line a record, then where the next page starts.
        if (o.json === true) return { object: 'list', data, next_cursor: page.nextCursor };
        return page.nextCursor === null ? data : [...data, { next_cursor: page.nextCursor }];
      }),
    );
}
