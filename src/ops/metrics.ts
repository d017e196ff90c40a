/**
 * Prometheus metrics. Each app instance owns its Registry (never prom-client's global one), so that
 * several apps can live in one process (tests) without clashing on metric names. Other features
 * register their own metrics on `app.metrics`.
 *
 * HTTP requests are labelled by FHIR interaction, never by raw URL, to keep cardinality bounded:
 * a route declares `config: { interaction: 'read' }`; routes without one fall back to their route
 * pattern (`/fhir/Patient/:id`); requests that matched no route are `unmatched`.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const HTTP_LABELS = ['interaction', 'method', 'status_class'] as const;
type HttpLabel = (typeof HTTP_LABELS)[number];

/** Latency buckets in seconds: FHIR reads are a few ms, transactions and $everything up to seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface HttpMetrics {
  readonly registry: Registry;
  /** Records one finished request (called from the onResponse hook). */
  observe(request: FastifyRequest, reply: FastifyReply): void;
}

/** The `interaction` label of a request: route config, else route pattern, else `unmatched`. */
export function interactionOf(request: FastifyRequest): string {
  const options = request.routeOptions;
  const declared = (options.config as { interaction?: unknown } | undefined)?.interaction;
  if (typeof declared === 'string' && declared !== '') return declared;
  return options.url ?? 'unmatched';
}

export function statusClass(statusCode: number): string {
  return statusCode >= 100 && statusCode < 600 ? `${Math.floor(statusCode / 100)}xx` : 'other';
}

export function createHttpMetrics(options: { defaultMetrics?: boolean } = {}): HttpMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const requests = new Counter<HttpLabel>({
    name: 'gateway_http_requests_total',
    help: 'HTTP requests answered, by FHIR interaction (or route pattern), method and status class.',
    labelNames: HTTP_LABELS,
    registers: [registry],
  });
  const duration = new Histogram<HttpLabel>({
    name: 'gateway_http_request_duration_seconds',
    help: 'Time from receiving an HTTP request to sending its response, in seconds.',
    labelNames: HTTP_LABELS,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  return {
    registry,
    observe(request, reply) {
      const labels = {
        interaction: interactionOf(request),
        method: request.method,
        status_class: statusClass(reply.statusCode),
      };
      requests.inc(labels);
      duration.observe(labels, reply.elapsedTime / 1000);
    },
  };
}
