import { z } from 'zod';
import { httpFields } from '../http/config.js';

export const openaiSchema = z
  .object({
    type: z.literal('openai'),
    ...httpFields,
  })
  .strict();

export type OpenAIProviderConfig = z.output<typeof openaiSchema>;
