import { badRequest } from '../../errors.js';
import { embeddedJsonFault, joinedText } from '../../gateway/json-shape.js';
import type { JsonObject } from '../../types/chat.js';

// Checks an Anthropic Messages body the way Anthropic's API does where the gateway relies on it
// (the hold needs max_tokens; translation needs well-formed blocks). Each failure is a 400 whose
// message starts with the field in Anthropic's notation (`messages.2.content.0.source`), as
// Anthropic's own errors do. Block and tool types the gateway does not know pass: Anthropic adds
// them often (documents, server tools), and a passed-through request lets the upstream judge them.

export interface MessagesParams {
  stream: boolean;
  /** The client's output cap: Anthropic requires one (null only for count_tokens, which has none). */
  maxTokens: number | null;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

const TOOL_CHOICES = new Set(['auto', 'any', 'tool', 'none']);
const THINKING = new Set(['enabled', 'disabled', 'adaptive']);

function fail(param: string, what: string): never {
  throw badRequest(`${param}: ${what}`, param);
}

/** The whole body; `countOnly` for count_tokens, which takes no max_tokens and no stream. */
export function validateMessages(body: JsonObject, countOnly = false): MessagesParams {
  const messages = body['messages'];
  if (messages === undefined || messages === null) fail('messages', 'Field required');
  if (!Array.isArray(messages)) fail('messages', 'Input should be a valid list');
  if (messages.length === 0) fail('messages', 'at least one message is required');
  messages.forEach(checkMessage);

  let maxTokens: number | null = null;
  if (!countOnly) {
    const max = body['max_tokens'];
    if (max === undefined || max === null) fail('max_tokens', 'Field required');
    if (!isInt(max) || max < 1) fail('max_tokens', 'Input should be an integer of at least 1');
    maxTokens = max;
  }
  const stream = body['stream'];
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') fail('stream', 'Input should be a valid boolean');
  checkSystem(body['system']);
  optRange(body, 'temperature', 0, 1);
  optRange(body, 'top_p', 0, 1);
  const topK = body['top_k'];
  if (topK !== undefined && topK !== null && (!isInt(topK) || topK < 0)) fail('top_k', 'Input should be a non-negative integer');
  const stops = body['stop_sequences'];
  if (stops !== undefined && stops !== null && (!Array.isArray(stops) || !stops.every((s) => typeof s === 'string'))) {
    fail('stop_sequences', 'Input should be a list of strings');
  }
  const metadata = body['metadata'];
  if (metadata !== undefined && metadata !== null) {
    if (!isObj(metadata)) fail('metadata', 'Input should be a valid dictionary');
    const user = metadata['user_id'];
    if (user !== undefined && user !== null && typeof user !== 'string') fail('metadata.user_id', 'Input should be a valid string');
  }
  checkTools(body['tools']);
  checkToolChoice(body['tool_choice']);
  checkThinking(body['thinking'], maxTokens);
  return { stream: stream === true, maxTokens };
}

function checkSystem(system: unknown): void {
  if (system === undefined || system === null || typeof system === 'string') return;
  if (!Array.isArray(system)) fail('system', 'Input should be a valid string or a list of text blocks');
  system.forEach((b, i) => {
    if (!isObj(b) || b['type'] !== 'text') fail(`system.${i}.type`, "Input should be 'text'");
    if (typeof b['text'] !== 'string') fail(`system.${i}.text`, 'Input should be a valid string');
  });
}

function checkMessage(m: unknown, i: number): void {
  const at = `messages.${i}`;
  if (!isObj(m)) fail(at, 'Input should be a valid dictionary');
  const role = m['role'];
  if (role === undefined) fail(`${at}.role`, 'Field required');
  if (role !== 'user' && role !== 'assistant') fail(`${at}.role`, "Input should be 'user' or 'assistant'");
  const content = m['content'];
  if (content === undefined || content === null) fail(`${at}.content`, 'Field required');
  if (typeof content === 'string') return;
  if (!Array.isArray(content)) fail(`${at}.content`, 'Input should be a valid string or a list of content blocks');
  content.forEach((b, j) => checkBlock(b, `${at}.content.${j}`));
}

function checkBlock(b: unknown, at: string): void {
  if (!isObj(b)) fail(at, 'Input should be a valid dictionary');
  const type = b['type'];
  if (typeof type !== 'string' || type === '') fail(`${at}.type`, 'Field required');
  switch (type) {
    case 'text':
      if (typeof b['text'] !== 'string') fail(`${at}.text`, 'Input should be a valid string');
      return;
    case 'image':
      return checkImage(b['source'], `${at}.source`);
    case 'tool_use':
      if (typeof b['id'] !== 'string') fail(`${at}.id`, 'Input should be a valid string');
      if (typeof b['name'] !== 'string') fail(`${at}.name`, 'Input should be a valid string');
      if (!isObj(b['input'])) fail(`${at}.input`, 'Input should be a valid dictionary');
      return;
    case 'tool_result': {
      if (typeof b['tool_use_id'] !== 'string') fail(`${at}.tool_use_id`, 'Input should be a valid string');
      const c = b['content'];
      if (c !== undefined && c !== null && typeof c !== 'string') {
        if (!Array.isArray(c)) fail(`${at}.content`, 'Input should be a valid string or a list of content blocks');
        c.forEach((x, k) => checkBlock(x, `${at}.content.${k}`));
      }
      // A provider of another protocol may parse the result as JSON (providers/gemini), its text
      // blocks joined as parse.ts joins them (by lines), or with nothing between them (Gemini's
      // converter, when an image sits among them).
      const fault = typeof c === 'string' ? embeddedJsonFault(c) : Array.isArray(c) ? (embeddedJsonFault(joinedText(c, '\n')) ?? embeddedJsonFault(joinedText(c))) : null;
      if (fault !== null) fail(`${at}.content`, fault);
      const isError = b['is_error'];
      if (isError !== undefined && isError !== null && typeof isError !== 'boolean') fail(`${at}.is_error`, 'Input should be a valid boolean');
      return;
    }
    case 'thinking':
      if (typeof b['thinking'] !== 'string') fail(`${at}.thinking`, 'Input should be a valid string');
      if (typeof b['signature'] !== 'string') fail(`${at}.signature`, 'Input should be a valid string');
      return;
    case 'redacted_thinking':
      if (typeof b['data'] !== 'string') fail(`${at}.data`, 'Input should be a valid string');
      return;
    default:
    // document, search_result, server tool blocks and types yet to come: the upstream judges them.
  }
}

function checkImage(source: unknown, at: string): void {
  if (!isObj(source)) fail(at, 'Field required');
  if (source['type'] === 'base64') {
    if (typeof source['media_type'] !== 'string') fail(`${at}.media_type`, 'Input should be a valid string');
    if (typeof source['data'] !== 'string') fail(`${at}.data`, 'Input should be a valid string');
  } else if (source['type'] === 'url') {
    if (typeof source['url'] !== 'string') fail(`${at}.url`, 'Input should be a valid string');
  } else if (source['type'] !== 'file') {
    fail(`${at}.type`, "Input should be 'base64', 'url' or 'file'");
  }
}

function checkTools(tools: unknown): void {
  if (tools === undefined || tools === null) return;
  if (!Array.isArray(tools)) fail('tools', 'Input should be a valid list');
  tools.forEach((t, i) => {
    const at = `tools.${i}`;
    if (!isObj(t)) fail(at, 'Input should be a valid dictionary');
    if (typeof t['name'] !== 'string' || t['name'] === '') fail(`${at}.name`, 'Field required');
    // A custom tool (no type, or `custom`) needs its schema; server tools (`web_search_…`) have none.
    const type = t['type'];
    if (type === undefined || type === null || type === 'custom') {
      if (!isObj(t['input_schema'])) fail(`${at}.input_schema`, 'Field required');
    } else if (typeof type !== 'string') {
      fail(`${at}.type`, 'Input should be a valid string');
    }
  });
}

function checkToolChoice(tc: unknown): void {
  if (tc === undefined || tc === null) return;
  if (!isObj(tc) || typeof tc['type'] !== 'string' || !TOOL_CHOICES.has(tc['type'])) {
    fail('tool_choice', "Input should be an object with type 'auto', 'any', 'tool' or 'none'");
  }
  if (tc['type'] === 'tool' && typeof tc['name'] !== 'string') fail('tool_choice.name', 'Field required');
  const dp = tc['disable_parallel_tool_use'];
  if (dp !== undefined && dp !== null && typeof dp !== 'boolean') fail('tool_choice.disable_parallel_tool_use', 'Input should be a valid boolean');
}

function checkThinking(th: unknown, maxTokens: number | null): void {
  if (th === undefined || th === null) return;
  if (!isObj(th) || typeof th['type'] !== 'string' || !THINKING.has(th['type'])) {
    fail('thinking', "Input should be an object with type 'enabled', 'disabled' or 'adaptive'");
  }
  if (th['type'] !== 'enabled') return;
  const budget = th['budget_tokens'];
  if (!isInt(budget) || budget < 1024) fail('thinking.budget_tokens', 'Input should be an integer of at least 1024');
  if (maxTokens !== null && budget >= maxTokens) fail('max_tokens', 'max_tokens must be greater than thinking.budget_tokens');
}

function optRange(o: Obj, name: string, min: number, max: number): void {
  const v = o[name];
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(name, `Input should be a number from ${min} to ${max}`);
}
