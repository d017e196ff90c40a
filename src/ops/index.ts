/**
 * Operations endpoints: liveness, readiness and Prometheus metrics.
 *
 * Wrapped with fastify-plugin so that its request hook sees every route of the app and the
 * `metrics` Registry decorates the root instance: features register their own metrics on it
 * (`new Counter({ ..., registers: [app.metrics] })`).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Db } from '../store/index.js';
import type { components } from '../openapi/types.js';
import { createHttpMetrics } from './metrics.js';

export { createHttpMetrics, interactionOf, statusClass, HTTP_LABELS, type HttpMetrics } from './metrics.js';

type Health = components['schemas']['Health'];
type Readiness = components['schemas']['Readiness'];

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's Prometheus registry, served at GET /metrics. */
    metrics: Registry;
  }
  interface FastifyContextConfig {
    /** FHIR interaction of the route (`read`, `search-type`, `create`, …): the metrics label. */
    interaction?: string;
  }
}

export interface OpsOptions {
  readonly db: Pick<Db, 'kind' | 'ping'>;
  /** Collect prom-client's default process metrics (default true). */
  readonly defaultMetrics?: boolean;
}

async function ops(app: FastifyInstance, opts: OpsOptions): Promise<void> {
  const metrics = createHttpMetrics({ defaultMetrics: opts.defaultMetrics });
  app.decorate('metrics', metrics.registry);
  app.addHook('onResponse', async (request, reply) => {
    metrics.observe(request, reply);
  });
  app.addHook('onClose', async () => {
    metrics.registry.clear();
  });

  app.get('/healthz', { config: { interaction: 'healthz' } }, async (): Promise<Health> => ({ status: 'ok' }));

  app.get('/readyz', { config: { interaction: 'readyz' } }, async (request, reply): Promise<Readiness> => {
    try {
      await opts.db.ping();
      return { status: 'ready', database: opts.db.kind };
    } catch (err) {
      request.log.warn({ err }, 'readiness check failed: database ping');
      reply.code(503);
      return { status: 'unavailable', database: opts.db.kind };
    }
  });

  app.get('/metrics', { config: { interaction: 'metrics' } }, async (_request, reply): Promise<string> => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}

export const opsPlugin = fp(ops, { name: 'ops', fastify: '5.x' });
