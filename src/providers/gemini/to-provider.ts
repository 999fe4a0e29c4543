import { badRequest } from '../../errors.js';
import type { ChatRequest, ContentPart, Message, ReasoningEffort, ResponseFormat, Tool, ToolChoice } from '../../types/chat.js';
import type { ChatCall } from '../contract.js';
import { toGeminiParameters, toGeminiSchema } from './schema.js';
import { decodeCallId, isGeminiCallId } from './tool-ids.js';
import type { GeminiContent, GeminiGenerationConfig, GeminiPart, GeminiRequest, GeminiThinkingConfig, GeminiToolConfig } from './wire.js';

/**
 * Google's documented stand-in signature for function calls Gemini did not make (another provider's
 * turns after a failover, a transcript built by the client): Gemini 3 answers 400 to a step whose
 * first function call has no signature.
 */
export const FOREIGN_CALL_SIGNATURE = 'skip_thought_signature_validator';

/**
 * Thinking budgets per OpenAI reasoning effort (tokens), as Google's own OpenAI-compatible endpoint
 * maps low/medium/high. `minimal` is 512, not 0: every Gemini 2.5 model accepts 512, while 2.5 Pro
 * refuses to turn thinking off.
 */
export const THINKING_BUDGETS: Record<ReasoningEffort, number> = { minimal: 512, low: 1024, medium: 8192, high: 24576 };

/**
 * The smallest budget sent: the lower end that every Gemini 2.5 model accepts (2.5 Pro takes 128
 * to 32768, 2.5 Flash 0 to 24576, 2.5 Flash-Lite 512 to 24576).
 */
export const MIN_THINKING_BUDGET = 512;

/** The generateContent body for a chat call (the same for streamed and not: streaming is in the URL). */
export function toGeminiRequest(call: ChatCall): GeminiRequest {
  const req = call.request;
  const body: GeminiRequest = { contents: toContents(req.messages) };
  const system = systemInstruction(req.messages);
  if (system !== undefined) body.systemInstruction = system;
  if (req.tools !== undefined && req.tools.length > 0) {
    body.tools = [{ functionDeclarations: req.tools.map(toFunctionDeclaration) }];
  }
  if (req.toolChoice !== undefined) body.toolConfig = toToolConfig(req.toolChoice);
  const gen = generationConfig(req, call.maxTokens);
  if (Object.keys(gen).length > 0) body.generationConfig = gen;
  return body;
}

/** System and developer messages, wherever they are in the conversation: Gemini takes one system instruction. */
function systemInstruction(messages: Message[]): GeminiContent | undefined {
  const parts: GeminiPart[] = [];
  messages.forEach((m, i) => {
    if (m.role !== 'system' && m.role !== 'developer') return;
    if (typeof m.content === 'string') {
      parts.push({ text: m.content });
      return;
    }
    for (const p of m.content) {
      if (p.type !== 'text') throw badRequest('A system message may contain only text for this model', `messages[${i}].content`);
      parts.push({ text: p.text });
    }
  });
  return parts.length > 0 ? { parts } : undefined;
}

/** The conversation as user/model turns; consecutive turns of one role are merged (Gemini wants them alternating). */
export function toContents(messages: Message[]): GeminiContent[] {
  const names = new Map<string, string>();
  const out: GeminiContent[] = [];
  const add = (role: 'user' | 'model', parts: GeminiPart[]): void => {
    if (parts.length === 0) return;
    const last = out[out.length - 1];
    if (last !== undefined && last.role === role) last.parts.push(...parts);
    else out.push({ role, parts });
  };
  messages.forEach((m, i) => {
    switch (m.role) {
      case 'system':
      case 'developer':
        return;
      case 'user':
        add('user', contentParts(m.content));
        return;
      case 'assistant': {
        const parts: GeminiPart[] = m.content === null ? [] : contentParts(m.content);
        if (m.refusal !== undefined && m.refusal !== '') parts.push({ text: m.refusal });
        const calls = m.toolCalls ?? [];
        // A step Gemini made carries its signature in its ids (or Gemini gave none and wants none back).
        const foreign = calls.length > 0 && !calls.some((c) => isGeminiCallId(c.id));
        calls.forEach((call, k) => {
          names.set(call.id, call.name);
          const ref = decodeCallId(call.id);
          const part: GeminiPart = { functionCall: { name: call.name, args: parseArgs(call.arguments) } };
          if (ref.geminiId !== undefined) part.functionCall!.id = ref.geminiId;
          if (ref.thoughtSignature !== undefined) part.thoughtSignature = ref.thoughtSignature;
          else if (foreign && k === 0) part.thoughtSignature = FOREIGN_CALL_SIGNATURE;
          parts.push(part);
        });
        add('model', parts);
        return;
      }
      case 'tool': {
        const name = names.get(m.toolCallId);
        if (name === undefined) {
          throw badRequest(`No earlier assistant tool call has the id '${m.toolCallId}'`, `messages[${i}].tool_call_id`);
        }
        const ref = decodeCallId(m.toolCallId);
        const text = typeof m.content === 'string' ? m.content : m.content.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');
        const part: GeminiPart = { functionResponse: { name, response: toolResponse(text) } };
        if (ref.geminiId !== undefined) part.functionResponse!.id = ref.geminiId;
        const images = typeof m.content === 'string' ? [] : contentParts(m.content.filter((p) => p.type === 'image'));
        add('user', [part, ...images]);
        return;
      }
    }
  });
  return out;
}

