import { z } from 'zod';
import type { Provider, ProviderDescriptor, ProviderEnv } from './contract.js';
import { anthropicProvider } from './anthropic/index.js';
import { demoProvider } from './demo/index.js';
import { geminiProvider } from './gemini/index.js';
import { openaiProvider } from './openai/index.js';

/** Every provider type the config may name: a new provider is its folder and one line here. */
const PROVIDERS: readonly ProviderDescriptor[] = [
  openaiProvider,
  anthropicProvider,
  geminiProvider,
  demoProvider,
];

/** A provider's config entry, as its own schema parsed it. */
export type ProviderConfig = { type: string };

/** The config schema of a provider entry: the one its `type` names. */
export const providerConfigSchema = z.discriminatedUnion(
  'type',
  // Each descriptor's schema is a strict object with a literal `type`, which is what the union needs.
  PROVIDERS.map((p) => p.schema) as unknown as [z.ZodObject<{ type: z.ZodLiteral<string> }>, ...z.ZodObject<{ type: z.ZodLiteral<string> }>[]],
) as unknown as z.ZodType<ProviderConfig>;

/** Builds one provider per configured entry, once, at start-up. */
export function createProviders(configs: Record<string, ProviderConfig>, env: ProviderEnv): Map<string, Provider> {
  const out = new Map<string, Provider>();
  for (const [name, cfg] of Object.entries(configs)) {
    const d = PROVIDERS.find((p) => p.type === cfg.type);
    // The config schema admitted only these types.
    if (d !== undefined) out.set(name, d.create(name, cfg, env));
  }
  return out;
}
