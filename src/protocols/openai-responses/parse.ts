import { badRequest } from '../../errors.js';
import { joinedText } from '../../gateway/json-shape.js';
import { checkEmbeddedJson } from '../../gateway/validate-chat.js';
import { functionTool } from '../openai-chat/parse.js';
import type {
  ChatRequest,
  ContentPart,
  ImageDetail,
  JsonObject,
  Message,
  ReasoningEffort,
  ResponseFormat,
  Tool,
  ToolChoice,
} from '../../types/chat.js';

// An OpenAI Responses body: checked (400 naming the field, SPEC §3) and read into the gateway's
// typed form. Items and tools the typed form cannot carry (built-in tools, item references, other
// item types) are allowed through validation, since a native deployment takes them as they are;
// `needsNative` names the first one, so routing sends the request only where it can be served.

export interface ResponsesParams {
  stream: boolean;
  /** `max_output_tokens`, or null. */
  maxOutput: number | null;
  previousResponseId: string | null;
  /** The upstream keeps the response (default true): only then is it worth remembering where. */
  store: boolean;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

const ROLES = new Set(['user', 'assistant', 'system', 'developer']);
const PART_TYPES = new Set(['input_text', 'input_image', 'input_file', 'input_audio', 'output_text', 'refusal', 'summary_text', 'reasoning_text']);
const FORMATS = new Set(['text', 'json_object', 'json_schema']);
const TOOL_CHOICES = new Set(['none', 'auto', 'required']);
const EFFORTS = new Set(['none', 'minimal', 'low', 'medium', 'high', 'xhigh']);

export function validateResponses(body: JsonObject): ResponsesParams {
  const input = body['input'];
  if (input === undefined || input === null) {
    if (body['prompt'] === undefined && body['previous_response_id'] === undefined && body['conversation'] === undefined) {
      throw badRequest("Missing required parameter: 'input'", 'input');
    }
  } else if (typeof input !== 'string') {
    if (!Array.isArray(input)) throw badRequest("Invalid 'input': expected a string or an array of input items", 'input');
    input.forEach(checkItem);
  }
  const instructions = body['instructions'];
  if (instructions !== undefined && instructions !== null && typeof instructions !== 'string') {
    throw badRequest("Invalid 'instructions': expected a string", 'instructions');
  }
  const stream = optBool(body, 'stream') ?? false;
  const so = body['stream_options'];
  if (so !== undefined && so !== null) {
    if (!isObj(so)) throw badRequest("Invalid 'stream_options': expected an object", 'stream_options');
    if (!stream) throw badRequest("Invalid 'stream_options': only allowed when 'stream' is true", 'stream_options');
  }
  const maxOutput = optInt(body, 'max_output_tokens', 1);
  optRange(body, 'temperature', 0, 2);
  optRange(body, 'top_p', 0, 1);
  optBool(body, 'parallel_tool_calls');
  const store = optBool(body, 'store') ?? true;
  optBool(body, 'background');
  optString(body, 'user');
  optString(body, 'prompt_cache_key');
  optString(body, 'safety_identifier');
  const prev = optString(body, 'previous_response_id');
  const metadata = body['metadata'];
  if (metadata !== undefined && metadata !== null) {
    if (!isObj(metadata) || !Object.values(metadata).every((v) => typeof v === 'string')) {
      throw badRequest("Invalid 'metadata': expected an object of string values", 'metadata');
    }
  }
  checkTools(body['tools']);
  checkToolChoice(body['tool_choice']);
  checkText(body['text']);
  checkReasoning(body['reasoning']);
  return { stream, maxOutput: maxOutput ?? null, previousResponseId: prev ?? null, store };
}

function checkItem(item: unknown, i: number): void {
  const at = `input[${i}]`;
  if (!isObj(item)) throw badRequest(`Invalid '${at}': expected an object`, at);
  const type = item['type'];
  if (type !== undefined && typeof type !== 'string') throw badRequest(`Invalid '${at}.type': expected a string`, `${at}.type`);
  if (type === undefined || type === 'message') {
    const role = item['role'];
    if (role === undefined) throw badRequest(`Missing required parameter: '${at}.role'`, `${at}.role`);
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw badRequest(`Invalid '${at}.role': expected one of user, assistant, system, developer`, `${at}.role`);
    }
    const content = item['content'];
    if (content === undefined) throw badRequest(`Missing required parameter: '${at}.content'`, `${at}.content`);
    if (typeof content === 'string') return;
    if (!Array.isArray(content)) throw badRequest(`Invalid '${at}.content': expected a string or an array of content parts`, `${at}.content`);
    content.forEach((p, j) => checkPart(p, `${at}.content[${j}]`));
    return;
  }
  // Arguments and outputs are JSON that providers of other protocols parse (providers/anthropic, providers/gemini).
  if (type === 'function_call') {
    for (const f of ['call_id', 'name', 'arguments']) requireString(item, f, at);
    checkEmbeddedJson(item['arguments'], `${at}.arguments`);
  } else if (type === 'function_call_output') {
    requireString(item, 'call_id', at);
    const out = item['output'];
    if (typeof out !== 'string' && !Array.isArray(out)) throw badRequest(`Invalid '${at}.output': expected a string or an array of content parts`, `${at}.output`);
    if (Array.isArray(out)) out.forEach((p, j) => checkPart(p, `${at}.output[${j}]`));
    checkEmbeddedJson(Array.isArray(out) ? joinedText(out) : out, `${at}.output`);
  } else if (type === 'item_reference') {
    requireString(item, 'id', at);
  } else if (type === 'reasoning') {
    const summary = item['summary'];
    if (summary !== undefined && !Array.isArray(summary)) throw badRequest(`Invalid '${at}.summary': expected an array`, `${at}.summary`);
  }
}

