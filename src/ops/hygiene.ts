/**
 * HTTP hygiene: security headers, and a request rate limit per client (per address before
 * authentication), kept in Redis when REDIS_URL is set so that every gateway instance counts
 * against the same budget, in process otherwise.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { Redis } from 'ioredis';
import { GatewayError } from '../errors.js';

export interface HygieneOptions {
  /** Requests allowed per client per window; 0 turns the limit off. */
  readonly rateLimitMax: number;
  readonly rateLimitWindowMs: number;
  readonly redis?: Redis;
  /** Prefix of the rate-limit keys in Redis. */
  readonly redisKeyPrefix?: string;
}

/** The rate-limit bucket of a request: its client once authenticated, else its address. */
export function rateLimitKey(req: FastifyRequest): string {
  const clientId = (req as FastifyRequest & { auth?: { clientId?: string } }).auth?.clientId;
  return clientId ? `client:${clientId}` : `ip:${req.ip}`;
}

async function hygiene(app: FastifyInstance, opts: HygieneOptions): Promise<void> {
  await app.register(helmet, {
    // The gateway serves JSON to systems; a strict policy costs nothing and blocks any rendering.
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginResourcePolicy: { policy: 'same-origin' },
  });
  if (opts.rateLimitMax > 0) {
    await app.register(rateLimit, {
      global: true,
      max: opts.rateLimitMax,
      timeWindow: opts.rateLimitWindowMs,
      // After authentication, so the bucket is the client, not a shared NAT address.
      hook: 'preHandler',
      keyGenerator: rateLimitKey,
      // Probes from the orchestrator are never throttled.
      allowList: (req) => req.url === '/healthz' || req.url === '/readyz',
      ...(opts.redis ? { redis: opts.redis, nameSpace: `${opts.redisKeyPrefix ?? 'county-hie:'}rate:` } : {}),
      skipOnError: false,
      errorResponseBuilder: (_req, context) =>
        new GatewayError('GW_ERR_TOO_MANY_REQUESTS', `Rate limit of ${context.max} requests per ${context.after} exceeded; retry later`),
    });
  }
}

export const hygienePlugin = fp(hygiene, { name: 'hygiene' });
