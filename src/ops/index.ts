/**
 * Operations endpoints: liveness, readiness and metrics.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../store/index.js';

export interface OpsOptions {
  readonly db: Db;
}

async function ops(app: FastifyInstance, opts: OpsOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await opts.db.ping();
      return { status: 'ready', database: opts.db.kind };
    } catch {
      return reply.code(503).send({ status: 'unavailable', database: opts.db.kind });
    }
  });
}

export const opsPlugin = fp(ops, { name: 'ops' });