function checkPart(p: unknown, at: string): void {
  if (!isObj(p)) throw badRequest(`Invalid '${at}': expected an object`, at);
  const type = p['type'];
  if (typeof type !== 'string' || !PART_TYPES.has(type)) {
    throw badRequest(`Invalid '${at}.type': expected one of input_text, input_image, input_file, output_text, refusal`, `${at}.type`);
  }
  if ((type === 'input_text' || type === 'output_text') && typeof p['text'] !== 'string') throw badRequest(`Invalid '${at}.text': expected a string`, `${at}.text`);
  if (type === 'input_image' && typeof p['image_url'] !== 'string' && typeof p['file_id'] !== 'string') {
    throw badRequest(`Invalid '${at}.image_url': expected a string`, `${at}.image_url`);
  }
}

function checkTools(tools: unknown): void {
  if (tools === undefined || tools === null) return;
  if (!Array.isArray(tools)) throw badRequest("Invalid 'tools': expected an array", 'tools');
  tools.forEach((t, i) => {
    const at = `tools[${i}]`;
    if (!isObj(t)) throw badRequest(`Invalid '${at}': expected an object`, at);
    if (typeof t['type'] !== 'string') throw badRequest(`Missing required parameter: '${at}.type'`, `${at}.type`);
    if (t['type'] !== 'function') return;
    if (typeof t['name'] !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(t['name'])) {
      throw badRequest(`Invalid '${at}.name': expected 1 to 64 letters, digits, underscores or dashes`, `${at}.name`);
    }
    if (t['parameters'] !== undefined && t['parameters'] !== null && !isObj(t['parameters'])) {
      throw badRequest(`Invalid '${at}.parameters': expected a JSON Schema object`, `${at}.parameters`);
    }
    if (t['description'] !== undefined && t['description'] !== null && typeof t['description'] !== 'string') {
      throw badRequest(`Invalid '${at}.description': expected a string`, `${at}.description`);
    }
  });
}

function checkToolChoice(tc: unknown): void {
  if (tc === undefined || tc === null) return;
  if (typeof tc === 'string' ? TOOL_CHOICES.has(tc) : isObj(tc) && typeof tc['type'] === 'string') {
    if (isObj(tc) && tc['type'] === 'function' && typeof tc['name'] !== 'string') throw badRequest("Missing required parameter: 'tool_choice.name'", 'tool_choice.name');
    return;
  }
  throw badRequest("Invalid 'tool_choice': expected none, auto, required, or an object naming a tool", 'tool_choice');
}

function checkText(text: unknown): void {
  if (text === undefined || text === null) return;
  if (!isObj(text)) throw badRequest("Invalid 'text': expected an object", 'text');
  const f = text['format'];
  if (f === undefined || f === null) return;
  if (!isObj(f)) throw badRequest("Invalid 'text.format': expected an object", 'text.format');
  if (typeof f['type'] !== 'string' || !FORMATS.has(f['type'])) {
    throw badRequest("Invalid 'text.format.type': expected one of text, json_object, json_schema", 'text.format.type');
  }
  if (f['type'] === 'json_schema') {
    if (typeof f['name'] !== 'string') throw badRequest("Missing required parameter: 'text.format.name'", 'text.format.name');
    if (!isObj(f['schema'])) throw badRequest("Missing required parameter: 'text.format.schema'", 'text.format.schema');
  }
}

