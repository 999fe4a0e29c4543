import { GatewayError } from '../errors.js';
import type { Catalog, ModelRoute } from '../routing/catalog.js';
import type { Account, ApiKey } from '../store/types.js';
import type { Gateway } from './gateway.js';

/** Step 2: the model the client named. 404 `model_not_found` when no such model is configured. */
export function resolveModel(catalog: Catalog, id: string): ModelRoute {
  const route = catalog.get(id);
  if (route === undefined) {
    throw new GatewayError('model_not_found', { message: `The model "${id.length > 200 ? id.slice(0, 200) + "…" : id}" does not exist`, param: 'model' });
  }
  return route;
}

/** The key's account: its balance plans the hold, its limits join the key's. */
export async function loadAccount(gw: Gateway, key: ApiKey): Promise<Account> {
  const account = await gw.store.getAccount(key.accountId);
  if (account === null) throw new GatewayError('invalid_api_key');
  return account;
}
