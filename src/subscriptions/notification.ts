/**
 * Notification Bundles in the shape of the Backport IG for R4: a `history` Bundle whose first
 * entry is a Parameters resource (profile backport-subscription-status-r4) naming the
 * subscription, topic, status, notification type, events-since-subscription-start and one
 * notification-event part per event; with `full-resource` content, the resources follow.
 * The same builder serves handshakes, heartbeats, event notifications, $status and $events.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { BACKPORT, type PayloadContent } from './spec.js';

export const STATUS_PROFILE = `${BACKPORT}/backport-subscription-status-r4`;
export const NOTIFICATION_PROFILE = `${BACKPORT}/backport-subscription-notification-r4`;

export const SUBSCRIPTION_ERROR_SYSTEM = 'http://terminology.hl7.org/CodeSystem/subscription-error';

export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';

export interface NotifiedEvent {
  readonly eventNumber: number;
  readonly timestamp: string;
  readonly type: string;
  readonly id: string;
  readonly versionId: number;
  readonly action: 'create' | 'update' | 'delete';
  /** The version, for full-resource content (undefined for a deletion). */
  readonly resource?: Resource;
}

export interface StatusFacts {
  readonly subscriptionId: string;
  readonly topic?: string;
  readonly status: string;
  readonly eventsSinceStart: number;
  readonly error?: string;
}

function statusParameters(base: string, facts: StatusFacts, type: NotificationType, content: PayloadContent, events: readonly NotifiedEvent[]): Parameters {
  const parameter: ParametersParameter[] = [{ name: 'subscription', valueReference: { reference: `${base}/Subscription/${facts.subscriptionId}` } }];
  // The IG: topic SHOULD NOT be sent with empty payloads.
  if (facts.topic && content !== 'empty') parameter.push({ name: 'topic', valueCanonical: facts.topic });
  parameter.push({ name: 'status', valueCode: facts.status }, { name: 'type', valueCode: type });
  parameter.push({ name: 'events-since-subscription-start', valueString: String(facts.eventsSinceStart) });
  for (const e of events) {
    const part: ParametersParameter[] = [
      { name: 'event-number', valueString: String(e.eventNumber) },
      { name: 'timestamp', valueInstant: e.timestamp },
    ];
    if (content !== 'empty') part.push({ name: 'focus', valueReference: { reference: `${base}/${e.type}/${e.id}` } });
    parameter.push({ name: 'notification-event', part });
  }
  if (facts.error) {
    // subscription-error no-response: the endpoint did not answer (no HTTP status came back).
    const noResponse = !/answered HTTP \d+/.test(facts.error);
    parameter.push({
      name: 'error',
      valueCodeableConcept: { ...(noResponse ? { coding: [{ system: SUBSCRIPTION_ERROR_SYSTEM, code: 'no-response' }] } : {}), text: facts.error },
    });
  }
  return { resourceType: 'Parameters', id: randomUUID(), meta: { profile: [STATUS_PROFILE] }, parameter };
}

function statusEntry(base: string, params: Parameters, subscriptionId: string): BundleEntry {
  return {
    fullUrl: `urn:uuid:${params.id}`,
    resource: params,
    request: { method: 'GET', url: `${base}/Subscription/${subscriptionId}/$status` },
    response: { status: '200' },
  };
}

/** A notification Bundle (history) of one type, with the events it carries. */
export function notificationBundle(
  base: string,
  facts: StatusFacts,
  type: NotificationType,
  content: PayloadContent,
  events: readonly NotifiedEvent[] = [],
  now = new Date().toISOString(),
): Bundle {
  const params = statusParameters(base, facts, type, content, events);
  const entry: BundleEntry[] = [statusEntry(base, params, facts.subscriptionId)];
  if (content === 'full-resource') {
    for (const e of events) {
      const url = `${base}/${e.type}/${e.id}`;
      entry.push({
        fullUrl: url,
        ...(e.resource ? { resource: e.resource } : {}),
        request: e.action === 'create' ? { method: 'POST', url: e.type } : e.action === 'update' ? { method: 'PUT', url: `${e.type}/${e.id}` } : { method: 'DELETE', url: `${e.type}/${e.id}` },
        response: { status: e.action === 'create' ? '201' : '200' },
      });
    }
  }
  return { resourceType: 'Bundle', id: randomUUID(), meta: { profile: [NOTIFICATION_PROFILE] }, type: 'history', timestamp: now, entry };
}

/** The $status answer: a searchset of one query-status Parameters per subscription. */
export function statusSearchset(base: string, all: readonly StatusFacts[]): Bundle {
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    type: 'searchset',
    total: all.length,
    entry: all.map((facts) => {
      const params = statusParameters(base, facts, 'query-status', 'id-only', []);
      return { fullUrl: `urn:uuid:${params.id}`, resource: params, search: { mode: 'match' } };
    }),
  };
}
