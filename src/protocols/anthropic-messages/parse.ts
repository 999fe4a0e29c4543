import type { ChatRequest, ContentPart, JsonObject, Message, ReasoningEffort, Reasoning, Tool, ToolCall, ToolChoice } from '../../types/chat.js';

// An Anthropic Messages body (already validated: validate.ts) in the gateway's own form, for
// providers that do not speak Anthropic's API. What the typed form cannot carry (documents,
// server tools and their blocks, cache_control, top_k) stays only in `source`, which an
// `anthropic` deployment sends on as it came; for any other provider it is left out. `extra` is
// empty on purpose: a provider passes `extra` through, and Anthropic's parameters mean nothing to
// (and would be refused by) OpenAI-compatible servers.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Headers of Anthropic's API a same-protocol upstream must see as the client sent them. */
export const FORWARDED_HEADERS = ['anthropic-version', 'anthropic-beta'] as const;

/**
 * Thinking budgets → reasoning effort, the inverse of the anthropic provider's
 * THINKING_BUDGET (low 1024, medium 4096, high 16384): a budget maps to the largest effort whose
 * budget it reaches. `adaptive` (the model decides) is medium.
 */
export function effortOf(thinking: unknown): ReasoningEffort | undefined {
  if (!isObj(thinking)) return undefined;
  if (thinking['type'] === 'adaptive') return 'medium';
  if (thinking['type'] !== 'enabled') return undefined;
  const budget = num(thinking['budget_tokens']) ?? 0;
  return budget >= 16384 ? 'high' : budget >= 4096 ? 'medium' : 'low';
}

export function parseMessagesRequest(body: JsonObject, headers: Record<string, string> = {}): ChatRequest {
  const messages: Message[] = [];
  const system = systemText(body['system']);
  if (system !== '') messages.push({ role: 'system', content: system });
  for (const m of Array.isArray(body['messages']) ? (body['messages'] as unknown[]) : []) if (isObj(m)) messages.push(...turn(m));

  const req: ChatRequest = {
    model: str(body['model']) ?? '',
    messages,
    n: 1,
    stream: body['stream'] === true,
    includeUsage: false,
    extra: {},
    source: { protocol: 'anthropic-messages', body, headers },
  };
  const tools = toolsOf(body['tools']);
  if (tools.length > 0) req.tools = tools;
  const tc = body['tool_choice'];
  if (isObj(tc)) {
    const choice = toolChoice(tc);
    if (choice !== undefined) req.toolChoice = choice;
    if (tc['disable_parallel_tool_use'] === true) req.parallelToolCalls = false;
  }
  const temperature = num(body['temperature']);
  if (temperature !== undefined) req.temperature = temperature;
  const topP = num(body['top_p']);
  if (topP !== undefined) req.topP = topP;
  const stops = body['stop_sequences'];
  if (Array.isArray(stops) && stops.length > 0) req.stop = stops.filter((s): s is string => typeof s === 'string');
  const metadata = body['metadata'];
  const user = isObj(metadata) ? str(metadata['user_id']) : undefined;
  if (user !== undefined) req.user = user;
  const effort = effortOf(body['thinking']);
  if (effort !== undefined) req.reasoningEffort = effort;
  return req;
}

/** The client's protocol headers worth forwarding, from the request's headers. */
export function forwardedHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const v = h[name];
    if (typeof v === 'string') out[name] = v;
    else if (Array.isArray(v)) out[name] = v.join(',');
  }
  return out;
}

function systemText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return '';
  return (v as unknown[])
    .filter(isObj)
    .map((b) => str(b['text']) ?? '')
    .filter((t) => t !== '')
    .join('\n');
}

/**
 * One Anthropic turn as typed messages. A user turn's tool_result blocks become tool messages,
 * put first (OpenAI wants them right after the assistant's calls; Anthropic puts them first in
 * the turn for the same reason), then the rest of the turn as one user message.
 */
function turn(m: Obj): Message[] {
  const content = m['content'];
  if (m['role'] === 'assistant') return [assistant(content)];
  if (typeof content === 'string') return [{ role: 'user', content }];
  const out: Message[] = [];
  const parts: ContentPart[] = [];
  for (const b of Array.isArray(content) ? (content as unknown[]) : []) {
    if (!isObj(b)) continue;
    if (b['type'] === 'tool_result') out.push(toolResult(b));
    else {
      const p = part(b);
      if (p !== null) parts.push(p);
    }
  }
  if (parts.length > 0) out.push({ role: 'user', content: parts });
  return out;
}

