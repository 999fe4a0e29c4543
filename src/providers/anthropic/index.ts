import type { ChatResponse, JsonObject, StreamEvent } from '../../types/chat.js';
import type { ChatCall, ChatStream, EmbeddingsResult, Provider, ProviderDescriptor, ProviderEnv } from '../contract.js';
import { parseObject, UpstreamHttp } from '../http/transport.js';
import { UpstreamError } from '../upstream-error.js';
import type { HeldBody } from '../whole-body.js';
import { anthropicConfigSchema, type AnthropicProviderConfig } from './config.js';
import { fromMessage, reclassify, StreamConverter } from './from-provider.js';
import { invalid, passThrough, toMessagesBody } from './to-provider.js';
import type { AnthropicResponse, AnthropicStreamEvent } from './wire.js';

const PATH = '/v1/messages';

/** Anthropic's Messages API over the shared transport. */
export class AnthropicProvider implements Provider {
  readonly type = 'anthropic';
  private readonly http: UpstreamHttp;
  readonly secrets: readonly string[];

  constructor(
    readonly name: string,
    cfg: AnthropicProviderConfig,
    env: ProviderEnv,
  ) {
    // The key alone in x-api-key, as Anthropic wants, unless the config names another header (a proxy's).
    this.http = new UpstreamHttp({ ...cfg, api_key_header: cfg.api_key_header ?? 'x-api-key' }, env.limits, {
      headers: { 'anthropic-version': cfg.anthropic_version },
    });
    this.secrets = this.http.secrets;
  }

  async chat(call: ChatCall): Promise<ChatResponse> {
    const pass = passThrough(call, false);
    const body = pass?.body ?? (toMessagesBody(call, false) as unknown as Record<string, unknown>);
    const now = Math.floor(Date.now() / 1000);
    const take = (held: HeldBody): ChatResponse => {
      const msg = parseWhole(held);
      const r = fromMessage(msg, now);
      // The answer as it came, for the client of the same protocol (the typed fields are for billing).
      if (pass !== null) r.native = { protocol: 'anthropic-messages', body: msg as JsonObject };
      return r;
    };
    try {
      return await this.http.json(PATH, body, call, take, pass?.headers);
    } catch (e) {
      throw reclassify(e);
    }
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    const pass = passThrough(call, true);
    const body = pass?.body ?? (toMessagesBody(call, true) as unknown as Record<string, unknown>);
    let events: AsyncGenerator<string, void, undefined>;
    try {
      events = await this.http.stream(PATH, body, call, pass?.headers);
    } catch (e) {
      throw reclassify(e);
    }
    return openStream(events, new StreamConverter(Math.floor(Date.now() / 1000)), pass !== null);
  }

  /** Anthropic has no embeddings: a client asking a Claude model for them made a mistake no other attempt fixes. */
  embeddings(): Promise<EmbeddingsResult> {
    return Promise.reject(invalid('This model does not support embeddings', 'model'));
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

/**
 * Reads until the first event that carries more than the stream's start, so that an upstream
 * failing before it is still an ordinary error and failover still possible. Anthropic sends
 * message_start (and pings) first, so an error event (overloaded_error) or a cut connection comes
 * after them; `start` gives the client nothing, so holding it back costs nothing.
 */
async function openStream(events: AsyncGenerator<string, void, undefined>, conv: StreamConverter, native: boolean): Promise<ChatStream> {
  const converted = convert(events, conv, native);
  const held: StreamEvent[] = [];
  let first: IteratorResult<StreamEvent, void>;
  try {
    for (;;) {
      first = await converted.next();
      if (first.done === true || (first.value.type !== 'start' && first.value.type !== 'native')) break;
      held.push(first.value);
    }
  } catch (e) {
    await converted.return();
    throw e;
  }
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* held;
        if (first.done === true) return;
        yield first.value;
        yield* { [Symbol.asyncIterator]: () => converted };
      } finally {
        // A consumer that stops early closes the upstream response too.
        await converted.return();
      }
    },
  };
}

/**
 * Upstream events as typed events; with `native` (a passed-through request) each upstream event
 * follows as it came, after its typed events: the relay checks the output cap on the typed ones
 * first, so an event past the cap is never sent on. An error event throws before it is passed on.
 */
async function* convert(events: AsyncGenerator<string, void, undefined>, conv: StreamConverter, native: boolean): AsyncGenerator<StreamEvent, void, undefined> {
  try {
    for await (const data of events) {
      const ev = parseObject(data, 'an event');
      yield* conv.step(ev as unknown as AnthropicStreamEvent);
      if (native) yield { type: 'native', protocol: 'anthropic-messages', event: typeof ev['type'] === 'string' ? ev['type'] : null, data };
      if (conv.done) return;
    }
  } finally {
    await events.return();
  }
  throw new UpstreamError('reset', 'upstream stream ended before message_stop');
}

function parseWhole(held: HeldBody): AnthropicResponse {
  try {
    return parseObject(held.bytes.toString('utf8'), 'a message') as AnthropicResponse;
  } finally {
    held.release();
  }
}

export const anthropicProvider: ProviderDescriptor<AnthropicProviderConfig> = {
  type: 'anthropic',
  schema: anthropicConfigSchema,
  create: (name, cfg, env) => new AnthropicProvider(name, cfg, env),
};