function checkReasoning(r: unknown): void {
  if (r === undefined || r === null) return;
  if (!isObj(r)) throw badRequest("Invalid 'reasoning': expected an object", 'reasoning');
  const e = r['effort'];
  if (e !== undefined && e !== null && (typeof e !== 'string' || !EFFORTS.has(e))) {
    throw badRequest("Invalid 'reasoning.effort': expected one of none, minimal, low, medium, high, xhigh", 'reasoning.effort');
  }
}

function requireString(o: Obj, name: string, at: string): void {
  if (o[name] === undefined) throw badRequest(`Missing required parameter: '${at}.${name}'`, `${at}.${name}`);
  if (typeof o[name] !== 'string') throw badRequest(`Invalid '${at}.${name}': expected a string`, `${at}.${name}`);
}

function optBool(o: Obj, name: string): boolean | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`Invalid '${name}': expected a boolean`, name);
  return v;
}

function optString(o: Obj, name: string): string | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest(`Invalid '${name}': expected a string`, name);
  return v;
}

function optInt(o: Obj, name: string, min: number): number | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw badRequest(`Invalid '${name}': expected an integer of at least ${min}`, name);
  return v;
}

function optRange(o: Obj, name: string, min: number, max: number): void {
  const v = o[name];
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw badRequest(`Invalid '${name}': expected a number from ${min} to ${max}`, name);
}

/**
 * The first part of a (validated) request that only a deployment speaking the Responses API
 * itself can serve: state the gateway does not keep (`previous_response_id`, `item_reference`),
 * and items or tools the typed form has no place for. Null when translation serves it all.
 */
export function needsNative(body: JsonObject): string | null {
  if (typeof body['previous_response_id'] === 'string') return 'previous_response_id';
  if (body['conversation'] !== undefined && body['conversation'] !== null) return 'conversation';
  if (body['prompt'] !== undefined && body['prompt'] !== null) return 'prompt';
  const input = body['input'];
  if (Array.isArray(input)) {
    for (const [i, item] of (input as unknown[]).entries()) {
      const type = isObj(item) ? item['type'] : undefined;
      if (type === undefined || type === 'message' || type === 'function_call' || type === 'function_call_output' || type === 'reasoning') continue;
      return type === 'item_reference' ? `input[${i}].id` : `input[${i}].type`;
    }
  }
  const tools = body['tools'];
  if (Array.isArray(tools)) {
    for (const [i, t] of (tools as unknown[]).entries()) if (isObj(t) && t['type'] !== 'function') return `tools[${i}].type`;
  }
  return null;
}

/**
 * Responses fields that mean the same in chat completions, passed on in `extra`. Others are the
 * Responses API's own (`store`, `include`, `truncation`, …): a translated deployment has no use
 * for them, and a chat upstream could reject them; a native one gets the body as it came.
 */
const SHARED = ['prompt_cache_key', 'service_tier', 'safety_identifier'];

/** A validated Responses body in the typed form. */
export function parseResponsesRequest(body: JsonObject): ChatRequest {
  const messages: Message[] = [];
  const instructions = str(body['instructions']);
  if (instructions !== undefined && instructions !== '') messages.push({ role: 'system', content: instructions });
  const input = body['input'];
  if (typeof input === 'string') messages.push({ role: 'user', content: input });
  else if (Array.isArray(input)) readItems(input as unknown[], messages);
  const extra: JsonObject = {};
  for (const k of SHARED) if (body[k] !== undefined && body[k] !== null) extra[k] = body[k];
  const req: ChatRequest = { model: str(body['model']) ?? '', messages, n: 1, stream: body['stream'] === true, includeUsage: true, extra };
  const tools = toolsOf(body['tools']);
  if (tools !== undefined) req.tools = tools;
  const choice = toolChoice(body['tool_choice']);
  if (choice !== undefined) req.toolChoice = choice;
  if (typeof body['parallel_tool_calls'] === 'boolean') req.parallelToolCalls = body['parallel_tool_calls'];
  const temperature = num(body['temperature']);
  if (temperature !== undefined) req.temperature = temperature;
  const topP = num(body['top_p']);
  if (topP !== undefined) req.topP = topP;
  const user = str(body['user']);
  if (user !== undefined) req.user = user;
  const effort = isObj(body['reasoning']) ? str(body['reasoning']['effort']) : undefined;
  const mapped = effortOf(effort);
  if (mapped !== undefined) req.reasoningEffort = mapped;
  const format = isObj(body['text']) ? formatOf(body['text']['format']) : undefined;
  if (format !== undefined) req.responseFormat = format;
  return req;
}

