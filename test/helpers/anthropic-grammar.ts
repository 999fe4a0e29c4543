// Anthropic's streaming grammar as its reference states it, checked event by event: one
// message_start first (carrying input token counts), then content blocks one after another with
// indices 0, 1, 2… (each started, given deltas of its own kind, and stopped before the next
// starts), then exactly one message_delta with a stop_reason and usage, then message_stop, last.
// `ping` may come anywhere after message_start. Text and thinking come before tool use: once a
// `tool_use` block started, only tool_use blocks follow (server tools, whose results the model
// reads, may be followed by text). Throws naming the first event that breaks a rule.
import assert from 'node:assert/strict';

type Ev = Record<string, unknown>;

const DELTA_OF: Record<string, string[]> = {
  text: ['text_delta', 'citations_delta'],
  thinking: ['thinking_delta', 'signature_delta'],
  tool_use: ['input_json_delta'],
  server_tool_use: ['input_json_delta'],
};

export function assertGrammar(events: readonly Ev[]): void {
  assert.ok(events.length >= 3, 'a stream has at least message_start, message_delta and message_stop');
  const at = (i: number): string => `event ${i} (${String(events[i]!['type'])})`;
  assert.equal(events[0]!['type'], 'message_start', 'the first event is message_start');
  const message = events[0]!['message'] as { usage?: { input_tokens?: unknown }; content?: unknown[] };
  assert.equal(typeof message.usage?.input_tokens, 'number', 'message_start carries input_tokens');
  assert.deepEqual(message.content, [], 'message_start has no content yet');
  let next = 0;
  let open: { index: number; type: string } | null = null;
  let deltaSeen = false;
  let toolUseSeen = false;
  for (let i = 1; i < events.length; i++) {
    const ev = events[i]!;
    switch (ev['type']) {
      case 'ping':
        break;
      case 'message_start':
        assert.fail(`${at(i)}: a second message_start`);
        break;
      case 'content_block_start': {
        assert.ok(!deltaSeen, `${at(i)}: a block after message_delta`);
        assert.ok(open === null, `${at(i)}: block ${String(open === null ? '' : open.index)} was not stopped before the next started`);
        assert.equal(ev['index'], next, `${at(i)}: block indices are contiguous from 0`);
        const block = ev['content_block'] as { type: string };
        assert.ok(!(toolUseSeen && (block.type === 'text' || block.type === 'thinking' || block.type === 'redacted_thinking')), `${at(i)}: a ${block.type} block after tool use`);
        if (block.type === 'tool_use') toolUseSeen = true;
        open = { index: next++, type: block.type };
        break;
      }
      case 'content_block_delta': {
        assert.ok(open !== null && ev['index'] === open.index, `${at(i)}: a delta for block ${String(ev['index'])}, which is not open`);
        const kind = (ev['delta'] as { type: string }).type;
        const allowed = DELTA_OF[open.type];
        if (allowed !== undefined) assert.ok(allowed.includes(kind), `${at(i)}: a ${kind} in a ${open.type} block`);
        break;
      }
      case 'content_block_stop':
        assert.ok(open !== null && ev['index'] === open.index, `${at(i)}: stops block ${String(ev['index'])}, which is not open`);
        open = null;
        break;
      case 'message_delta': {
        assert.ok(open === null, `${at(i)}: message_delta while block ${String(open === null ? '' : open.index)} is open`);
        assert.ok(!deltaSeen, `${at(i)}: a second message_delta`);
        deltaSeen = true;
        const d = ev['delta'] as { stop_reason?: unknown };
        assert.equal(typeof d.stop_reason, 'string', `${at(i)}: message_delta carries a stop_reason`);
        const u = ev['usage'] as { output_tokens?: unknown } | undefined;
        assert.equal(typeof u?.output_tokens, 'number', `${at(i)}: message_delta carries usage`);
        break;
      }
      case 'message_stop':
        assert.ok(deltaSeen, `${at(i)}: message_stop before message_delta`);
        assert.equal(i, events.length - 1, `${at(i)}: message_stop is the last event`);
        break;
      default:
        assert.fail(`${at(i)}: not an event of the grammar`);
    }
  }
  assert.equal(events[events.length - 1]!['type'], 'message_stop', 'the last event is message_stop');
}

/** Parses SSE text into `[event name, data]` pairs, asserting each event's name repeats its data's `type`. */
export function parseFrames(text: string): Ev[] {
  const out: Ev[] = [];
  for (const raw of text.split('\n\n')) {
    if (raw.trim() === '') continue;
    const lines = raw.split('\n');
    const name = lines.find((l) => l.startsWith('event: '))?.slice(7);
    const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
    const ev = JSON.parse(data) as Ev;
    assert.equal(name, ev['type'], `the event name repeats the data's type: ${raw}`);
    out.push(ev);
  }
  return out;
}
