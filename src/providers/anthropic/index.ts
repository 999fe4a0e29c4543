import type { ChatResponse, StreamEvent } from '../../types/chat.js';
import type { ChatCall, ChatStream, EmbeddingsResult, Provider, ProviderDescriptor, ProviderEnv } from '../contract.js';
import { parseObject, UpstreamHttp } from '../http/transport.js';
import { UpstreamError } from '../upstream-error.js';
import type { HeldBody } from '../whole-body.js';
import { anthropicConfigSchema, type AnthropicProviderConfig } from './config.js';
import { fromMessage, reclassify, StreamConverter } from './from-provider.js';
import { invalid, toMessagesBody } from './to-provider.js';
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
    const body = toMessagesBody(call, false);
    const now = Math.floor(Date.now() / 1000);
    try {
      return await this.http.json(PATH, body as unknown as Record<string, unknown>, call.signal, (held) => fromMessage(parseWhole(held), now));
    } catch (e) {
      throw reclassify(e);
    }
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    const body = toMessagesBody(call, true);
    let events: AsyncGenerator<string, void, undefined>;
    try {
      events = await this.http.stream(PATH, body as unknown as Record<string, unknown>, call.signal);
    } catch (e) {
      throw reclassify(e);
    }
    return openStream(events, new StreamConverter(Math.floor(Date.now() / 1000)));
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
async function openStream(events: AsyncGenerator<string, void, undefined>, conv: StreamConverter): Promise<ChatStream> {
  const converted = convert(events, conv);
  const held: StreamEvent[] = [];
  let first: IteratorResult<StreamEvent, void>;
  try {
    for (;;) {
      first = await converted.next();
      if (first.done === true || first.value.type !== 'start') break;
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

async function* convert(events: AsyncGenerator<string, void, undefined>, conv: StreamConverter): AsyncGenerator<StreamEvent, void, undefined> {
  try {
    for await (const data of events) {
      yield* conv.step(parseObject(data, 'an event') as unknown as AnthropicStreamEvent);
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
