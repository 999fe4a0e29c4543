import type { ChatResponse, StreamEvent } from '../types/chat.js';

// What a request generated, as the tokenizer counts it when the provider's usage is missing or
// not believable: text, reasoning, refusals and tool calls (name and arguments). One rule for
// whole answers and streams, whatever protocol the client spoke.

/** Everything a whole answer generated, over every choice. */
export function answerOutput(r: ChatResponse): string {
  let text = '';
  for (const c of r.choices) {
    if (c.content !== null) text += c.content;
    for (const x of c.reasoning ?? []) text += x.text;
    if (c.refusal !== undefined) text += c.refusal;
    for (const t of c.toolCalls ?? []) text += t.name + t.arguments;
  }
  return text;
}

/** The output one stream event carries. */
export function eventOutput(ev: StreamEvent): string {
  switch (ev.type) {
    case 'text':
    case 'reasoning':
    case 'refusal':
      return ev.text;
    case 'tool_call_start':
      return ev.name;
    case 'tool_call_delta':
      return ev.arguments;
    default:
      return '';
  }
}
