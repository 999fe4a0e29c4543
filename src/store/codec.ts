import type { Limits } from './types.js';

// Limits and model lists are stored as JSON text in both stores; bigint amounts as strings.

export function encodeLimits(limits: Limits | null | undefined): string | null {
  if (limits === null || limits === undefined) return null;
  return JSON.stringify(limits, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

export function decodeLimits(text: string | null): Limits | null {
  if (text === null || text === '') return null;
  const raw = JSON.parse(text) as Record<string, unknown>;
  const out: Limits = {};
  if (typeof raw['rpm'] === 'number') out.rpm = raw['rpm'];
  if (typeof raw['tpm'] === 'number') out.tpm = raw['tpm'];
  if (typeof raw['concurrency'] === 'number') out.concurrency = raw['concurrency'];
  if (typeof raw['daily_spend'] === 'string') out.daily_spend = BigInt(raw['daily_spend']);
  return out;
}

export function encodeModels(models: string[] | null | undefined): string | null {
  return models === null || models === undefined ? null : JSON.stringify(models);
}

export function decodeModels(text: string | null): string[] | null {
  return text === null || text === '' ? null : (JSON.parse(text) as string[]);
}

/** Usage cursors are opaque to clients: base64url of the last row's sequence number. */
export function encodeCursor(seq: bigint | number): string {
  return Buffer.from(String(seq)).toString('base64url');
}

export function decodeCursor(cursor: string): bigint | null {
  const text = Buffer.from(cursor, 'base64url').toString();
  return /^\d{1,19}$/.test(text) ? BigInt(text) : null;
}
