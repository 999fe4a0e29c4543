import { GatewayError } from '../errors.js';
import type { ApiKey } from '../store/types.js';

/** Step 3: may this key use this model? 403 for a frozen key or a model outside its list. */
export function authorize(key: ApiKey, modelId: string): void {
  if (key.frozen) throw new GatewayError('api_key_frozen');
  if (!mayUse(key, modelId)) {
    throw new GatewayError('model_access_denied', {
      message: `This API key may not use the model "${modelId}"`,
      param: 'model',
    });
  }
}

export function mayUse(key: ApiKey, modelId: string): boolean {
  if (key.models === null) return true;
  return key.models.some((pattern) => globMatch(pattern, modelId));
}

const compiled = new Map<string, RegExp>();

/** `*` matches any run of characters (slashes included), `?` one; everything else is literal. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === value;
  let re = compiled.get(pattern);
  if (re === undefined) {
    const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    re = new RegExp(`^${body}$`, 's');
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re.test(value);
}
