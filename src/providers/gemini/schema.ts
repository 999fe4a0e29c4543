import type { JsonObject } from '../../types/chat.js';
import type { GeminiSchema } from './wire.js';

// JSON Schema (as OpenAI clients write tool parameters and response formats) → the OpenAPI subset
// Gemini accepts. Gemini answers 400 to keywords it does not know, so everything is rebuilt from
// what it takes; what has a Gemini equivalent is translated, the rest dropped:
//   $ref → the referenced $defs/definitions entry, inlined (a recursive one becomes a plain object)
//   type: [T, "null"] → type T, nullable; several non-null types → anyOf
//   const → a one-value enum; oneOf → anyOf; allOf → its members merged
//   enum or const of non-strings → said in the description (Gemini's enum is for strings only)
//   format: only those Gemini knows per type; `required` limited to declared properties
//   dropped: $schema, $id, additionalProperties, default, examples, patternProperties, not, if/then/else…

const KEEP_AS_IS = ['title', 'description', 'minItems', 'maxItems', 'minLength', 'maxLength', 'pattern', 'minimum', 'maximum', 'minProperties', 'maxProperties', 'propertyOrdering'] as const;
const FORMATS: Record<string, readonly string[]> = {
  string: ['enum', 'date-time'],
  integer: ['int32', 'int64'],
  number: ['float', 'double'],
};
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'array', 'object']);
/** How deep a schema may nest before the rest is cut to "any": refs inlined can grow a schema fast. */
const MAX_DEPTH = 32;

interface Ctx {
  defs: JsonObject;
  /** The refs being inlined on the current path: one seen again is recursion. */
  inlining: Set<string>;
  depth: number;
}

/** A Gemini schema for a JSON Schema; undefined when nothing of it constrains anything (an empty object). */
export function toGeminiSchema(schema: JsonObject): GeminiSchema {
  const defs = { ...asObject(schema['definitions']), ...asObject(schema['$defs']) };
  return convert(schema, { defs, inlining: new Set(), depth: 0 });
}

/** Tool parameters: Gemini refuses an OBJECT without properties, so a tool taking nothing sends no parameters. */
export function toGeminiParameters(schema: JsonObject | undefined): GeminiSchema | undefined {
  if (schema === undefined) return undefined;
  const out = toGeminiSchema(schema);
  const props = out['properties'];
  if (out['type'] === 'object' && (props === undefined || Object.keys(props as JsonObject).length === 0)) return undefined;
  return out;
}

