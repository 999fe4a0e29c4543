import type { ProviderConfig } from '../config/schema.js';
import { DemoProvider } from './demo/index.js';
import { OpenAIProvider } from './openai/index.js';
import type { Provider } from './types.js';
import type { UpstreamLimits } from './whole-body.js';

/** Builds one adapter per configured provider, once, at start-up. */
export function createProviders(configs: Record<string, ProviderConfig>, limits: UpstreamLimits): Map<string, Provider> {
  const out = new Map<string, Provider>();
  for (const [name, cfg] of Object.entries(configs)) {
    switch (cfg.type) {
      case 'openai':
        out.set(name, new OpenAIProvider(name, cfg, limits));
        break;
      case 'demo':
        out.set(name, new DemoProvider(name, cfg));
        break;
    }
  }
  return out;
}
