import { z } from 'zod';

export const demoSchema = z
  .object({
    type: z.literal('demo'),
    /** Delay before the first token. */
    latency_ms: z.number().int().nonnegative().default(0),
    /** 0 means as fast as possible. */
    tokens_per_second: z.number().nonnegative().default(0),
  })
  .strict();

export type DemoProviderConfig = z.output<typeof demoSchema>;
