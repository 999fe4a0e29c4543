import { badRequest } from '../errors.js';
import type { JsonObject } from '../providers/types.js';
import { embeddedJsonFault, joinedText, parseBoundedJson } from './json-shape.js';

// Checks the chat-completions parameters the gateway or any upstream relies on, each failure a
// 400 whose `param` names the field (`messages[2].content[0].type`). Parameters it does not know
// pass through untouched: the upstream judges those.

export interface ChatParams {
  model: string;
  stream: boolean;
  /** The client asked for the usage chunk (`stream_options.include_usage`). */
  includeUsage: boolean;
  /** max_completion_tokens ?? max_tokens, or null. */
  maxTokens: number | null;
  /** Choices requested (`n`); the hold covers each. */
  n: number;
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);
const PART_TYPES = new Set(['text', 'image_url', 'input_audio', 'file', 'refusal']);
const RESPONSE_FORMATS = new Set(['text', 'json_object', 'json_schema']);
const TOOL_CHOICES = new Set(['none', 'auto', 'required']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

/** Parses the raw body: 400 when it is not a JSON object. */
export function parseJsonBody(raw: string | undefined): JsonObject {
  if (raw === undefined || raw.length === 0) throw badRequest('The request body is empty; expected a JSON object');
  const v = parseBoundedJson(raw);
  if (!isObj(v)) throw badRequest('The request body must be a JSON object');
  return v;
}

/** The model field alone: needed before the rest, to resolve and authorize. */
export function requireModel(body: JsonObject): string {
  const model = body['model'];
  if (model === undefined || model === null) throw badRequest("Missing required parameter: 'model'", 'model');
  if (typeof model !== 'string' || model === '') throw badRequest("Invalid 'model': expected a non-empty string", 'model');
  return model;
}

export function validateChat(body: JsonObject, model: string): ChatParams {
  const messages = body['messages'];
  if (messages === undefined || messages === null) throw badRequest("Missing required parameter: 'messages'", 'messages');
  if (!Array.isArray(messages)) throw badRequest("Invalid 'messages': expected an array", 'messages');
  if (messages.length === 0) throw badRequest("Invalid 'messages': expected at least one message", 'messages');
  messages.forEach(checkMessage);

  const stream = optBool(body, 'stream') ?? false;
  let includeUsage = false;
  const so = body['stream_options'];
  if (so !== undefined && so !== null) {
    if (!isObj(so)) throw badRequest("Invalid 'stream_options': expected an object", 'stream_options');
    if (!stream) throw badRequest("Invalid 'stream_options': only allowed when 'stream' is true", 'stream_options');
    includeUsage = optBool(so, 'include_usage', 'stream_options.include_usage') ?? false;
  }
  const maxCompletion = optInt(body, 'max_completion_tokens', 1);
  const maxTokens = optInt(body, 'max_tokens', 1);
  optRange(body, 'temperature', 0, 2);
  optRange(body, 'top_p', 0, 1);
  optRange(body, 'presence_penalty', -2, 2);
  optRange(body, 'frequency_penalty', -2, 2);
  const n = optInt(body, 'n', 1, 128) ?? 1;
  optInt(body, 'seed', Number.MIN_SAFE_INTEGER);
  optInt(body, 'top_logprobs', 0, 20);
  optBool(body, 'logprobs');
  optBool(body, 'parallel_tool_calls');
  optString(body, 'user');
  checkStop(body['stop']);
  checkLogitBias(body['logit_bias']);
  checkTools(body['tools']);
  checkToolChoice(body['tool_choice']);
  checkResponseFormat(body['response_format']);
  return { model, stream, includeUsage, maxTokens: maxCompletion ?? maxTokens ?? null, n };
}

function checkMessage(m: unknown, i: number): void {
  const at = `messages[${i}]`;
  if (!isObj(m)) throw badRequest(`Invalid '${at}': expected an object`, at);
  const role = m['role'];
  if (role === undefined) throw badRequest(`Missing required parameter: '${at}.role'`, `${at}.role`);
  if (typeof role !== 'string' || !ROLES.has(role)) {
    throw badRequest(`Invalid '${at}.role': expected one of system, developer, user, assistant, tool`, `${at}.role`);
  }
  const content = m['content'];
  if (content === undefined && role !== 'assistant') throw badRequest(`Missing required parameter: '${at}.content'`, `${at}.content`);
  if (content !== undefined && content !== null && typeof content !== 'string') {
    if (!Array.isArray(content)) throw badRequest(`Invalid '${at}.content': expected a string or an array of content parts`, `${at}.content`);
    content.forEach((p, j) => checkPart(p, `${at}.content[${j}]`));
  }
  if (content === null && role !== 'assistant') throw badRequest(`Invalid '${at}.content': expected a string or an array of content parts`, `${at}.content`);
  if (role === 'tool' && typeof m['tool_call_id'] !== 'string') {
    throw badRequest(`Missing required parameter: '${at}.tool_call_id'`, `${at}.tool_call_id`);
  }
  if (m['name'] !== undefined && typeof m['name'] !== 'string') throw badRequest(`Invalid '${at}.name': expected a string`, `${at}.name`);
  const calls = m['tool_calls'];
  if (calls !== undefined && calls !== null && !Array.isArray(calls)) {
    throw badRequest(`Invalid '${at}.tool_calls': expected an array`, `${at}.tool_calls`);
  }
  // JSON in strings that providers of other protocols parse (providers/anthropic, providers/gemini).
  if (Array.isArray(calls)) {
    calls.forEach((c, j) => {
      if (isObj(c) && isObj(c['function'])) checkEmbeddedJson(c['function']['arguments'], `${at}.tool_calls[${j}].function.arguments`);
    });
  }
  if (isObj(m['function_call'])) checkEmbeddedJson(m['function_call']['arguments'], `${at}.function_call.arguments`);
  if (role === 'tool' || role === 'function') checkEmbeddedJson(Array.isArray(content) ? joinedText(content) : content, `${at}.content`);
}

/** 400 when a string holds JSON past the body's shape bounds (json-shape.ts). */
export function checkEmbeddedJson(v: unknown, param: string): void {
  if (typeof v !== 'string') return;
  const fault = embeddedJsonFault(v);
  if (fault !== null) throw badRequest(`Invalid '${param}': ${fault}`, param);
}

function checkPart(p: unknown, at: string): void {
  if (!isObj(p)) throw badRequest(`Invalid '${at}': expected an object`, at);
  const type = p['type'];
  if (typeof type !== 'string' || !PART_TYPES.has(type)) {
    throw badRequest(`Invalid '${at}.type': expected one of text, image_url, input_audio, file`, `${at}.type`);
  }
  if (type === 'text' && typeof p['text'] !== 'string') throw badRequest(`Invalid '${at}.text': expected a string`, `${at}.text`);
  if (type === 'image_url') {
    const img = p['image_url'];
    if (!isObj(img) || typeof img['url'] !== 'string') throw badRequest(`Invalid '${at}.image_url.url': expected a string`, `${at}.image_url.url`);
  }
}

function checkStop(stop: unknown): void {
  if (stop === undefined || stop === null || typeof stop === 'string') return;
  if (!Array.isArray(stop) || stop.length > 4 || !stop.every((s) => typeof s === 'string')) {
    throw badRequest("Invalid 'stop': expected a string or an array of at most 4 strings", 'stop');
  }
}

function checkLogitBias(lb: unknown): void {
  if (lb === undefined || lb === null) return;
  if (!isObj(lb) || !Object.values(lb).every((v) => typeof v === 'number' && v >= -100 && v <= 100)) {
    throw badRequest("Invalid 'logit_bias': expected an object of token ids to numbers from -100 to 100", 'logit_bias');
  }
}

function checkTools(tools: unknown): void {
  if (tools === undefined || tools === null) return;
  if (!Array.isArray(tools)) throw badRequest("Invalid 'tools': expected an array", 'tools');
  tools.forEach((t, i) => {
    const at = `tools[${i}]`;
    if (!isObj(t)) throw badRequest(`Invalid '${at}': expected an object`, at);
    if (t['type'] !== 'function' && t['type'] !== 'custom') throw badRequest(`Invalid '${at}.type': expected "function"`, `${at}.type`);
    if (t['type'] === 'function') {
      const f = t['function'];
      if (!isObj(f)) throw badRequest(`Missing required parameter: '${at}.function'`, `${at}.function`);
      if (typeof f['name'] !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(f['name'])) {
        throw badRequest(`Invalid '${at}.function.name': expected 1 to 64 letters, digits, underscores or dashes`, `${at}.function.name`);
      }
      if (f['parameters'] !== undefined && !isObj(f['parameters'])) {
        throw badRequest(`Invalid '${at}.function.parameters': expected a JSON Schema object`, `${at}.function.parameters`);
      }
    }
  });
}

function checkToolChoice(tc: unknown): void {
  if (tc === undefined || tc === null) return;
  if (typeof tc === 'string' ? TOOL_CHOICES.has(tc) : isObj(tc) && typeof tc['type'] === 'string') return;
  throw badRequest("Invalid 'tool_choice': expected none, auto, required, or an object naming a tool", 'tool_choice');
}

function checkResponseFormat(rf: unknown): void {
  if (rf === undefined || rf === null) return;
  if (!isObj(rf)) throw badRequest("Invalid 'response_format': expected an object", 'response_format');
  if (typeof rf['type'] !== 'string' || !RESPONSE_FORMATS.has(rf['type'])) {
    throw badRequest("Invalid 'response_format.type': expected one of text, json_object, json_schema", 'response_format.type');
  }
  if (rf['type'] === 'json_schema' && !isObj(rf['json_schema'])) {
    throw badRequest("Missing required parameter: 'response_format.json_schema'", 'response_format.json_schema');
  }
}

function optBool(o: Obj, name: string, param = name): boolean | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`Invalid '${param}': expected a boolean`, param);
  return v;
}

function optString(o: Obj, name: string): void {
  const v = o[name];
  if (v !== undefined && v !== null && typeof v !== 'string') throw badRequest(`Invalid '${name}': expected a string`, name);
}

function optInt(o: Obj, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (!isInt(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? (min === Number.MIN_SAFE_INTEGER ? 'an integer' : `an integer of at least ${min}`) : `an integer from ${min} to ${max}`;
    throw badRequest(`Invalid '${name}': expected ${range}`, name);
  }
  return v;
}

function optRange(o: Obj, name: string, min: number, max: number): void {
  const v = o[name];
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw badRequest(`Invalid '${name}': expected a number from ${min} to ${max}`, name);
  }
}
