import type { ChatResponse, StreamEvent } from '../../types/chat.js';
import type { ChatCall, ChatStream, EmbeddingsCall, EmbeddingsResult, Provider, ProviderDescriptor, ProviderEnv } from '../contract.js';
import { parseObject, UpstreamHttp } from '../http/transport.js';
import { UpstreamError } from '../upstream-error.js';
import type { HeldBody } from '../whole-body.js';
import { geminiConfigSchema, type GeminiProviderConfig } from './config.js';
import { fromEmbedResponse, toEmbedRequest } from './embeddings.js';
import { fromResponse, GeminiStreamConverter, mapError } from './from-provider.js';
import { toGeminiRequest } from './to-provider.js';
import type { GeminiResponse } from './wire.js';

/** Google's Gemini API: generateContent, streamGenerateContent (SSE), embedContent, batchEmbedContents. */
export class GeminiProvider implements Provider {
  readonly type = 'gemini';
  private readonly http: UpstreamHttp;
  readonly secrets: readonly string[];
  private readonly version: string;

  constructor(
    readonly name: string,
    cfg: GeminiProviderConfig,
    env: ProviderEnv,
  ) {
    this.http = new UpstreamHttp({ ...cfg, api_key_header: cfg.api_key_header ?? 'x-goog-api-key' }, env.limits);
    this.secrets = this.http.secrets;
    this.version = cfg.api_version;
  }

  /** `/v1beta/models/<model>:<method>`; the model is encoded (a `models/` prefix in the config is allowed). */
  private path(model: string, method: string): string {
    return `/${this.version}/models/${encodeURIComponent(modelId(model))}:${method}`;
  }

  async chat(call: ChatCall): Promise<ChatResponse> {
    try {
      const res = await this.http.json(this.path(call.upstreamModel, 'generateContent'), { ...toGeminiRequest(call) }, call, (h) => parseHeld(h, 'a body'));
      return fromResponse(res as GeminiResponse);
    } catch (e) {
      throw e instanceof UpstreamError ? mapError(e) : e;
    }
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    let events: AsyncGenerator<string, void, undefined>;
    try {
      events = await this.http.stream(this.path(call.upstreamModel, 'streamGenerateContent?alt=sse'), { ...toGeminiRequest(call) }, call);
    } catch (e) {
      throw e instanceof UpstreamError ? mapError(e) : e;
    }
    const gen = convert(events);
    // The first event is awaited here, so that a refusal before it (a blocked prompt, an error
    // event) is an ordinary error and failover is still possible.
    const first = await gen.next();
    return {
      async *[Symbol.asyncIterator]() {
        try {
          if (first.done === true) return;
          yield first.value;
          for (;;) {
            const next = await gen.next();
            if (next.done === true) return;
            yield next.value;
          }
        } finally {
          await gen.return();
        }
      },
    };
  }

  async embeddings(call: EmbeddingsCall): Promise<EmbeddingsResult> {
    const model = modelId(call.upstreamModel);
    const plan = toEmbedRequest(call.body, `models/${model}`);
    try {
      const res = await this.http.json(this.path(model, plan.method), plan.body, call, (h) => parseHeld(h, 'an embeddings body'));
      return { body: fromEmbedResponse(res, plan, call.upstreamModel), usage: null };
    } catch (e) {
      throw e instanceof UpstreamError ? mapError(e) : e;
    }
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

function modelId(model: string): string {
  return model.startsWith('models/') ? model.slice('models/'.length) : model;
}

function parseHeld(held: HeldBody, what: string): Record<string, unknown> {
  try {
    return parseObject(held.bytes.toString('utf8'), what);
  } finally {
    held.release();
  }
}

/** SSE data → StreamEvents, one generator for the whole stream; ending it early closes the upstream. */
async function* convert(events: AsyncGenerator<string, void, undefined>): AsyncGenerator<StreamEvent, void, undefined> {
  const conv = new GeminiStreamConverter();
  try {
    for await (const data of events) {
      yield* conv.push(parseObject(data, 'an event') as GeminiResponse, data);
    }
    yield* conv.end();
  } catch (e) {
    throw e instanceof UpstreamError ? mapError(e) : e;
  } finally {
    await events.return();
  }
}

export const geminiProvider: ProviderDescriptor<GeminiProviderConfig> = {
  type: 'gemini',
  schema: geminiConfigSchema,
  create: (name, cfg, env) => new GeminiProvider(name, cfg, env),
};
