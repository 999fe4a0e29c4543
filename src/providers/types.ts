// Types shared by the provider plumbing (raw JSON relay, usage). The provider contract itself is
// contract.ts.
import type { Usage } from '../types/chat.js';

export type { JsonObject } from '../types/chat.js';

/** Usage as a provider reported it (numbers unchecked) or as the gateway billed it. */
export type TokenUsage = Usage;

/** A byte range [start, end) of a body. */
export type Span = readonly [start: number, end: number];

/** Where a JSON object's top-level `model` and `usage` values are in its bytes. */
export interface TopLevel {
  model: Span[];
  usage: Span[];
  /** The index of the closing brace, where a missing `model` goes. */
  close: number;
  empty: boolean;
}

/** A JSON object as the upstream's bytes, holding its share of the buffer budget until `release`. */
export interface RawJson extends TopLevel {
  bytes: Buffer;
  release: () => void;
}

/**
 * An embeddings answer relayed as the upstream sent it, with only `model` and `usage` rewritten:
 * parsing and re-serialising ~100 MB of vectors would hold several copies of them at once.
 */
export interface RawResult {
  raw: RawJson;
  usage: TokenUsage | null;
}
