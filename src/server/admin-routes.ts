import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authenticateAdmin } from '../auth/admin.js';
import * as admin from '../admin/service.js';
import { auditLog, type Audit } from '../admin/audit.js';
import type { LineLog } from '../gateway/log-sink.js';
import { presentAccount, presentKey, presentUsage, presentUsageSummary } from '../admin/present.js';
import type { Health } from '../routing/health.js';
import type { Store } from '../store/types.js';
import { methodNotAllowed } from './method-not-allowed.js';

type WithId = FastifyRequest<{ Params: { id: string } }>;

/** SPEC §5. Every route checks the admin key first: a client key gets 401 `invalid_api_key`. Changes are audited on `log` (admin/audit.ts). */
export function registerAdminRoutes(app: FastifyInstance, store: Store, adminHash: () => string, health: Health, log: LineLog): void {
  app.register(
    async (scope) => {
      scope.addHook('onRequest', async (req) => authenticateAdmin(adminHash(), req.headers.authorization));
      const json = (req: FastifyRequest): unknown => admin.parseAdminBody(req.body);
      const audit = (req: FastifyRequest): Audit => auditLog(log, { traceId: req.id });

      scope.post('/accounts', async (req, reply) => {
        reply.code(201);
        return presentAccount(await admin.createAccount(store, json(req), audit(req)));
      });
      methodNotAllowed(scope, '/accounts', ['POST']);
      scope.get('/accounts/:id', async (req: WithId) => presentAccount(await admin.getAccount(store, req.params.id)));
      scope.patch('/accounts/:id', async (req: WithId) => presentAccount(await admin.updateAccount(store, req.params.id, json(req), audit(req))));
      methodNotAllowed(scope, '/accounts/:id', ['GET', 'PATCH']);
      scope.post('/accounts/:id/credit', async (req: WithId) => {
        const idem = req.headers['idempotency-key'];
        return presentAccount(await admin.creditAccount(store, req.params.id, json(req), Array.isArray(idem) ? idem[0] : idem, audit(req)));
      });
      methodNotAllowed(scope, '/accounts/:id/credit', ['POST']);

      scope.post('/keys', async (req, reply) => {
        const { key, secret } = await admin.createKey(store, json(req), audit(req));
        reply.code(201);
        return presentKey(key, secret);
      });
      scope.get('/keys', async (req: FastifyRequest<{ Querystring: Record<string, unknown> }>) => ({
        object: 'list',
        data: (await admin.listKeys(store, req.query)).map((k) => presentKey(k)),
      }));
      methodNotAllowed(scope, '/keys', ['GET', 'POST']);
      scope.get('/keys/:id', async (req: WithId) => presentKey(await admin.getKey(store, req.params.id)));
      scope.patch('/keys/:id', async (req: WithId) => presentKey(await admin.updateKey(store, req.params.id, json(req), audit(req))));
      scope.delete('/keys/:id', async (req: WithId, reply) => {
        await admin.revokeKey(store, req.params.id, audit(req));
        reply.code(204);
      });
      methodNotAllowed(scope, '/keys/:id', ['GET', 'PATCH', 'DELETE']);

      scope.get('/usage', async (req: FastifyRequest<{ Querystring: Record<string, unknown> }>) => {
        const page = await admin.listUsage(store, req.query);
        return { object: 'list', data: page.data.map(presentUsage), next_cursor: page.nextCursor };
      });
      methodNotAllowed(scope, '/usage', ['GET']);
      scope.get('/usage/summary', async (req: FastifyRequest<{ Querystring: Record<string, unknown> }>) =>
        presentUsageSummary(await admin.summarizeUsage(store, req.query)),
      );
      methodNotAllowed(scope, '/usage/summary', ['GET']);

      // This process's view: each replica keeps its own circuits and counters (SPEC §7).
      scope.get('/deployments', async () => ({ object: 'list', data: health.view() }));
      methodNotAllowed(scope, '/deployments', ['GET']);
    },
    { prefix: '/admin' },
  );
}
