/**
 * What a Subscription resource asks for, checked and reduced to the facts the matcher and the
 * dispatcher need. Two forms:
 * - R4 criteria-based: `criteria` is a search (`Observation?code=http://loinc.org|2345-7`);
 * - Backport IG topic-based: `criteria` is a SubscriptionTopic canonical, narrowed by
 *   `backport-filter-criteria` extensions (`Encounter?patient=Patient/123`), with the payload
 *   content (`empty`, `id-only`, `full-resource`), heartbeat, timeout and max count as extensions.
 */
import type { Extension, Subscription } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import { isKnownResourceType } from '../fhir/definitions.js';
import { SUBSCRIPTION_SECRET_EXTENSION } from '../fhir/systems.js';
import { parseCriteria, queryFromString } from '../store/search/index.js';
import { checkEndpoint } from './endpoint.js';
import type { Topic } from './topics.js';

export const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
export const BACKPORT_PROFILE = `${BACKPORT}/backport-subscription`;
export const FILTER_CRITERIA_EXT = `${BACKPORT}/backport-filter-criteria`;
export const PAYLOAD_CONTENT_EXT = `${BACKPORT}/backport-payload-content`;
export const HEARTBEAT_EXT = `${BACKPORT}/backport-heartbeat-period`;
export const TIMEOUT_EXT = `${BACKPORT}/backport-timeout`;
export const MAX_COUNT_EXT = `${BACKPORT}/backport-max-count`;

export type PayloadContent = 'empty' | 'id-only' | 'full-resource';
export type ChannelType = 'rest-hook' | 'websocket';

/** A criteria query bound to its resource type. */
export interface Criteria {
  readonly type: string;
  /** The query string, without `Type?`. */
  readonly query: string;
}

export interface SubscriptionSpec {
  readonly kind: 'criteria' | 'topic';
  /** Criteria-based: the search; topic-based: undefined. */
  readonly criteria?: Criteria;
  readonly topic?: string;
  /** Topic-based: the subscriber's filters, ANDed, each on one trigger type. */
  readonly filters: readonly Criteria[];
  readonly channel: ChannelType;
  readonly endpoint?: string;
  /** Extra HTTP headers of each rest-hook call (channel.header, `Name: value`). */
  readonly headers: readonly (readonly [string, string])[];
  readonly content: PayloadContent;
  readonly heartbeatSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly maxCount: number;
  /** Resource types whose writes can match. */
  readonly resourceTypes: readonly string[];
}

export interface SpecOptions {
  readonly topics: ReadonlyMap<string, Topic>;
  readonly allowedHosts: readonly string[];
}

const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'x-signature']);

function bad(message: string, expression: string): never {
  throw new GatewayError('GW_ERR_BAD_REQUEST', message, { expression });
}

function ext(list: Extension[] | undefined, url: string): Extension[] {
  return (list ?? []).filter((e) => e.url === url);
}

function splitCriteria(raw: string, expression: string): Criteria {
  const m = /^([A-Z][A-Za-z]+)(?:\?(.*))?$/.exec(raw.trim());
  if (!m) bad(`"${raw}" is not of the form Type?parameter=value`, expression);
  if (!isKnownResourceType(m[1])) throw new GatewayError('GW_ERR_UNKNOWN_TYPE', `Unknown resource type "${m[1]}" in "${raw}"`, { expression });
  return { type: m[1], query: m[2] ?? '' };
}

function checkCriteria(c: Criteria, expression: string): void {
  try {
    parseCriteria(c.type, queryFromString(c.query));
  } catch (e) {
    if (e instanceof GatewayError) throw new GatewayError(e.code, `${expression}: ${e.message}`, { expression, cause: e });
    throw e;
  }
}

function positiveInt(e: Extension | undefined, expression: string, min: number): number | undefined {
  if (!e) return undefined;
  const v = e.valueUnsignedInt ?? e.valuePositiveInt ?? e.valueInteger;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) bad(`${e.url} must be a whole number of at least ${min}`, expression);
  return v;
}

/**
 * Reads and checks a Subscription. Throws GatewayError naming the offending element: unknown or
 * unsupported channel, bad criteria, unknown topic, filter not allowed by the topic, endpoint the
 * gateway may not call.
 */
