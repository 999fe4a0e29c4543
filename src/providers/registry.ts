import type { ProviderConfig } from '../config/schema.js';
import { DemoProvider } from './demo/index.js';
import { OpenAIProvider } from './openai/index.js';
import type { Provider } from './types.js';

/** Builds one adapter per configured provider, once, at start-up. */
export function createProviders(configs: Record<string, ProviderConfig>): Map<string, Provider> {
  const out = new Map<string, Provider>();
  for (const [name, cfg] of Object.entries(configs)) {
    switch (cfg.type) {
      case 'openai':
        out.set(name, new OpenAIProvider(name, cfg));
        break;
      case 'demo':
        out.set(name, new DemoProvider(name, cfg));
        break;
    }
  }
  return out;
}