/** A tool's output: a JSON object as it is, anything else as `{result: text}` (Gemini wants an object). */
function toolResponse(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // not JSON: sent as text
  }
  return { result: text };
}

/** Arguments as the model generated them; text that is not a JSON object is kept under `_raw` rather than lost. */
function parseArgs(text: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  return { _raw: text };
}

/** Message content as parts. Empty texts are left out: Gemini refuses a request with an empty text part. */
export function contentParts(content: string | ContentPart[]): GeminiPart[] {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }];
  return content.flatMap((p) => (p.type === 'image' ? [imagePart(p.url)] : p.text === '' ? [] : [{ text: p.text }]));
}

const DATA_URL = /^data:([^;,]+)(?:;[^,]*)?;base64,(.*)$/s;
const EXTENSIONS: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  heic: 'image/heic',
  heif: 'image/heif',
};

/** A data URL as inline bytes; an http(s) URL as a file reference Gemini fetches itself, its type guessed from the extension. */
export function imagePart(url: string): GeminiPart {
  const m = DATA_URL.exec(url);
  if (m !== null) return { inlineData: { mimeType: m[1]!, data: m[2]! } };
  if (!/^https?:\/\//i.test(url)) throw badRequest('An image URL must be an http(s) URL or a base64 data URL', 'messages');
  let ext = '';
  try {
    ext = /\.([a-z0-9]+)$/i.exec(new URL(url).pathname)?.[1]?.toLowerCase() ?? '';
  } catch {
    throw badRequest('An image URL is not a valid URL', 'messages');
  }
  return { fileData: { fileUri: url, mimeType: EXTENSIONS[ext] ?? 'image/*' } };
}

function toFunctionDeclaration(t: Tool): { name: string; description?: string; parameters?: Record<string, unknown> } {
  const decl: { name: string; description?: string; parameters?: Record<string, unknown> } = { name: t.name };
  if (t.description !== undefined && t.description !== '') decl.description = t.description;
  const params = toGeminiParameters(t.parameters);
  if (params !== undefined) decl.parameters = params;
  return decl;
}

export function toToolConfig(choice: ToolChoice): GeminiToolConfig {
  if (choice === 'auto') return { functionCallingConfig: { mode: 'AUTO' } };
  if (choice === 'none') return { functionCallingConfig: { mode: 'NONE' } };
  if (choice === 'required') return { functionCallingConfig: { mode: 'ANY' } };
  return { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [choice.name] } };
}

function generationConfig(req: ChatRequest, maxTokens: number | null): GeminiGenerationConfig {
  const g: GeminiGenerationConfig = {};
  if (maxTokens !== null) g.maxOutputTokens = maxTokens;
  if (req.temperature !== undefined) g.temperature = req.temperature;
  if (req.topP !== undefined) g.topP = req.topP;
  if (req.stop !== undefined && req.stop.length > 0) g.stopSequences = req.stop;
  if (req.seed !== undefined) g.seed = req.seed;
  if (req.n > 1) g.candidateCount = req.n;
  Object.assign(g, responseFormat(req.responseFormat));
  if (req.reasoningEffort !== undefined) g.thinkingConfig = thinkingConfig(req.reasoningEffort, maxTokens);
  return g;
}

function responseFormat(f: ResponseFormat | undefined): GeminiGenerationConfig {
  if (f === undefined || f.type === 'text') return {};
  if (f.type === 'json_object') return { responseMimeType: 'application/json' };
  return { responseMimeType: 'application/json', responseSchema: toGeminiSchema(f.schema) };
}

/**
 * The effort's budget, kept below maxOutputTokens: Gemini counts thinking in that cap, so a budget
 * at or past it lets the thoughts use the whole cap and the answer comes back empty, cut for
 * length. maxOutputTokens is never raised (it is the output the gateway's hold covers); below
 * MIN_THINKING_BUDGET + 1 the budget stays at that minimum, which some models require.
 */
export function thinkingConfig(effort: ReasoningEffort, maxTokens: number | null = null): GeminiThinkingConfig {
  const budget = maxTokens === null ? THINKING_BUDGETS[effort] : Math.max(MIN_THINKING_BUDGET, Math.min(THINKING_BUDGETS[effort], maxTokens - 1));
  return { thinkingBudget: budget, includeThoughts: true };
}
