import { countText } from '../../billing/estimate.js';
import { badRequest } from '../../errors.js';
import type { Endpoint, EndpointResult } from '../../gateway/endpoint.js';
import { presentRaw, presentResult } from '../../gateway/present.js';
import { parseJsonBody, requireModel } from '../../gateway/validate-chat.js';
import type { EmbeddingsResult } from '../../providers/contract.js';
import type { JsonObject } from '../../types/chat.js';
import { bearer } from '../openai-chat/endpoint.js';
import { renderError } from '../openai-chat/render-error.js';

interface EmbeddingsInput {
  body: JsonObject;
  promptTokens: number;
}

/** POST /v1/embeddings: input tokens only, never streamed. */
export const openAIEmbeddings: Endpoint<EmbeddingsInput> = {
  name: 'embeddings',
  credential: bearer,
  parse(raw) {
    const body = parseJsonBody(raw);
    return { model: requireModel(body), body };
  },
  validate: (body) => ({ body, promptTokens: inputTokens(body['input']) }),
  stream: () => false,
  estimate: (p) => ({ promptTokens: p.promptTokens, maxOutput: 0, choices: 1 }),
  async call(p, d, _maxTokens, signal, trace, firstByte) {
    return result(await d.provider.embeddings({ body: p.body, upstreamModel: d.upstreamModel, signal, trace, firstByte }));
  },
  open: () => Promise.reject(new Error('embeddings are not streamed')),
  encoder: () => {
    throw new Error('embeddings are not streamed');
  },
  renderError,
};

function result(r: EmbeddingsResult): EndpointResult {
  if ('raw' in r) {
    // The upstream's bytes count against the buffer budget until they have gone to the client.
    return { usage: r.usage, delivered: () => '', encode: (model, b) => presentRaw(r.raw, model, b), release: r.raw.release };
  }
  return {
    usage: r.usage,
    delivered: () => '',
    encode: (model, b) => {
      presentResult(r.body, model, b);
      return JSON.stringify(r.body);
    },
  };
}

function inputTokens(input: unknown): number {
  if (typeof input === 'string') return countText(input);
  if (Array.isArray(input) && input.length > 0 && input.length <= 2048) {
    let n = 0;
    for (const item of input as unknown[]) {
      if (typeof item === 'string') n += countText(item);
      else if (Array.isArray(item) && item.every((t) => Number.isInteger(t))) n += item.length;
      else throw badRequest("Invalid 'input': expected a string, an array of strings, or an array of token arrays", 'input');
    }
    return n;
  }
  if (input === undefined || input === null) throw badRequest("Missing required parameter: 'input'", 'input');
  throw badRequest("Invalid 'input': expected a string, an array of strings, or an array of token arrays", 'input');
}
