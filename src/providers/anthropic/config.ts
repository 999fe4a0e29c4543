import { z } from 'zod';
import { httpFields } from '../http/config.js';

/** An `anthropic` provider entry: the Messages API at `{base_url}/v1/messages`. */
export const anthropicConfigSchema = z
  .object({
    type: z.literal('anthropic'),
    ...httpFields,
    /** Sent as `anthropic-version`; the wire format this provider speaks is 2023-06-01's. */
    anthropic_version: z.string().min(1).default('2023-06-01'),
  })
  .strict();

export type AnthropicProviderConfig = z.infer<typeof anthropicConfigSchema>;
