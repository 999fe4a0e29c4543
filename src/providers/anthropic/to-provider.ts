import type { ContentPart, JsonObject, Message, ReasoningEffort, ResponseFormat, ToolCall, ToolChoice } from '../../types/chat.js';
import type { ChatCall } from '../contract.js';
import { UpstreamError } from '../upstream-error.js';
import type {
  AnthropicImageBlock,
  AnthropicMessage,
  AnthropicRequest,
  AnthropicRequestBlock,
  AnthropicTextBlock,
  AnthropicToolChoice,
  AnthropicToolUseBlock,
} from './wire.js';

/**
 * Anthropic requires max_tokens. The gateway almost always passes one (the client's, or what the
 * balance affords up to the model's max_output_tokens, SPEC §4); this covers a model configured
 * without max_output_tokens and a client that set none.
 */
export const DEFAULT_MAX_TOKENS = 4096;

/** Thinking budgets per OpenAI reasoning effort; 1024 is Anthropic's smallest budget. */
export const THINKING_BUDGET: Readonly<Record<ReasoningEffort, number>> = { minimal: 1024, low: 1024, medium: 4096, high: 16384 };
const MIN_THINKING_BUDGET = 1024;

/**
 * Parameters of `extra` that Anthropic knows. Anthropic rejects unknown fields, and clients of the
 * OpenAI API send many it does not know (frequency_penalty, logit_bias, …), so only these pass.
 */
const EXTRA_ALLOWED = ['top_k', 'metadata', 'service_tier'] as const;

/**
 * A request whose client spoke Anthropic's Messages API, sent on as it came (thinking blocks and
 * signatures, cache_control, server tools, fields the gateway does not know) but for the
 * deployment's model, the gateway's output cap (the client's max_tokens, or less if that is what
 * the hold covers) and the stream flag; with the client's `anthropic-version` and
 * `anthropic-beta` headers. Null for any other client.
 */
export function passThrough(call: ChatCall, stream: boolean): { body: JsonObject; headers: Record<string, string> } | null {
  const source = call.request.source;
  if (source?.protocol !== 'anthropic-messages') return null;
  const body: JsonObject = { ...source.body, model: call.upstreamModel };
  if (call.maxTokens !== null) body['max_tokens'] = call.maxTokens;
  if (stream) body['stream'] = true;
  else delete body['stream'];
  return { body, headers: source.headers ?? {} };
}

/** The Messages API body for a typed chat request. Throws an UpstreamError (a client fault, 400) for what Anthropic cannot do. */
export function toMessagesBody(call: ChatCall, stream: boolean): AnthropicRequest {
  const req = call.request;
  if (req.n > 1) throw invalid('This model returns one choice per request; n must be 1', 'n');
  const maxTokens = call.maxTokens ?? DEFAULT_MAX_TOKENS;
  const body: AnthropicRequest = { model: call.upstreamModel, max_tokens: maxTokens, messages: toMessages(req.messages) };

  const system = systemBlocks(req.messages, req.responseFormat);
  if (system.length > 0) body.system = system;
  if (req.stop !== undefined && req.stop.length > 0) body.stop_sequences = req.stop;

  for (const key of EXTRA_ALLOWED) {
    const v = req.extra[key];
    if (v !== undefined && v !== null) (body as unknown as JsonObject)[key] = v;
  }
  if (req.user !== undefined) body.metadata = { ...body.metadata, user_id: req.user };

  if (req.tools !== undefined && req.tools.length > 0) {
    body.tools = req.tools.map((t) => ({
      name: t.name,
      ...(t.description !== undefined ? { description: t.description } : {}),
      // Anthropic requires a schema; a tool without parameters takes none.
      input_schema: t.parameters ?? { type: 'object', properties: {} },
    }));
    const choice = toToolChoice(req.toolChoice, req.parallelToolCalls);
    if (choice !== undefined) body.tool_choice = choice;
  }

  // Anthropic refuses thinking together with a forced tool: the client's tool choice wins.
  const forced = req.toolChoice === 'required' || typeof req.toolChoice === 'object';
  const budget = req.reasoningEffort !== undefined && !forced && !unsignedToolTurn(body.messages) ? thinkingBudget(req.reasoningEffort, maxTokens) : null;
  if (budget !== null) {
    body.thinking = { type: 'enabled', budget_tokens: budget };
    // With thinking on, Anthropic refuses temperature and top_k and takes top_p only from 0.95 to 1.
    delete body.top_k;
    if (req.topP !== undefined && req.topP >= 0.95) body.top_p = req.topP;
  } else {
    if (req.temperature !== undefined) body.temperature = req.temperature;
    if (req.topP !== undefined) body.top_p = req.topP;
  }
  if (stream) body.stream = true;
  return body;
}

