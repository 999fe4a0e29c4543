import { badRequest } from '../errors.js';

// Bounds on the shape of a request body, checked on the raw text before JSON.parse runs.
// Nesting deeper than a few dozen levels overflows the stack of the recursive code that handles
// the parsed body later (JSON.stringify in the estimate and the provider), and tens of
// thousands of distinct object keys cost V8 about a microsecond each in every parse, spread and
// stringify (a million keys blocked the event loop for seconds). The scan is one pass without
// recursion; on the hot path it allocates nothing.

/** Deepest nesting of arrays and objects a body may have (the root counts as 1). */
export const MAX_JSON_DEPTH = 64;
/** Object members in the whole body, at any depth. */
export const MAX_JSON_MEMBERS = 100_000;
/** Segments of the path a depth error names as its `param`. */
const PARAM_SEGMENTS = 6;

export type JsonShapeFault = { kind: 'depth'; path: (string | number)[] } | { kind: 'members' };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

// Per open container, indexed by depth: whether it is an array, the index of its current
// element, and where the key of its current member starts and ends in the text. Reused across
// calls (the scan is synchronous), grown when a caller asks for a deeper bound.
let isArray = new Uint8Array(MAX_JSON_DEPTH + 2);
let index = new Int32Array(MAX_JSON_DEPTH + 2);
let keyStart = new Int32Array(MAX_JSON_DEPTH + 2);
let keyEnd = new Int32Array(MAX_JSON_DEPTH + 2);

/**
 * The first way `text` goes past the bounds, or null. For a depth fault, `path` leads to the
 * container that opens one level too deep. Text that is not valid JSON gets an answer too (never
 * a throw); JSON.parse judges its validity afterwards.
 */
export function jsonShapeFault(text: string, maxDepth = MAX_JSON_DEPTH, maxMembers = MAX_JSON_MEMBERS): JsonShapeFault | null {
  if (isArray.length < maxDepth + 2 && Number.isFinite(maxDepth)) {
    isArray = new Uint8Array(maxDepth + 2);
    index = new Int32Array(maxDepth + 2);
    keyStart = new Int32Array(maxDepth + 2);
    keyEnd = new Int32Array(maxDepth + 2);
  }
  // Locals: V8 keeps them in registers, module-level `let`s it reloads on every access.
  const arrays = isArray;
  const indexes = index;
  const starts = keyStart;
  const ends = keyEnd;
  const n = text.length;
  let depth = 0;
  let members = 0;
  let lastStringStart = -1;
  let lastStringEnd = -1;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    // Digits, '-' and '.' (all between ',' and ':'): most of a body of token arrays.
    if (c > COMMA && c < COLON) continue;
    if (c === QUOTE) {
      // Jump to the closing quote: one preceded by an even run of backslashes.
      let j = i;
      for (;;) {
        j = text.indexOf('"', j + 1);
        if (j === -1) return null;
        let k = j - 1;
        while (k > i && text.charCodeAt(k) === BACKSLASH) k--;
        if ((j - 1 - k) % 2 === 0) break;
      }
      lastStringStart = i;
      lastStringEnd = j;
      i = j;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++;
      if (depth > maxDepth) return { kind: 'depth', path: pathTo(text, depth) };
      arrays[depth] = c === OPEN_ARRAY ? 1 : 0;
      indexes[depth] = 0;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth === 0) return null;
      depth--;
    } else if (c === COMMA) {
      indexes[depth]++;
    } else if (c === COLON) {
      if (++members > maxMembers) return { kind: 'members' };
      starts[depth] = lastStringStart;
      ends[depth] = lastStringEnd;
    }
  }
  return null;
}

/**
 * What goes past the bounds in JSON carried inside a string field (tool-call arguments, a tool's
 * output), as the end of a 400's message, or null. A provider that does not speak the client's
 * protocol parses such strings into its own request (Anthropic's `input`, Gemini's `args` and
 * `response`): JSON.parse copes with any depth, but the JSON.stringify that sends the request
 * overflows the stack, as for a deep body. Cheap for the usual string: only one that opens with
 * `{` or `[` and is long enough to open and close more containers than the bound is scanned.
 * Text that nests too deep but is not JSON is no fault: the converters send it on as text.
 */
export function embeddedJsonFault(text: string): string | null {
  if (text.length < 2 * (MAX_JSON_DEPTH + 1)) return null;
  let i = 0;
  // JSON's whitespace: space, tab, newline, carriage return.
  while (i < text.length && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09 || text.charCodeAt(i) === 0x0a || text.charCodeAt(i) === 0x0d)) i++;
  const first = text.charCodeAt(i);
  if (first !== OPEN_OBJECT && first !== OPEN_ARRAY) return null;
  const fault = jsonShapeFault(text);
  if (fault === null) return null;
  // A parse of this many members would itself block the event loop: refused unparsed.
  if (fault.kind === 'members') return `its JSON has more than ${MAX_JSON_MEMBERS} object members`;
  try {
    JSON.parse(text);
  } catch {
    return null;
  }
  return `its JSON nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`;
}

/**
 * The text parts (`text`, or `refusal`) of a content array joined: the one string a converter
 * makes of a tool's output that came as parts, and parses when it is JSON.
 */
export function joinedText(parts: readonly unknown[], separator = ''): string {
  let text = '';
  let first = true;
  for (const p of parts) {
    if (p === null || typeof p !== 'object') continue;
    const o = p as Record<string, unknown>;
    const t = typeof o['text'] === 'string' ? o['text'] : typeof o['refusal'] === 'string' ? o['refusal'] : undefined;
    if (t === undefined) continue;
    text += first ? t : separator + t;
    first = false;
  }
  return text;
}

/** The path from the root to the container opened at `depth` (only on the error path). */
function pathTo(text: string, depth: number): (string | number)[] {
  const path: (string | number)[] = [];
  for (let d = 1; d < depth; d++) {
    if (isArray[d] === 1) {
      path.push(index[d]!);
      continue;
    }
    const raw = text.slice(keyStart[d]!, keyEnd[d]! + 1);
    let key: string;
    try {
      key = JSON.parse(raw) as string;
    } catch {
      key = raw.slice(1, -1);
    }
    path.push(key);
  }
  return path;
}

/** `tools[0].function.parameters`. */
export function formatPath(path: readonly (string | number)[]): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s === '' ? seg : `.${seg}`;
  return s;
}

/** JSON.parse for request bodies: 400 for text that is not JSON or goes past the shape bounds. */
export function parseBoundedJson(text: string): unknown {
  const fault = jsonShapeFault(text);
  if (fault !== null) {
    if (fault.kind === 'members') {
      throw badRequest(`The request body has more than ${MAX_JSON_MEMBERS} object members`);
    }
    const param = fault.path.length === 0 ? null : formatPath(fault.path.slice(0, PARAM_SEGMENTS));
    throw badRequest(`The request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels${param === null ? '' : ` (in '${param}')`}`, param);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badRequest('The request body is not valid JSON');
  }
}
