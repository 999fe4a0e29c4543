import type { Span, TopLevel } from './types.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

/**
 * Finds the top-level members `model` and `usage` of a JSON object without parsing the rest: the
 * gateway rewrites only those two, and the rest of an embeddings answer (the vectors, up to
 * ~100 MB) is relayed as it came. The object's structure is checked (braces, brackets, strings,
 * members); the numbers and literals nested inside the values are not, the client's JSON parser
 * sees those as the upstream sent them. Null when the bytes are not one JSON object.
 */
export function scanObject(b: Buffer): TopLevel | null {
  const n = b.length;
  let i = ws(b, 0);
  if (b[i] !== LBRACE) return null;
  const top: TopLevel = { model: [], usage: [], close: -1, empty: true };
  i = ws(b, i + 1);
  if (b[i] === RBRACE) {
    top.close = i;
    return ws(b, i + 1) === n ? top : null;
  }
  for (;;) {
    if (b[i] !== QUOTE) return null;
    const key = i;
    i = endOfString(b, i);
    if (i < 0) return null;
    i = ws(b, i);
    if (b[i] !== COLON) return null;
    const start = ws(b, i + 1);
    i = endOfValue(b, start);
    if (i < 0) return null;
    if (isKey(b, key, 'model')) top.model.push([start, i]);
    else if (isKey(b, key, 'usage')) top.usage.push([start, i]);
    top.empty = false;
    i = ws(b, i);
    if (b[i] === COMMA) {
      i = ws(b, i + 1);
      continue;
    }
    if (b[i] !== RBRACE) return null;
    top.close = i;
    return ws(b, i + 1) === n ? top : null;
  }
}

/** The value of a span parsed, or undefined if it is not JSON. */
export function parseSpan(b: Buffer, [start, end]: Span): unknown {
  try {
    return JSON.parse(b.toString('utf8', start, end));
  } catch {
    return undefined;
  }
}

function ws(b: Uint8Array, i: number): number {
  while (i < b.length) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

function isKey(b: Uint8Array, at: number, name: string): boolean {
  if (b[at + name.length + 1] !== QUOTE) return false;
  for (let k = 0; k < name.length; k++) if (b[at + 1 + k] !== name.charCodeAt(k)) return false;
  return true;
}

/** The index after the string that opens at `i`, or -1. */
function endOfString(b: Buffer, i: number): number {
  for (let j = b.indexOf(QUOTE, i + 1); j !== -1; j = b.indexOf(QUOTE, j + 1)) {
    let escapes = 0;
    while (b[j - 1 - escapes] === BACKSLASH) escapes++;
    if (escapes % 2 === 0) return j + 1;
  }
  return -1;
}

/**
 * The index after the array or object that opens at `i`, or -1. Only quotes, braces and brackets
 * matter; the next of each is found with indexOf (native, memchr speed) and searched again only
 * once passed, so the long runs of digits between them are never looked at byte by byte.
 */
function endOfNested(b: Buffer, i: number): number {
  const n = b.length;
  const next = (byte: number, from: number): number => {
    const at = b.indexOf(byte, from);
    return at === -1 ? n : at;
  };
  let quote = next(QUOTE, i);
  let openB = next(LBRACE, i);
  let closeB = next(RBRACE, i);
  let openA = next(LBRACKET, i);
  let closeA = next(RBRACKET, i);
  let depth = 0;
  for (;;) {
    const at = Math.min(quote, openB, closeB, openA, closeA);
    if (at === n) return -1;
    if (at === quote) {
      const after = endOfString(b, at);
      if (after < 0) return -1;
      quote = next(QUOTE, after);
      if (openB < after) openB = next(LBRACE, after);
      if (closeB < after) closeB = next(RBRACE, after);
      if (openA < after) openA = next(LBRACKET, after);
      if (closeA < after) closeA = next(RBRACKET, after);
      continue;
    }
    if (at === openB || at === openA) {
      depth++;
      if (at === openB) openB = next(LBRACE, at + 1);
      else openA = next(LBRACKET, at + 1);
      continue;
    }
    if (--depth === 0) return at + 1;
    if (at === closeB) closeB = next(RBRACE, at + 1);
    else closeA = next(RBRACKET, at + 1);
  }
}

/** The index after the value that starts at `i`, or -1. */
function endOfValue(b: Buffer, i: number): number {
  const c = b[i];
  if (c === QUOTE) return endOfString(b, i);
  if (c === LBRACE || c === LBRACKET) return endOfNested(b, i);
  // A number or a literal: up to the next delimiter, and it must parse.
  let j = i;
  while (j < b.length) {
    const d = b[j];
    if (d === COMMA || d === RBRACE || d === RBRACKET || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) break;
    j++;
  }
  if (j === i || j - i > 1024) return -1;
  try {
    JSON.parse(b.toString('latin1', i, j));
  } catch {
    return -1;
  }
  return j;
}