/**
 * The budget for an effort, kept below max_tokens (Anthropic requires it, and thinking counts
 * toward max_tokens). max_tokens is never raised: it is the output the gateway's hold covers.
 * Null (no thinking) when max_tokens leaves no room for the smallest budget.
 */
export function thinkingBudget(effort: ReasoningEffort, maxTokens: number): number | null {
  const budget = Math.min(THINKING_BUDGET[effort], maxTokens - 1);
  return budget >= MIN_THINKING_BUDGET ? budget : null;
}

/**
 * With thinking on, Anthropic requires the last assistant turn that called tools to start with its
 * signed thinking. OpenAI clients seldom send reasoning back: such a request goes without thinking
 * rather than being refused.
 */
function unsignedToolTurn(messages: AnthropicMessage[]): boolean {
  const last = [...messages].reverse().find((m) => m.role === 'assistant');
  if (last === undefined || !last.content.some((b) => b.type === 'tool_use')) return false;
  const first = last.content[0]?.type;
  return first !== 'thinking' && first !== 'redacted_thinking';
}

export function toToolChoice(choice: ToolChoice | undefined, parallel: boolean | undefined): AnthropicToolChoice | undefined {
  if (choice === 'none') return { type: 'none' };
  const single = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined) return parallel === false ? { type: 'auto', ...single } : undefined;
  if (choice === 'auto') return { type: 'auto', ...single };
  if (choice === 'required') return { type: 'any', ...single };
  return { type: 'tool', name: choice.name, ...single };
}

/** System and developer messages, wherever they stand, then the JSON-mode instruction. */
function systemBlocks(messages: Message[], format: ResponseFormat | undefined): AnthropicTextBlock[] {
  const out: AnthropicTextBlock[] = [];
  for (const m of messages) {
    if (m.role !== 'system' && m.role !== 'developer') continue;
    const text = textOf(m.content);
    if (text !== '') out.push({ type: 'text', text });
  }
  const json = jsonInstruction(format);
  if (json !== null) out.push({ type: 'text', text: json });
  return out;
}

/**
 * Anthropic's Messages API has no JSON mode: the request asks for it in the system prompt (with
 * the schema for json_schema). The answer is not checked against it.
 */
export function jsonInstruction(format: ResponseFormat | undefined): string | null {
  if (format === undefined || format.type === 'text') return null;
  const only = 'Respond with a single valid JSON object and nothing else: no prose, no Markdown code fences.';
  if (format.type === 'json_object') return only;
  const about = format.description !== undefined ? ` (${format.description})` : '';
  return `${only} The object must match the JSON Schema "${format.name}"${about}:\n${JSON.stringify(format.schema)}`;
}

/** User, assistant and tool messages as alternating Anthropic turns. */
export function toMessages(messages: Message[]): AnthropicMessage[] {
  const out: AnthropicMessage[] = [];
  for (const m of messages) {
    const turn = toTurn(m);
    if (turn === null || turn.content.length === 0) continue;
    const last = out[out.length - 1];
    // Anthropic requires alternating roles; tool results of one turn become one user message.
    if (last !== undefined && last.role === turn.role) last.content.push(...turn.content);
    else out.push(turn);
  }
  for (const m of out) if (m.role === 'user') m.content = toolResultsFirst(m.content);
  return out;
}