/** `is_error` has no typed field: the result says so in its first words, which any model reads. */
export const TOOL_ERROR_PREFIX = 'Error: ';

function toolResult(b: Obj): Message {
  const id = str(b['tool_use_id']) ?? '';
  const c = b['content'];
  const failed = b['is_error'] === true;
  let content: string | ContentPart[];
  if (typeof c === 'string' || c === undefined || c === null) content = (failed ? TOOL_ERROR_PREFIX : '') + (str(c) ?? '');
  else {
    const parts = (c as unknown[]).filter(isObj).map(part).filter((p): p is ContentPart => p !== null);
    content = parts.every((p) => p.type === 'text') ? (failed ? TOOL_ERROR_PREFIX : '') + parts.map((p) => (p.type === 'text' ? p.text : '')).join('\n') : failed ? [{ type: 'text', text: TOOL_ERROR_PREFIX.trim() }, ...parts] : parts;
  }
  return { role: 'tool', toolCallId: id, content };
}

/** Text and images; a plain-text document as its text. Other blocks have no typed form. */
function part(b: Obj): ContentPart | null {
  switch (b['type']) {
    case 'text':
      return { type: 'text', text: str(b['text']) ?? '' };
    case 'image': {
      const url = imageUrl(b['source']);
      return url === null ? null : { type: 'image', url };
    }
    case 'document': {
      const s = b['source'];
      return isObj(s) && s['type'] === 'text' && typeof s['data'] === 'string' ? { type: 'text', text: s['data'] } : null;
    }
    default:
      return null;
  }
}

/** base64 sources as data URLs, url sources as they are; file ids (Anthropic's Files API) have no meaning elsewhere. */
export function imageUrl(source: unknown): string | null {
  if (!isObj(source)) return null;
  if (source['type'] === 'base64') return `data:${str(source['media_type']) ?? 'image/png'};base64,${str(source['data']) ?? ''}`;
  if (source['type'] === 'url') return str(source['url']) ?? null;
  return null;
}

function assistant(content: unknown): Message {
  if (typeof content === 'string') return { role: 'assistant', content };
  const texts: string[] = [];
  const reasoning: Reasoning[] = [];
  const calls: ToolCall[] = [];
  for (const b of Array.isArray(content) ? (content as unknown[]) : []) {
    if (!isObj(b)) continue;
    switch (b['type']) {
      case 'text':
        texts.push(str(b['text']) ?? '');
        break;
      case 'thinking': {
        const r: Reasoning = { text: str(b['thinking']) ?? '' };
        const sig = str(b['signature']);
        if (sig !== undefined && sig !== '') r.signature = sig;
        reasoning.push(r);
        break;
      }
      case 'redacted_thinking':
        reasoning.push({ text: '', redacted: str(b['data']) ?? '' });
        break;
      case 'tool_use':
        calls.push({ id: str(b['id']) ?? '', name: str(b['name']) ?? '', arguments: JSON.stringify(b['input'] ?? {}) });
        break;
      default:
      // server_tool_use and its results: the server ran them; nothing another provider could use.
    }
  }
  const out: Extract<Message, { role: 'assistant' }> = { role: 'assistant', content: texts.length > 0 ? texts.join('') : null };
  if (reasoning.length > 0) out.reasoning = reasoning;
  if (calls.length > 0) out.toolCalls = calls;
  return out;
}

/** Custom tools; server tools (`web_search_…`, `bash_…`) run at Anthropic and have no typed form. */
function toolsOf(v: unknown): Tool[] {
  if (!Array.isArray(v)) return [];
  const out: Tool[] = [];
  for (const t of v as unknown[]) {
    if (!isObj(t) || (t['type'] !== undefined && t['type'] !== null && t['type'] !== 'custom')) continue;
    const tool: Tool = { name: str(t['name']) ?? '' };
    const description = str(t['description']);
    if (description !== undefined) tool.description = description;
    if (isObj(t['input_schema'])) tool.parameters = t['input_schema'];
    out.push(tool);
  }
  return out;
}

function toolChoice(tc: Obj): ToolChoice | undefined {
  switch (tc['type']) {
    case 'auto':
      return 'auto';
    case 'any':
      return 'required';
    case 'none':
      return 'none';
    case 'tool': {
      const name = str(tc['name']);
      return name === undefined ? undefined : { name };
    }
    default:
      return undefined;
  }
}