function convert(s: JsonObject, ctx: Ctx): GeminiSchema {
  if (ctx.depth > MAX_DEPTH) return {};
  const ref = s['$ref'];
  if (typeof ref === 'string') return inlineRef(ref, s, ctx);
  const allOf = s['allOf'];
  if (Array.isArray(allOf) && allOf.length > 0) {
    const merged: JsonObject = { ...s };
    delete merged['allOf'];
    return convert(mergeAll([merged, ...allOf.map((m) => resolve(asObject(m), ctx))]), ctx);
  }
  const out: GeminiSchema = {};
  for (const k of KEEP_AS_IS) if (s[k] !== undefined) out[k] = s[k];
  const child = (v: unknown): GeminiSchema => convert(asObject(v), { ...ctx, depth: ctx.depth + 1 });

  let type = s['type'];
  if (Array.isArray(type)) {
    const kinds = type.filter((t): t is string => typeof t === 'string');
    if (kinds.includes('null')) out['nullable'] = true;
    const real = kinds.filter((t) => t !== 'null');
    if (real.length > 1) {
      // Several types: one anyOf branch each, the rest of the schema shared by all.
      const rest: JsonObject = { ...s };
      delete rest['type'];
      out['anyOf'] = real.map((t) => child({ ...rest, type: t }));
      return out;
    }
    type = real[0];
  }
  if (type === 'null') {
    out['nullable'] = true;
    type = undefined;
  }
  if (typeof type === 'string' && TYPES.has(type)) out['type'] = type;
  if (s['nullable'] === true) out['nullable'] = true;

  const fmt = s['format'];
  if (typeof fmt === 'string' && typeof type === 'string' && FORMATS[type]?.includes(fmt)) out['format'] = fmt;

  const values = Array.isArray(s['enum']) ? s['enum'] : 'const' in s ? [s['const']] : undefined;
  if (values !== undefined) {
    const kept = values.filter((v) => v !== null);
    if (values.length !== kept.length) out['nullable'] = true;
    if (kept.length > 0 && kept.every((v) => typeof v === 'string')) {
      out['enum'] = kept;
      if (out['type'] === undefined) out['type'] = 'string';
    } else if (kept.length > 0) {
      // Gemini's enum is for strings only: a number or boolean choice keeps its type and is told in words.
      const list = kept.map((v) => JSON.stringify(v)).join(', ');
      out['description'] = `${typeof out['description'] === 'string' ? `${out['description']} ` : ''}(one of: ${list})`;
    }
  }

  const anyOf = s['anyOf'] ?? s['oneOf'];
  if (Array.isArray(anyOf)) {
    const branches = anyOf.map(asObject);
    const nonNull = branches.filter((b) => b['type'] !== 'null');
    if (nonNull.length !== branches.length) out['nullable'] = true;
    if (nonNull.length === 1) Object.assign(out, child(nonNull[0]), out['nullable'] === true ? { nullable: true } : {});
    else if (nonNull.length > 1) out['anyOf'] = nonNull.map(child);
  }

  if (s['items'] !== undefined && !Array.isArray(s['items'])) out['items'] = child(s['items']);
  else if (Array.isArray(s['prefixItems']) && s['prefixItems'].length > 0) out['items'] = child(s['prefixItems'][0]);

  const props = asObject(s['properties']);
  const names = Object.keys(props);
  if (names.length > 0) {
    const outProps: JsonObject = {};
    for (const name of names) outProps[name] = child(props[name]);
    out['properties'] = outProps;
    if (out['type'] === undefined) out['type'] = 'object';
    const req = Array.isArray(s['required']) ? s['required'].filter((r): r is string => typeof r === 'string' && names.includes(r)) : [];
    if (req.length > 0) out['required'] = req;
  }
  return out;
}

function inlineRef(ref: string, s: JsonObject, ctx: Ctx): GeminiSchema {
  const target = lookup(ref, ctx.defs);
  const siblings: JsonObject = { ...s };
  delete siblings['$ref'];
  if (target === undefined || ctx.inlining.has(ref)) {
    // Unknown or recursive: an object Gemini accepts, with what the schema said about it.
    return { ...convert(siblings, { ...ctx, depth: ctx.depth + 1 }), type: 'object' };
  }
  const inlining = new Set(ctx.inlining).add(ref);
  return convert({ ...target, ...siblings }, { ...ctx, inlining, depth: ctx.depth + 1 });
}

/** A `$ref` resolved, or the schema itself. */
function resolve(s: JsonObject, ctx: Ctx): JsonObject {
  const ref = s['$ref'];
  return typeof ref === 'string' ? (lookup(ref, ctx.defs) ?? {}) : s;
}

function lookup(ref: string, defs: JsonObject): JsonObject | undefined {
  const m = /^#\/(?:\$defs|definitions)\/(.+)$/.exec(ref);
  if (m === null) return undefined;
  const name = m[1]!.replace(/~1/g, '/').replace(/~0/g, '~');
  const v = defs[name];
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

/** allOf members as one schema: properties and required lists united, other keywords first one wins. */
function mergeAll(parts: JsonObject[]): JsonObject {
  const out: JsonObject = {};
  const props: JsonObject = {};
  const required: unknown[] = [];
  for (const p of parts) {
    for (const [k, v] of Object.entries(p)) if (!(k in out) && k !== 'properties' && k !== 'required') out[k] = v;
    Object.assign(props, asObject(p['properties']));
    if (Array.isArray(p['required'])) required.push(...p['required']);
  }
  if (Object.keys(props).length > 0) out['properties'] = props;
  if (required.length > 0) out['required'] = [...new Set(required)];
  return out;
}

function asObject(v: unknown): JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : {};
}