export function parseSubscription(sub: Subscription, opts: SpecOptions): SubscriptionSpec {
  if (!sub.criteria) bad('Subscription.criteria is required', 'Subscription.criteria');
  const channel = sub.channel?.type;
  if (channel !== 'rest-hook' && channel !== 'websocket') {
    throw new GatewayError('GW_ERR_BUSINESS_RULE', `Subscription.channel.type "${String(channel)}" is not supported; use rest-hook or websocket`, {
      expression: 'Subscription.channel.type',
    });
  }
  const chanExt = sub.channel.extension;
  const topic = opts.topics.get(sub.criteria);
  let kind: SubscriptionSpec['kind'];
  let criteria: Criteria | undefined;
  const filters: Criteria[] = [];
  let resourceTypes: string[];
  if (topic) {
    kind = 'topic';
    resourceTypes = [...new Set(topic.triggers.map((t) => t.resource))];
    const critExt = (sub as { _criteria?: { extension?: Extension[] } })._criteria?.extension;
    for (const [i, e] of ext(critExt, FILTER_CRITERIA_EXT).entries()) {
      const where = `Subscription.criteria.extension[${i}]`;
      if (typeof e.valueString !== 'string') bad('backport-filter-criteria needs a valueString', where);
      const raw = e.valueString.includes('?') ? e.valueString : `${resourceTypes.length === 1 ? resourceTypes[0] : ''}?${e.valueString}`;
      const c = splitCriteria(raw, where);
      if (!resourceTypes.includes(c.type)) bad(`${c.type} is not a resource of topic ${topic.url}`, where);
      const allowed = topic.canFilterBy.get(c.type) ?? new Set<string>();
      for (const name of new URLSearchParams(c.query).keys()) {
        if (!allowed.has(name.split(':')[0])) bad(`Topic ${topic.url} does not allow filtering ${c.type} by "${name}"`, where);
      }
      checkCriteria(c, where);
      filters.push(c);
    }
  } else if (/^https?:\/\//.test(sub.criteria)) {
    throw new GatewayError('GW_ERR_NOT_FOUND', `SubscriptionTopic ${sub.criteria} is not known to this gateway`, { expression: 'Subscription.criteria' });
  } else {
    kind = 'criteria';
    criteria = splitCriteria(sub.criteria, 'Subscription.criteria');
    checkCriteria(criteria, 'Subscription.criteria');
    resourceTypes = [criteria.type];
  }

  const payloadExt = (sub.channel as { _payload?: { extension?: Extension[] } })._payload?.extension;
  const contentCode = ext(payloadExt, PAYLOAD_CONTENT_EXT)[0]?.valueCode;
  let content: PayloadContent;
  if (contentCode !== undefined) {
    if (contentCode !== 'empty' && contentCode !== 'id-only' && contentCode !== 'full-resource') {
      bad(`payload content "${contentCode}" is not empty, id-only or full-resource`, 'Subscription.channel.payload');
    }
    content = contentCode;
  } else {
    // R4 criteria-based: a payload MIME type asks for the resource, none for a notification only.
    content = sub.channel.payload ? 'full-resource' : 'id-only';
  }
  if (sub.channel.payload && !/^application\/(fhir\+)?json\b/.test(sub.channel.payload)) {
    throw new GatewayError('GW_ERR_BUSINESS_RULE', `payload "${sub.channel.payload}" is not supported; use application/fhir+json`, { expression: 'Subscription.channel.payload' });
  }

  let endpoint: string | undefined;
  const headers: [string, string][] = [];
  if (channel === 'rest-hook') {
    endpoint = checkEndpoint(sub.channel.endpoint, opts.allowedHosts, 'Subscription.channel.endpoint').toString();
    for (const [i, h] of (sub.channel.header ?? []).entries()) {
      const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/.exec(h);
      if (!m || /[\r\n]/.test(m[2])) bad(`"${h}" is not an HTTP header ("Name: value")`, `Subscription.channel.header[${i}]`);
      if (FORBIDDEN_HEADERS.has(m[1].toLowerCase())) bad(`header ${m[1]} is set by the gateway`, `Subscription.channel.header[${i}]`);
      headers.push([m[1], m[2]]);
    }
  }
  const heartbeatSeconds = positiveInt(ext(chanExt, HEARTBEAT_EXT)[0], 'Subscription.channel.extension', 1);
  const timeoutSeconds = positiveInt(ext(chanExt, TIMEOUT_EXT)[0], 'Subscription.channel.extension', 1);
  const maxCount = positiveInt(ext(chanExt, MAX_COUNT_EXT)[0], 'Subscription.channel.extension', 1) ?? 1;
  return {
    kind,
    criteria,
    topic: topic?.url,
    filters,
    channel,
    endpoint,
    headers,
    content,
    heartbeatSeconds,
    timeoutSeconds,
    maxCount,
    resourceTypes,
  };
}

/** The HMAC secret the subscriber set, removed from the resource so that it is never stored in it. */
export function takeSecret(sub: Subscription): string | undefined {
  const list = sub.channel?.extension;
  const found = ext(list, SUBSCRIPTION_SECRET_EXTENSION)[0];
  if (!found) return undefined;
  if (typeof found.valueString !== 'string' || found.valueString.length < 16) {
    bad('the HMAC secret must be a string of at least 16 characters', 'Subscription.channel.extension');
  }
  const rest = (list ?? []).filter((e) => e.url !== SUBSCRIPTION_SECRET_EXTENSION);
  if (rest.length > 0) sub.channel.extension = rest;
  else delete sub.channel.extension;
  return found.valueString;
}
