import type {
  ChatRequest,
  ContentPart,
  ImageDetail,
  JsonObject,
  Message,
  ReasoningEffort,
  ResponseFormat,
  Tool,
  ToolCall,
  ToolChoice,
} from '../../types/chat.js';

// An OpenAI chat-completions body (already validated: gateway/validate-chat.ts) in the gateway's
// own form. What it does not translate stays in `extra`, so a provider that speaks OpenAI's
// format can still pass it through. Lenient by design: anything validation let through is taken
// as the nearest meaning, never thrown on.

/** Body fields this module translates; every other one goes to `extra`. */
const TRANSLATED = new Set([
  'model', 'messages', 'tools', 'tool_choice', 'parallel_tool_calls', 'n', 'temperature', 'top_p', 'stop', 'seed', 'user',
  'reasoning_effort', 'response_format', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'functions', 'function_call',
]);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function parseChatRequest(body: JsonObject): ChatRequest {
  const extra: JsonObject = {};
  for (const [k, v] of Object.entries(body)) if (!TRANSLATED.has(k)) extra[k] = v;
  const req: ChatRequest = {
    model: str(body['model']) ?? '',
    messages: Array.isArray(body['messages']) ? (body['messages'] as unknown[]).filter(isObj).map(message) : [],
    n: num(body['n']) ?? 1,
    stream: body['stream'] === true,
    includeUsage: isObj(body['stream_options']) && body['stream_options']['include_usage'] === true,
    extra,
  };
  const tools = toolsOf(body);
  if (tools !== undefined) req.tools = tools;
  const choice = toolChoice(body['tool_choice'] ?? body['function_call']);
  if (choice !== undefined) req.toolChoice = choice;
  if (typeof body['parallel_tool_calls'] === 'boolean') req.parallelToolCalls = body['parallel_tool_calls'];
  const temperature = num(body['temperature']);
  if (temperature !== undefined) req.temperature = temperature;
  const topP = num(body['top_p']);
  if (topP !== undefined) req.topP = topP;
  const stop = body['stop'];
  if (typeof stop === 'string') req.stop = [stop];
  else if (Array.isArray(stop)) req.stop = stop.filter((s): s is string => typeof s === 'string');
  const seed = num(body['seed']);
  if (seed !== undefined) req.seed = seed;
  const user = str(body['user']);
  if (user !== undefined) req.user = user;
  const effort = str(body['reasoning_effort']);
  if (effort === 'minimal' || effort === 'low' || effort === 'medium' || effort === 'high') req.reasoningEffort = effort as ReasoningEffort;
  const format = responseFormat(body['response_format']);
  if (format !== undefined) req.responseFormat = format;
  return req;
}

function content(v: unknown): string | ContentPart[] {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return '';
  const parts: ContentPart[] = [];
  for (const p of v as unknown[]) {
    if (!isObj(p)) continue;
    if (p['type'] === 'text' || p['type'] === 'refusal') {
      const text = str(p['text']) ?? str(p['refusal']);
      if (text !== undefined) parts.push({ type: 'text', text });
    } else if (p['type'] === 'image_url') {
      const img = p['image_url'];
      const url = isObj(img) ? str(img['url']) : str(img);
      if (url === undefined) continue;
      const detail = isObj(img) ? str(img['detail']) : undefined;
      parts.push(detail === 'auto' || detail === 'low' || detail === 'high' ? { type: 'image', url, detail: detail as ImageDetail } : { type: 'image', url });
    }
  }
  return parts;
}

function message(m: Obj): Message {
  const role = m['role'];
  if (role === 'system' || role === 'developer') return { role, content: content(m['content']) };
  if (role === 'assistant') {
    const out: Extract<Message, { role: 'assistant' }> = { role: 'assistant', content: m['content'] === null || m['content'] === undefined ? null : content(m['content']) };
    const calls = toolCalls(m['tool_calls'] ?? (isObj(m['function_call']) ? [{ id: 'call_0', type: 'function', function: m['function_call'] }] : undefined));
    if (calls.length > 0) out.toolCalls = calls;
    const reasoning = str(m['reasoning_content']) ?? str(m['reasoning']);
    if (reasoning !== undefined && reasoning !== '') out.reasoning = [{ text: reasoning }];
    const refusal = str(m['refusal']);
    if (refusal !== undefined) out.refusal = refusal;
    const name = str(m['name']);
    if (name !== undefined) out.name = name;
    return out;
  }
  if (role === 'tool' || role === 'function') {
    return { role: 'tool', toolCallId: str(m['tool_call_id']) ?? str(m['name']) ?? '', content: content(m['content']) };
  }
  const out: Extract<Message, { role: 'user' }> = { role: 'user', content: content(m['content']) };
  const name = str(m['name']);
  if (name !== undefined) out.name = name;
  return out;
}

function toolCalls(v: unknown): ToolCall[] {
  if (!Array.isArray(v)) return [];
  const out: ToolCall[] = [];
  for (const c of v as unknown[]) {
    if (!isObj(c) || !isObj(c['function'])) continue;
    const f = c['function'];
    const args = f['arguments'];
    out.push({ id: str(c['id']) ?? '', name: str(f['name']) ?? '', arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) });
  }
  return out;
}

function toolsOf(body: JsonObject): Tool[] | undefined {
  const raw = Array.isArray(body['tools'])
    ? (body['tools'] as unknown[]).filter(isObj).map((t) => t['function'])
    : Array.isArray(body['functions'])
      ? (body['functions'] as unknown[])
      : undefined;
  if (raw === undefined) return undefined;
  const tools: Tool[] = [];
  for (const f of raw) if (isObj(f)) tools.push(functionTool(f));
  return tools;
}

/** OpenAI's function definition (`{name, description, parameters, strict}`, as chat's `function` and Responses' flat tools have it) in the typed form. */
export function functionTool(f: Record<string, unknown>): Tool {
  const t: Tool = { name: str(f['name']) ?? '' };
  const description = str(f['description']);
  if (description !== undefined) t.description = description;
  if (isObj(f['parameters'])) t.parameters = f['parameters'];
  if (typeof f['strict'] === 'boolean') t.strict = f['strict'];
  return t;
}

function toolChoice(v: unknown): ToolChoice | undefined {
  if (v === 'auto' || v === 'none' || v === 'required') return v;
  if (isObj(v)) {
    const f = v['function'];
    const name = isObj(f) ? str(f['name']) : str(v['name']);
    if (name !== undefined) return { name };
  }
  return undefined;
}

function responseFormat(v: unknown): ResponseFormat | undefined {
  if (!isObj(v)) return undefined;
  if (v['type'] === 'text' || v['type'] === 'json_object') return { type: v['type'] };
  if (v['type'] === 'json_schema' && isObj(v['json_schema'])) {
    const js = v['json_schema'];
    const out: ResponseFormat = { type: 'json_schema', name: str(js['name']) ?? 'response', schema: isObj(js['schema']) ? js['schema'] : {} };
    if (typeof js['strict'] === 'boolean') out.strict = js['strict'];
    const description = str(js['description']);
    if (description !== undefined) out.description = description;
    return out;
  }
  return undefined;
}
