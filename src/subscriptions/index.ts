/**
 * Subscriptions: R4 criteria-based and Backport IG topic-based Subscriptions, matched inside the
 * write transaction (outbox.ts) with the search matcher, delivered from the outbox by the
 * dispatcher (in process, or through a Redis stream shared by instances) over rest-hook, with
 * `$status` and `$events`.
 */
import type { Config } from '../config.js';
import { SubscriptionOutbox } from './outbox.js';
import { loadTopics } from './topics.js';

export { SubscriptionOutbox, type PendingWrite, type StoredWrite } from './outbox.js';
export { Dispatcher, backoffMs, type DispatcherDeps, type DispatcherConfig } from './dispatcher.js';
export { subscriptionRoutes, subscriptionDeliveryRoutes, type SubscriptionRouteDeps, type DeliveryRow } from './routes.js';
export { loadTopics, parseTopic, TopicError, type Topic } from './topics.js';
export { parseSubscription, BACKPORT, FILTER_CRITERIA_EXT, PAYLOAD_CONTENT_EXT, HEARTBEAT_EXT, TIMEOUT_EXT, MAX_COUNT_EXT, type SubscriptionSpec } from './spec.js';
export { notificationBundle, statusSearchset, STATUS_PROFILE, NOTIFICATION_PROFILE } from './notification.js';
export { sign, SIGNATURE_HEADER } from './rest-hook.js';
export { checkEndpoint, isPrivateAddress } from './endpoint.js';
export { readState } from './state.js';
export { WebsocketHub, websocketRoute, WS_PATH, type WebsocketHubDeps } from './websocket.js';

/** The in-transaction part, built once at start from the topics in PROFILES_DIR. */
export async function createSubscriptionOutbox(config: Pick<Config, 'profilesDir' | 'subscriptionAllowedHosts'>): Promise<SubscriptionOutbox> {
  return new SubscriptionOutbox({ topics: await loadTopics(config.profilesDir), allowedHosts: config.subscriptionAllowedHosts });
}

/** The running parts: the rest-hook dispatcher and the websocket hub, started and stopped together. */
export interface SubscriptionService {
  readonly dispatcher: import('./dispatcher.js').Dispatcher;
  readonly websockets: import('./websocket.js').WebsocketHub;
  start(): Promise<void>;
  stop(): Promise<void>;
}
