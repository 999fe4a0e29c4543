import { randomBase62 } from '../../store/ids.js';

// Gemini's function calls usually come without ids, and Gemini 3 wants the `thoughtSignature` of a
// function call back on that same call in the next turn. The gateway keeps no state between
// requests, so both travel in the tool-call id the client receives and sends back:
//
//   call_<20 base62>[_<signature>]   an id the gateway made (Gemini sent none; none is sent back)
//   gid_<hex of Gemini's id>[_<signature>]   Gemini's own id, sent back on the call and its response
//
// <signature> is `b` + the signature's bytes in base64url when it is canonical base64 (as Google
// sends it), else `u` + its UTF-8 in base64url. Every character is in [A-Za-z0-9_-], which
// OpenAI clients keep verbatim and Anthropic's tool_use id pattern accepts.

export interface GeminiCallRef {
  /** Gemini's own id for the call, if it gave one. */
  geminiId?: string;
  thoughtSignature?: string;
}

const ID = /^(call|gid)_([A-Za-z0-9]+)(?:_([bu])([A-Za-z0-9_-]*))?$/;

export type IdMaker = () => string;
export const randomCallId: IdMaker = () => `call_${randomBase62(20)}`;

/** The client-facing id of a function call. */
export function encodeCallId(ref: GeminiCallRef, makeId: IdMaker = randomCallId): string {
  const base = ref.geminiId !== undefined && ref.geminiId !== '' ? `gid_${Buffer.from(ref.geminiId, 'utf8').toString('hex')}` : makeId();
  const sig = ref.thoughtSignature;
  if (sig === undefined || sig === '') return base;
  const bytes = Buffer.from(sig, 'base64');
  if (bytes.toString('base64') === sig) return `${base}_b${bytes.toString('base64url')}`;
  return `${base}_u${Buffer.from(sig, 'utf8').toString('base64url')}`;
}

/** The id was made by this provider (Gemini's answer passed through the gateway), with or without a signature. */
export function isGeminiCallId(id: string): boolean {
  return ID.test(id);
}

/** What an id carries back; an id of another shape (made by a client or another provider) carries nothing. */
export function decodeCallId(id: string): GeminiCallRef {
  const m = ID.exec(id);
  if (m === null) return {};
  const ref: GeminiCallRef = {};
  if (m[1] === 'gid') {
    if (m[2]!.length % 2 !== 0 || !/^[0-9a-f]+$/.test(m[2]!)) return {};
    ref.geminiId = Buffer.from(m[2]!, 'hex').toString('utf8');
  }
  if (m[3] !== undefined) {
    const raw = Buffer.from(m[4]!, 'base64url');
    ref.thoughtSignature = m[3] === 'b' ? raw.toString('base64') : raw.toString('utf8');
  }
  return ref;
}