function toTurn(m: Message): AnthropicMessage | null {
  switch (m.role) {
    case 'system':
    case 'developer':
      return null;
    case 'user':
      return { role: 'user', content: toBlocks(m.content) };
    case 'tool':
      return {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: m.toolCallId, content: typeof m.content === 'string' ? m.content : toBlocks(m.content) }],
      };
    case 'assistant': {
      const content: AnthropicRequestBlock[] = [];
      // Thinking goes first, and only signed: Anthropic refuses thinking it cannot verify.
      for (const r of m.reasoning ?? []) {
        if (r.redacted !== undefined) content.push({ type: 'redacted_thinking', data: r.redacted });
        else if (r.signature !== undefined) content.push({ type: 'thinking', thinking: r.text, signature: r.signature });
      }
      const text = m.content === null ? (m.refusal ?? '') : textOf(m.content);
      if (text !== '') content.push({ type: 'text', text });
      for (const call of m.toolCalls ?? []) content.push(toToolUse(call));
      return { role: 'assistant', content };
    }
  }
}

/**
 * A tool call of the history as a tool_use block. Its arguments may not parse (a cut answer):
 * Anthropic needs an object, so such arguments go as `{}` rather than failing the conversation.
 */
export function toToolUse(call: ToolCall): AnthropicToolUseBlock {
  let input: Record<string, unknown> = {};
  try {
    const v: unknown = JSON.parse(call.arguments);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) input = v as Record<string, unknown>;
  } catch {
    // keep {}
  }
  return { type: 'tool_use', id: call.id, name: call.name, input };
}

/** Anthropic wants a user turn's tool_result blocks before its other content. */
function toolResultsFirst(blocks: AnthropicRequestBlock[]): AnthropicRequestBlock[] {
  if (!blocks.some((b) => b.type === 'tool_result')) return blocks;
  return [...blocks.filter((b) => b.type === 'tool_result'), ...blocks.filter((b) => b.type !== 'tool_result')];
}

function toBlocks(content: string | ContentPart[]): (AnthropicTextBlock | AnthropicImageBlock)[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  const out: (AnthropicTextBlock | AnthropicImageBlock)[] = [];
  for (const p of content) {
    if (p.type === 'text') {
      // Anthropic refuses empty text blocks.
      if (p.text !== '') out.push({ type: 'text', text: p.text });
    } else out.push(toImage(p.url));
  }
  return out;
}

const DATA_URL = /^data:([^;,]+)(?:;[^;,]+)*;base64,(.*)$/s;

export function toImage(url: string): AnthropicImageBlock {
  if (url.startsWith('data:')) {
    const m = DATA_URL.exec(url);
    if (m === null) throw invalid('An image data URL must be base64: data:<media type>;base64,<data>', 'messages');
    return { type: 'image', source: { type: 'base64', media_type: m[1]!, data: m[2]! } };
  }
  if (!/^https?:\/\//i.test(url)) throw invalid('An image URL must be http(s) or a base64 data URL', 'messages');
  return { type: 'image', source: { type: 'url', url } };
}

function textOf(content: string | ContentPart[]): string {
  if (typeof content === 'string') return content;
  return content
    .filter((p): p is Extract<ContentPart, { type: 'text' }> => p.type === 'text')
    .map((p) => p.text)
    .join('\n');
}

/** What this provider refuses itself, shaped as Anthropic's 400 so the client sees it like one of Anthropic's. */
export function invalid(message: string, param?: string): UpstreamError {
  const error = { type: 'invalid_request_error', message, ...(param !== undefined ? { param } : {}) };
  return new UpstreamError('status', message, { status: 400, body: JSON.stringify({ type: 'error', error }) });
}
