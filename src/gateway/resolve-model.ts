import { GatewayError } from '../errors.js';
import type { Catalog, ModelRoute } from '../routing/catalog.js';

/** Step 2: the model the client named. 404 `model_not_found` when no such model is configured. */
export function resolveModel(catalog: Catalog, id: string): ModelRoute {
  const route = catalog.get(id);
  if (route === undefined) {
    throw new GatewayError('model_not_found', { message: `The model "${id.length > 200 ? id.slice(0, 200) + "…" : id}" does not exist`, param: 'model' });
  }
  return route;
}

