// GET /v1/models for Anthropic's SDKs (`client.models.list()`): its list shape, one page holding
// every model the key may use. display_name is the catalogue's id: the gateway has no other name.

interface Listing {
  id: string;
  created: number;
}

export function anthropicModel(m: Listing): Record<string, unknown> {
  return { type: 'model', id: m.id, display_name: m.id, created_at: new Date(m.created * 1000).toISOString() };
}

export function anthropicModelList(models: readonly Listing[]): Record<string, unknown> {
  const data = models.map(anthropicModel);
  return { data, has_more: false, first_id: models[0]?.id ?? null, last_id: models[models.length - 1]?.id ?? null };
}
