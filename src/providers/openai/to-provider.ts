import type { ChatCall, JsonObject } from '../types.js';

/** The upstream body: the client's parameters as sent, with the deployment's model name, the gateway's output cap, and a request for usage on streams. */
export function toChatBody(call: ChatCall, stream: boolean): JsonObject {
  const body: JsonObject = { ...call.body, model: call.upstreamModel };
  if (call.maxTokens !== null) body['max_tokens'] = call.maxTokens;
  if (stream) {
    const opts = call.body['stream_options'];
    body['stream'] = true;
    body['stream_options'] = { ...(opts !== null && typeof opts === 'object' ? (opts as JsonObject) : {}), include_usage: true };
  } else {
    delete body['stream'];
    delete body['stream_options'];
  }
  return body;
}
