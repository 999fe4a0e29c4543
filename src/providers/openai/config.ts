import { z } from 'zod';
import { httpFields } from '../http/config.js';

export const openaiSchema = z
  .object({
    type: z.literal('openai'),
    ...httpFields,
    /**
     * `native`: the upstream speaks OpenAI's Responses API (`POST {base_url}/responses`), and
     * Responses clients' requests go to it as they came (stateful features included). Default:
     * they are translated to chat completions like every other client's.
     */
    responses: z.enum(['native', 'translated']).default('translated'),
  })
  .strict();

export type OpenAIProviderConfig = z.output<typeof openaiSchema>;
