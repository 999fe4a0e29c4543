import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, DEFAULT_CONFIG, type Config } from './schema.js';

/** A config that cannot be used. The message names the offending path; start-up prints it and exits. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadOptions {
  /** `--config PATH`; else TOKEN360_CONFIG; else ./token360.yaml when present; else defaults. */
  path?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface LoadedConfig {
  config: Config;
  /** The file read, or null when the built-in defaults are in force. */
  source: string | null;
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const explicit = opts.path ?? env['TOKEN360_CONFIG'];
  let source: string | null = null;
  let raw: unknown = DEFAULT_CONFIG;
  if (explicit !== undefined && explicit !== '') {
    source = resolve(cwd, explicit);
    if (!existsSync(source)) throw new ConfigError(`config file not found: ${source}`);
  } else if (existsSync(resolve(cwd, 'token360.yaml'))) {
    source = resolve(cwd, 'token360.yaml');
  }
  if (source !== null) raw = withDefaultModels(parseYaml(readFileSync(source, 'utf8'), env, source));
  return { config: validate(applyEnv(raw, env)), source };
}

/** Parses config text as loadConfig does; exported for tests and `token360 config check`. */
export function parseConfigText(text: string, env: NodeJS.ProcessEnv = {}): Config {
  return validate(applyEnv(withDefaultModels(parseYaml(text, env, 'config')), env));
}

/** A file that configures neither providers nor models (only server, database, …) keeps the built-in demo model. */
function withDefaultModels(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const o = raw as Record<string, unknown>;
  if ('providers' in o || 'models' in o) return raw;
  return { ...o, providers: DEFAULT_CONFIG.providers, models: DEFAULT_CONFIG.models };
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** `${VAR}` and `${VAR:-default}`, replaced in the text before parsing so that numbers stay numbers. An unset variable without a default becomes empty. */
export function interpolate(text: string, env: NodeJS.ProcessEnv, unset: string[] = []): string {
  return text.replace(VAR, (_m, name: string, fallback: string | undefined) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (fallback === undefined) unset.push(name);
    return fallback ?? '';
  });
}

/** Variables the file named that were empty; a validation error mentions them, since they are the likely cause. */
let unsetVariables: string[] = [];

function parseYaml(text: string, env: NodeJS.ProcessEnv, where: string): unknown {
  unsetVariables = [];
  const doc = parseDocument(interpolate(text, env, unsetVariables), { prettyErrors: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw new ConfigError(`${where}: invalid YAML: ${first.message.split('\n')[0]}`);
  }
  let value: unknown;
  try {
    // toJS throws (not reports) on an alias to an unknown anchor or an alias bomb.
    value = doc.toJS();
  } catch (e) {
    throw new ConfigError(`${where}: invalid YAML: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
  }
  return value ?? {};
}

function applyEnv(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const out: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  const server: Record<string, unknown> =
    out['server'] !== null && typeof out['server'] === 'object' ? { ...(out['server'] as Record<string, unknown>) } : {};
  const set = (name: string, apply: (v: string) => void): void => {
    const v = env[name];
    if (v !== undefined && v !== '') apply(v);
  };
  set('TOKEN360_HOST', (v) => (server['host'] = v));
  set('TOKEN360_PORT', (v) => {
    if (!/^\d+$/.test(v)) throw new ConfigError(`TOKEN360_PORT: expected a port number, got "${v}"`);
    server['port'] = Number(v);
  });
  set('TOKEN360_DATABASE_URL', (v) => (out['database'] = v));
  set('TOKEN360_REDIS_URL', (v) => (out['redis'] = v));
  set('TOKEN360_ADMIN_KEY', (v) => (out['admin_key'] = v));
  if (Object.keys(server).length > 0) out['server'] = server;
  return out;
}

function validate(raw: unknown): Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('config: expected a mapping at the top level');
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const hint = unsetVariables.length > 0 ? `\n(not set in the environment: ${[...new Set(unsetVariables)].map((v) => '${' + v + '}').join(', ')})` : '';
    throw new ConfigError(parsed.error.issues.slice(0, 10).map(formatIssue).join('\n') + hint);
  }
  const config = parsed.data;
  const problems: string[] = [];
  for (const [id, model] of Object.entries(config.models)) {
    if (!model.free && model.pricing === undefined) {
      problems.push(`models.${id}.pricing: required unless the model is marked free: true`);
    }
    model.deployments.forEach((d, i) => {
      if (!Object.hasOwn(config.providers, d.provider)) {
        problems.push(`models.${id}.deployments.${i}.provider: unknown provider "${d.provider}"`);
      }
    });
  }
  if (!/^(sqlite:|postgres:\/\/|postgresql:\/\/)/.test(config.database)) {
    problems.push('database: expected sqlite:PATH, sqlite::memory: or postgres://…');
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return config;
}

const ARTICLE: Record<string, string> = { object: 'a mapping', array: 'a list', integer: 'an integer' };

function formatIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.') || 'config';
  switch (issue.code) {
    case 'invalid_type': {
      const expected = String(issue.expected);
      return `${path}: expected ${ARTICLE[expected] ?? `a ${expected}`}`;
    }
    case 'unrecognized_keys':
      return issue.keys.map((k) => `${path === 'config' ? '' : path + '.'}${k}: unknown setting`).join('\n');
    case 'invalid_union':
      if ('discriminator' in issue && issue.discriminator !== undefined) {
        // zod already ends the path with the discriminator (`providers.x.type`); don't name it twice.
        const where = issue.path[issue.path.length - 1] === issue.discriminator ? path : `${path}.${String(issue.discriminator)}`;
        return `${where}: expected one of openai, demo`;
      }
      return `${path}: ${issue.message}`;
    case 'invalid_value':
      return `${path}: expected one of ${issue.values.map(String).join(', ')}`;
    default:
      return `${path}: ${issue.message}`;
  }
}
