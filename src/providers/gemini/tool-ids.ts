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
//
// Only exactly these shapes are ours: OpenAI's own ids are `call_` and 24 characters, and other
// providers' (`call_0_<uuid>`) can look like a made id followed by a signature. Taken for ours,
// such a call would go to Gemini without the stand-in signature (Gemini 3 refuses the history)
// or with a garbage one.

export interface GeminiCallRef {
  /** Gemini's own id for the call, if it gave one. */
  geminiId?: string;
  thoughtSignature?: string;
}

/** How many base62 characters follow `call_` in an id the gateway made. */
const MADE_LENGTH = 20;
const ID = new RegExp(`^(?:call_[A-Za-z0-9]{${MADE_LENGTH}}|gid_((?:[0-9a-f]{2})+))(?:_([bu])([A-Za-z0-9_-]*))?$`);

/** Makes the base of an id for a call Gemini gave no id: `call_` and MADE_LENGTH base62 characters. */
export type IdMaker = () => string;
export const randomCallId: IdMaker = () => `call_${randomBase62(MADE_LENGTH)}`;

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
  if (m[1] !== undefined) ref.geminiId = Buffer.from(m[1], 'hex').toString('utf8');
  if (m[2] !== undefined) {
    const raw = Buffer.from(m[3]!, 'base64url');
    ref.thoughtSignature = m[2] === 'b' ? raw.toString('base64') : raw.toString('utf8');
  }
  return ref;
}