/** Responses' efforts in the typed form's four: `none` asks for no reasoning (left to the model), `xhigh` is the most there is. */
function effortOf(e: string | undefined): ReasoningEffort | undefined {
  if (e === 'minimal' || e === 'low' || e === 'medium' || e === 'high') return e;
  if (e === 'xhigh') return 'high';
  return undefined;
}

/**
 * Items into chat messages. An assistant's output items (reasoning, message, function calls)
 * that follow each other are one assistant turn, as a chat provider expects them.
 */
function readItems(items: unknown[], out: Message[]): void {
  let turn: Extract<Message, { role: 'assistant' }> | null = null;
  const assistant = (): Extract<Message, { role: 'assistant' }> => {
    if (turn === null) {
      turn = { role: 'assistant', content: null };
      out.push(turn);
    }
    return turn;
  };
  for (const raw of items) {
    if (!isObj(raw)) continue;
    const type = raw['type'] ?? 'message';
    if (type === 'message') {
      const role = raw['role'];
      if (role === 'assistant') {
        const t = assistant();
        const text = textOf(raw['content']);
        // A second message in the same turn (rare) continues its text.
        t.content = typeof t.content === 'string' ? t.content + text : text;
        if (t.toolCalls !== undefined) turn = null;
        continue;
      }
      turn = null;
      const content = contentOf(raw['content']);
      out.push(role === 'system' || role === 'developer' ? { role, content } : { role: 'user', content });
    } else if (type === 'reasoning') {
      const text = reasoningText(raw);
      const t = assistant();
      const enc = str(raw['encrypted_content']);
      if (text !== '' || enc !== undefined) (t.reasoning ??= []).push(enc === undefined ? { text } : { text, signature: enc });
    } else if (type === 'function_call') {
      const t = assistant();
      (t.toolCalls ??= []).push({ id: str(raw['call_id']) ?? '', name: str(raw['name']) ?? '', arguments: str(raw['arguments']) ?? '' });
    } else if (type === 'function_call_output') {
      turn = null;
      const output = raw['output'];
      out.push({ role: 'tool', toolCallId: str(raw['call_id']) ?? '', content: typeof output === 'string' ? output : contentOf(output) });
    }
  }
}

function reasoningText(item: Obj): string {
  let text = '';
  for (const key of ['content', 'summary']) {
    const parts = item[key];
    if (!Array.isArray(parts)) continue;
    for (const p of parts as unknown[]) if (isObj(p) && typeof p['text'] === 'string') text += p['text'];
    // The full reasoning text, when present, already holds what its summary says.
    if (text !== '') break;
  }
  return text;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const p of content as unknown[]) if (isObj(p)) text += str(p['text']) ?? str(p['refusal']) ?? '';
  return text;
}

function contentOf(content: unknown): string | ContentPart[] {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: ContentPart[] = [];
  for (const p of content as unknown[]) {
    if (!isObj(p)) continue;
    const text = str(p['text']);
    if (text !== undefined) {
      parts.push({ type: 'text', text });
    } else if (p['type'] === 'input_image') {
      const url = str(p['image_url']);
      if (url === undefined) continue;
      const detail = str(p['detail']);
      parts.push(detail === 'auto' || detail === 'low' || detail === 'high' ? { type: 'image', url, detail: detail as ImageDetail } : { type: 'image', url });
    }
  }
  return parts;
}

function toolsOf(v: unknown): Tool[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const tools: Tool[] = [];
  for (const t of v as unknown[]) if (isObj(t) && t['type'] === 'function') tools.push(functionTool(t));
  return tools;
}

function toolChoice(v: unknown): ToolChoice | undefined {
  if (v === 'auto' || v === 'none' || v === 'required') return v;
  if (isObj(v) && v['type'] === 'function') {
    const name = str(v['name']);
    if (name !== undefined) return { name };
  }
  return undefined;
}

function formatOf(f: unknown): ResponseFormat | undefined {
  if (!isObj(f)) return undefined;
  if (f['type'] === 'text' || f['type'] === 'json_object') return { type: f['type'] };
  if (f['type'] === 'json_schema') {
    const out: ResponseFormat = { type: 'json_schema', name: str(f['name']) ?? 'response', schema: isObj(f['schema']) ? f['schema'] : {} };
    if (typeof f['strict'] === 'boolean') out.strict = f['strict'];
    const description = str(f['description']);
    if (description !== undefined) out.description = description;
    return out;
  }
  return undefined;
}
