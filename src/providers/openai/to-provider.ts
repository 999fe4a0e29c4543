import type { ChatRequest, ContentPart, JsonObject, Message, ResponseFormat, Tool, ToolChoice } from '../../types/chat.js';
import type { ChatCall } from '../contract.js';

/**
 * The upstream body. A client that spoke OpenAI chat completions has its body sent as it came
 * (every parameter, content part and extension), with the deployment's model name, the
 * gateway's output cap, and a request for usage on streams; any other client's request is
 * written from the typed form.
 */
export function toChatBody(call: ChatCall, stream: boolean): JsonObject {
  const source = call.request.source;
  const body: JsonObject = source?.protocol === 'openai-chat' ? { ...source.body } : fromTyped(call.request);
  body['model'] = call.upstreamModel;
  if (call.maxTokens !== null) {
    // Reasoning models take only max_completion_tokens; whichever the client used is the one sent
    // (both, when it sent both: a server that reads only one must still see the gateway's cap).
    const both = 'max_completion_tokens' in body && 'max_tokens' in body;
    if ('max_completion_tokens' in body) body['max_completion_tokens'] = call.maxTokens;
    if (both || !('max_completion_tokens' in body)) body['max_tokens'] = call.maxTokens;
  }
  if (stream) {
    const opts = body['stream_options'];
    body['stream'] = true;
    body['stream_options'] = { ...(opts !== null && typeof opts === 'object' ? (opts as JsonObject) : {}), include_usage: true };
  } else {
    delete body['stream'];
    delete body['stream_options'];
  }
  return body;
}

/** The typed form in OpenAI's words; `extra` passes through. */
export function fromTyped(r: ChatRequest): JsonObject {
  const body: JsonObject = { ...r.extra, messages: r.messages.map(message) };
  if (r.n !== 1) body['n'] = r.n;
  if (r.tools !== undefined) body['tools'] = r.tools.map(tool);
  if (r.toolChoice !== undefined) body['tool_choice'] = toolChoice(r.toolChoice);
  if (r.parallelToolCalls !== undefined) body['parallel_tool_calls'] = r.parallelToolCalls;
  if (r.temperature !== undefined) body['temperature'] = r.temperature;
  if (r.topP !== undefined) body['top_p'] = r.topP;
  if (r.stop !== undefined) body['stop'] = r.stop;
  if (r.seed !== undefined) body['seed'] = r.seed;
  if (r.user !== undefined) body['user'] = r.user;
  if (r.reasoningEffort !== undefined) body['reasoning_effort'] = r.reasoningEffort;
  if (r.responseFormat !== undefined) body['response_format'] = responseFormat(r.responseFormat);
  return body;
}

function content(c: string | ContentPart[]): string | JsonObject[] {
  if (typeof c === 'string') return c;
  return c.map((p) =>
    p.type === 'text' ? { type: 'text', text: p.text } : { type: 'image_url', image_url: p.detail === undefined ? { url: p.url } : { url: p.url, detail: p.detail } },
  );
}

/** Text only, for the roles OpenAI takes no images in. */
function text(c: string | ContentPart[] | null): string | null {
  if (c === null || typeof c === 'string') return c;
  return c.map((p) => (p.type === 'text' ? p.text : '')).join('');
}

function message(m: Message): JsonObject {
  switch (m.role) {
    case 'system':
    case 'developer':
      return { role: m.role, content: text(m.content) };
    case 'user':
      return m.name === undefined ? { role: 'user', content: content(m.content) } : { role: 'user', content: content(m.content), name: m.name };
    case 'tool':
      return { role: 'tool', tool_call_id: m.toolCallId, content: text(m.content) };
    case 'assistant': {
      const out: JsonObject = { role: 'assistant', content: text(m.content) };
      if (m.toolCalls !== undefined && m.toolCalls.length > 0) {
        out['tool_calls'] = m.toolCalls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
      }
      if (m.reasoning !== undefined && m.reasoning.length > 0) out['reasoning_content'] = m.reasoning.map((r) => r.text).join('');
      if (m.refusal !== undefined) out['refusal'] = m.refusal;
      if (m.name !== undefined) out['name'] = m.name;
      return out;
    }
  }
}

function tool(t: Tool): JsonObject {
  const f: JsonObject = { name: t.name };
  if (t.description !== undefined) f['description'] = t.description;
  if (t.parameters !== undefined) f['parameters'] = t.parameters;
  if (t.strict !== undefined) f['strict'] = t.strict;
  return { type: 'function', function: f };
}

function toolChoice(c: ToolChoice): unknown {
  return typeof c === 'string' ? c : { type: 'function', function: { name: c.name } };
}

function responseFormat(f: ResponseFormat): JsonObject {
  if (f.type !== 'json_schema') return { type: f.type };
  const js: JsonObject = { name: f.name, schema: f.schema };
  if (f.strict !== undefined) js['strict'] = f.strict;
  if (f.description !== undefined) js['description'] = f.description;
  return { type: 'json_schema', json_schema: js };
}
