import { z } from 'zod';
import { httpFields } from '../http/config.js';

/** A `gemini` provider: Google's Gemini API (generativelanguage.googleapis.com), key in `x-goog-api-key` unless `api_key_header` says otherwise. */
export const geminiConfigSchema = z
  .object({
    type: z.literal('gemini'),
    ...httpFields,
    /** The path segment before `/models/…`: `v1beta` has everything the gateway uses (thinking, system instructions, tools). */
    api_version: z.string().regex(/^v[0-9][0-9a-z]*$/, 'expected an API version like v1beta').default('v1beta'),
  })
  .strict();

export type GeminiProviderConfig = z.output<typeof geminiConfigSchema>;
