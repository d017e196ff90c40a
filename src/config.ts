/**
 * Gateway configuration: the only module that reads environment variables.
 *
 * Every variable is declared once in ENV_SCHEMA (name, type, default, description). The
 * README's configuration table is generated from the same list (`npm run docs:config`), so
 * the documentation cannot drift from what the code accepts.
 */
import { Ajv, type ErrorObject } from 'ajv';

export interface Config {
  /** Interface the HTTP server binds to. */
  readonly host: string;
  readonly port: number;
  /** Public base URL of the server, used in Location headers, Bundle links and fullUrls. */
  readonly baseUrl: string;
  /** PostgreSQL connection string; when absent the embedded PGlite store in dataDir is used. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly dbPoolMax: number;
  /** Load the demo county community on first start with an empty database. */
  readonly demoData: boolean;
  readonly profilesDir: string;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Largest accepted request body in bytes. */
  readonly bodyLimit: number;
  readonly defaultPageSize: number;
  readonly maxPageSize: number;
  /** Search page size above which `_include` results are refused, to bound response size. */
  readonly maxIncludes: number;
  /** JSON file of the registered OAuth2 clients; undefined: the demo community's clients. */
  readonly clientsFile: string | undefined;
  /** Private JWK (JSON) or PEM key that signs access tokens; undefined: an ephemeral key. */
  readonly authSigningKey: string | undefined;
  /** Lifetime of issued access tokens, in seconds. */
  readonly tokenTtlSeconds: number;
  readonly redisUrl: string | undefined;
  /** Prefix of every Redis key of this gateway (several communities, or tests, sharing one Redis). */
  readonly redisKeyPrefix: string;
  readonly rateLimitMax: number;
  readonly rateLimitWindowMs: number;
  /** Digest of the audit hash chains: SM3 (GB/T 32905), SHA-256, or `auto` (SM3 when available). */
  readonly auditHash: 'auto' | 'sm3' | 'sha256';
  /** Number of independent audit hash chains appended to concurrently. */
  readonly auditChains: number;
  /** Months of audit records kept; older whole months are dropped. */
  readonly auditRetentionMonths: number;
  /** Days a delivered subscription event is kept (for $events). */
  readonly subscriptionEventRetentionDays: number;
  /** Days an HL7 v2 message control id is remembered to recognise a resent message. */
  readonly hl7DuplicateWindowDays: number;
  /** Days a replayed or discarded dead letter is kept. */
  readonly deadLetterRetentionDays: number;
  /** Directory of the ConceptMap JSON files (local codes → LOINC / ICD-10) loaded at start. */
  readonly terminologyDir: string;
  /** MLLP (HL7 v2 over TCP) listener port; 0: no listener. */
  readonly mllpPort: number;
  readonly mllpHost: string;
  /** PEM key and certificate files: both set, the MLLP listener speaks TLS. */
  readonly mllpTlsKeyFile: string | undefined;
  readonly mllpTlsCertFile: string | undefined;
  /** Largest MLLP frame accepted, in bytes; larger ones are refused (AR) and the connection closed. */
  readonly mllpMaxFrameBytes: number;
  /** An MLLP connection silent this long is closed; 0: never. */
  readonly mllpIdleTimeoutMs: number;
  /** JSON file of the HL7 v2 senders (MSH-3/MSH-4 → institution); undefined: the demo senders. */
  readonly hl7SendersFile: string | undefined;
  /** Directory where HL7 dead letters wait while the database is down. */
  readonly hl7SpoolDir: string;
  readonly hl7MappingsDir: string;
  /** Column declarations of HIS extracts (mappings/extract). */
  readonly extractMappingsDir: string;
  readonly recognitionCatalogue: string;
  readonly referralLevelsFile: string;
  /** Hosts (`host` or `host:port`) a rest-hook may call over http or at a private address. */
  readonly subscriptionAllowedHosts: readonly string[];
  /** Consecutive failed deliveries after which a subscription goes to `error`. */
  readonly subscriptionMaxFailures: number;
  /** First retry delay; doubled on each further failure, with jitter, up to the maximum. */
  readonly subscriptionBackoffBaseMs: number;
  readonly subscriptionBackoffMaxMs: number;
  /** Time a rest-hook call may take (connect, headers, body) unless the subscription asks less. */
  readonly subscriptionTimeoutMs: number;
  /** Heartbeat period of subscriptions that set none; 0: no heartbeat for them. */
  readonly subscriptionHeartbeatSeconds: number;
  /** How often each instance looks for subscriptions with notifications to deliver. */
  readonly subscriptionPollMs: number;
  /** How long a dispatcher owns a subscription without renewing; a crashed one's work is taken over after it. */
  readonly subscriptionLeaseMs: number;
  /** Identity-matching weight at or above which a new record is linked to a known person automatically. */
  readonly mpiAutoLinkWeight: number;
  /** Weight at or above which (below the auto-link weight) a possible match is queued for review. */
  readonly mpiReviewWeight: number;
  /** A console session unused this long ends (minutes). */
  readonly consoleIdleMinutes: number;
  /** A console session ends this long after login, however busy (hours). */
  readonly consoleSessionHours: number;
  /** A feed that sent nothing for this long, after sending in the day before, is shown as stale (minutes). */
  readonly feedStaleMinutes: number;
}

interface EnvVar {
  readonly name: string;
  readonly key: keyof Config;
  readonly type: 'string' | 'integer' | 'boolean' | 'url';
  readonly default?: string;
  readonly enum?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly description: string;
}

export const ENV_VARS: readonly EnvVar[] = [
  { name: 'HOST', key: 'host', type: 'string', default: '127.0.0.1', description: 'Interface the HTTP server listens on.' },
  { name: 'PORT', key: 'port', type: 'integer', default: '8080', min: 0, max: 65535, description: 'HTTP port.' },
  {
    name: 'BASE_URL',
    key: 'baseUrl',
    type: 'url',
    description: 'Public base URL (as clients see it) used in `Location`, Bundle links and `fullUrl`. Default `http://HOST:PORT`.',
  },
  {
    name: 'DATABASE_URL',
    key: 'databaseUrl',
    type: 'url',
    description: 'PostgreSQL connection string (`postgres://user@host:5432/db`). Unset: embedded PGlite store in `DATA_DIR`.',
  },
  { name: 'DATA_DIR', key: 'dataDir', type: 'string', default: './data', description: 'Directory of the embedded PGlite database.' },
  { name: 'DB_POOL_MAX', key: 'dbPoolMax', type: 'integer', default: '10', min: 1, max: 500, description: 'Size of the PostgreSQL connection pool.' },
  {
    name: 'DEMO_DATA',
    key: 'demoData',
    type: 'boolean',
    default: 'auto',
    description: 'Load the demo county community into an empty database: `true`, `false`, or `auto` (only for the embedded store).',
  },
  { name: 'PROFILES_DIR', key: 'profilesDir', type: 'string', default: './profiles', description: 'StructureDefinitions and SearchParameters loaded at start.' },
  {
    name: 'LOG_LEVEL',
    key: 'logLevel',
    type: 'string',
    default: 'info',
    enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    description: 'pino log level.',
  },
  { name: 'BODY_LIMIT', key: 'bodyLimit', type: 'integer', default: '5242880', min: 1024, description: 'Largest accepted request body, in bytes (default 5 MiB).' },
  { name: 'DEFAULT_PAGE_SIZE', key: 'defaultPageSize', type: 'integer', default: '20', min: 1, max: 1000, description: 'Search page size when `_count` is absent.' },
  { name: 'MAX_PAGE_SIZE', key: 'maxPageSize', type: 'integer', default: '1000', min: 1, max: 10000, description: 'Largest `_count` honoured; larger values are lowered to it.' },
  { name: 'MAX_INCLUDES', key: 'maxIncludes', type: 'integer', default: '5000', min: 0, description: 'Most resources `_include`/`_revinclude` may add to one page.' },
  {
    name: 'CLIENTS_FILE',
    key: 'clientsFile',
    type: 'string',
    description: 'JSON file of the registered OAuth2 clients (secrets as scrypt hashes, or JWKS). Unset: the demo clients in `demo/clients.json`, with a warning.',
  },
  {
    name: 'AUTH_SIGNING_KEY',
    key: 'authSigningKey',
    type: 'string',
    description: 'Private key signing access tokens, as a JWK (JSON, EC P-256 or RSA) or PKCS#8 PEM; share it between instances. Unset: a key generated at start (tokens do not survive a restart).',
  },
  { name: 'TOKEN_TTL_SECONDS', key: 'tokenTtlSeconds', type: 'integer', default: '300', min: 30, max: 86400, description: 'Lifetime of issued access tokens, in seconds.' },
  {
    name: 'REDIS_URL',
    key: 'redisUrl',
    type: 'url',
    description: 'Redis (`redis://host:6379`) shared by several gateway instances: rate limits, and subscription delivery through a stream with a consumer group. Unset: in process.',
  },
  {
    name: 'REDIS_KEY_PREFIX',
    key: 'redisKeyPrefix',
    type: 'string',
    default: 'county-hie:',
    description: 'Prefix of every Redis key the gateway uses; the instances of one gateway share it, another gateway on the same Redis takes its own.',
  },
  { name: 'RATE_LIMIT_MAX', key: 'rateLimitMax', type: 'integer', default: '60000', min: 0, description: 'Requests one client may make per window (0: no limit).' },
  { name: 'RATE_LIMIT_WINDOW_MS', key: 'rateLimitWindowMs', type: 'integer', default: '60000', min: 1000, description: 'Length of the rate-limit window, in milliseconds.' },
  {
    name: 'AUDIT_HASH',
    key: 'auditHash',
    type: 'string',
    default: 'auto',
    enum: ['auto', 'sm3', 'sha256'],
    description: 'Digest of the audit trail hash chains: `sm3` (GB/T 32905), `sha256`, or `auto` (SM3 when the runtime has it, else SHA-256).',
  },
  {
    name: 'AUDIT_CHAINS',
    key: 'auditChains',
    type: 'integer',
    default: '8',
    min: 1,
    max: 256,
    description: 'Independent audit hash chains; transactions append to different chains so that auditing does not serialise writes. About the number of concurrent writers.',
  },
  {
    name: 'AUDIT_RETENTION_MONTHS',
    key: 'auditRetentionMonths',
    type: 'integer',
    default: '180',
    min: 6,
    max: 1200,
    description: 'Months of audit records kept before whole monthly partitions are dropped. At least 6 (Cybersecurity Law art. 21: network logs kept no less than six months); default 180 (15 years, the outpatient record period).',
  },
  {
    name: 'SUBSCRIPTION_EVENT_RETENTION_DAYS',
    key: 'subscriptionEventRetentionDays',
    type: 'integer',
    default: '30',
    min: 1,
    max: 3650,
    description: 'Days a subscription event is kept after it was delivered, for `$events`. An event not yet delivered is kept however old. Pruned at start and daily.',
  },
  {
    name: 'HL7_DUPLICATE_WINDOW_DAYS',
    key: 'hl7DuplicateWindowDays',
    type: 'integer',
    default: '90',
    min: 1,
    max: 3650,
    description: 'Days an HL7 v2 message control id (MSH-10, per sender) is remembered, so that a resent message is acknowledged again without being stored twice. Pruned at start and daily.',
  },
  {
    name: 'DEAD_LETTER_RETENTION_DAYS',
    key: 'deadLetterRetentionDays',
    type: 'integer',
    default: '180',
    min: 1,
    max: 3650,
    description: 'Days a dead letter is kept after it was replayed or discarded. A dead letter still waiting is kept however old. Pruned at start and daily.',
  },
  {
    name: 'TERMINOLOGY_DIR',
    key: 'terminologyDir',
    type: 'string',
    default: './mappings/terminology',
    description: 'ConceptMap JSON files (local lab, diagnosis and exam codes → LOINC / ICD-10) loaded and checked at start; a bad file stops start-up.',
  },
  {
    name: 'MLLP_PORT',
    key: 'mllpPort',
    type: 'integer',
    default: '2575',
    min: 0,
    max: 65535,
    description: 'Port of the MLLP listener receiving HL7 v2 messages (2575 is the IANA port for HL7 over MLLP). `0`: no MLLP listener.',
  },
  { name: 'MLLP_HOST', key: 'mllpHost', type: 'string', default: '127.0.0.1', description: 'Interface the MLLP listener binds to.' },
  { name: 'MLLP_TLS_KEY_FILE', key: 'mllpTlsKeyFile', type: 'string', description: 'PEM private key of the MLLP listener; with `MLLP_TLS_CERT_FILE`, MLLP runs over TLS.' },
  { name: 'MLLP_TLS_CERT_FILE', key: 'mllpTlsCertFile', type: 'string', description: 'PEM certificate (chain) of the MLLP listener; with `MLLP_TLS_KEY_FILE`, MLLP runs over TLS.' },
  {
    name: 'MLLP_MAX_FRAME_BYTES',
    key: 'mllpMaxFrameBytes',
    type: 'integer',
    default: '10485760',
    min: 1024,
    description: 'Largest HL7 v2 message accepted over MLLP, in bytes (default 10 MiB); a larger one is refused with an AR and the connection closed.',
  },
  {
    name: 'MLLP_IDLE_TIMEOUT_MS',
    key: 'mllpIdleTimeoutMs',
    type: 'integer',
    default: '600000',
    min: 0,
    description: 'An MLLP connection with no traffic (and no message being processed) for this long is closed; senders reconnect. `0`: never.',
  },
  {
    name: 'HL7_SENDERS_FILE',
    key: 'hl7SendersFile',
    type: 'string',
    description: 'JSON file of the HL7 v2 sending systems: MSH-3/MSH-4 bound to a member institution, default charset, allowed MLLP ports and HTTP client. Unset: the demo senders in `demo/hl7-senders.json`.',
  },
  {
    name: 'HL7_SPOOL_DIR',
    key: 'hl7SpoolDir',
    type: 'string',
    default: './data/hl7-spool',
    description: 'Local directory keeping HL7 dead letters while the database is unreachable; moved into the database when it answers again. Use a persistent volume.',
  },
  {
    name: 'HL7_MAPPINGS_DIR',
    key: 'hl7MappingsDir',
    type: 'string',
    default: './mappings/hl7v2',
    description: 'HL7 v2 mapping files (message, segment and data-type templates, site overrides), checked at start; a bad file stops start-up.',
  },
  {
    name: 'EXTRACT_MAPPINGS_DIR',
    key: 'extractMappingsDir',
    type: 'string',
    default: './mappings/extract',
    description: 'Column declarations of HIS database extracts (one JSON file per kind, with extract.schema.json), checked at start; a bad file stops start-up.',
  },
  {
    name: 'RECOGNITION_CATALOGUE',
    key: 'recognitionCatalogue',
    type: 'string',
    default: './mappings/recognition/catalogue.json',
    description: 'The mutual-recognition catalogue (items, validity windows, scopes, prices, versions by effective date), checked at start; a bad file stops start-up.',
  },
  {
    name: 'REFERRAL_LEVELS_FILE',
    key: 'referralLevelsFile',
    type: 'string',
    default: './mappings/referral/levels.json',
    description: 'The graded-diagnosis catalogue of referrals (which ICD-10 ranges each level treats, the open-referral deadline), checked at start; a bad file stops start-up.',
  },
  {
    name: 'SUBSCRIPTION_ALLOWED_HOSTS',
    key: 'subscriptionAllowedHosts',
    type: 'string',
    description:
      'Comma-separated hosts (`host` or `host:port`) that rest-hook subscriptions may call although they use plain http or a private network address. Unset: only https endpoints at public addresses.',
  },
  {
    name: 'SUBSCRIPTION_MAX_FAILURES',
    key: 'subscriptionMaxFailures',
    type: 'integer',
    default: '10',
    min: 1,
    description: 'Consecutive failed deliveries after which a subscription goes to status `error` (the subscriber catches up with `$events` and sets it back to `requested`).',
  },
  {
    name: 'SUBSCRIPTION_BACKOFF_BASE_MS',
    key: 'subscriptionBackoffBaseMs',
    type: 'integer',
    default: '1000',
    min: 1,
    description: 'Delay before the first retry of a failed notification; doubled on each further failure, with random jitter.',
  },
  { name: 'SUBSCRIPTION_BACKOFF_MAX_MS', key: 'subscriptionBackoffMaxMs', type: 'integer', default: '300000', min: 1, description: 'Longest delay between two delivery attempts.' },
  {
    name: 'SUBSCRIPTION_TIMEOUT_MS',
    key: 'subscriptionTimeoutMs',
    type: 'integer',
    default: '10000',
    min: 100,
    description: 'Time a rest-hook call may take (connect, response headers, body) unless the subscription sets a shorter `backport-timeout`.',
  },
  {
    name: 'SUBSCRIPTION_HEARTBEAT_SECONDS',
    key: 'subscriptionHeartbeatSeconds',
    type: 'integer',
    default: '0',
    min: 0,
    description: 'Heartbeat period of subscriptions that set no `backport-heartbeat-period`; `0`: none for them.',
  },
  { name: 'SUBSCRIPTION_POLL_MS', key: 'subscriptionPollMs', type: 'integer', default: '100', min: 10, description: 'How often each instance looks for notifications to deliver.' },
  {
    name: 'SUBSCRIPTION_LEASE_MS',
    key: 'subscriptionLeaseMs',
    type: 'integer',
    default: '30000',
    min: 500,
    description: 'How long one instance owns a subscription\'s delivery without renewing it; the work of a crashed instance is taken over after this.',
  },
  {
    name: 'MPI_AUTO_LINK_WEIGHT',
    key: 'mpiAutoLinkWeight',
    type: 'integer',
    default: '10',
    min: 1,
    max: 40,
    description: 'Master patient index: a record whose match weight with a known person (name 5–6, birth date 5, phone 3, address 1.5, sex 0.5; disagreements subtract) reaches this is linked to that person automatically.',
  },
  {
    name: 'MPI_REVIEW_WEIGHT',
    key: 'mpiReviewWeight',
    type: 'integer',
    default: '6',
    min: 0,
    max: 40,
    description: 'Master patient index: a weight from this up to `MPI_AUTO_LINK_WEIGHT` starts a person of its own and queues a review Task (`Task?code=review-link`); below it, a new person.',
  },
  {
    name: 'CONSOLE_IDLE_MINUTES',
    key: 'consoleIdleMinutes',
    type: 'integer',
    default: '15',
    min: 1,
    max: 1440,
    description: 'A console session (`/console`, login cookie) with no request for this many minutes ends; the operator logs in again.',
  },
  {
    name: 'CONSOLE_SESSION_HOURS',
    key: 'consoleSessionHours',
    type: 'integer',
    default: '8',
    min: 1,
    max: 24,
    description: 'A console session ends this many hours after login, however active.',
  },
  {
    name: 'FEED_STALE_MINUTES',
    key: 'feedStaleMinutes',
    type: 'integer',
    default: '60',
    min: 1,
    description: 'A feed that sent messages in the last day but nothing for this many minutes is flagged stale in `GET /ingest/feeds` (the feeds screen of the console).',
  },
];

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function schemaFor(v: EnvVar): Record<string, unknown> {
  switch (v.type) {
    case 'integer':
      return { type: 'string', pattern: '^[0-9]+$' };
    case 'boolean':
      return { type: 'string', enum: ['true', 'false', 'auto', '1', '0'] };
    case 'url':
      return { type: 'string', pattern: '^[a-zA-Z][a-zA-Z0-9+.-]*://' };
    default:
      return v.enum ? { type: 'string', enum: v.enum } : { type: 'string', minLength: 1 };
  }
}

const ajv = new Ajv({ allErrors: true });
const validateEnv = ajv.compile({
  type: 'object',
  properties: Object.fromEntries(ENV_VARS.map((v) => [v.name, schemaFor(v)])),
});

function describeError(e: ErrorObject, env: Record<string, string | undefined>): string {
  const name = e.instancePath.replace(/^\//, '');
  const v = ENV_VARS.find((x) => x.name === name);
  const got = JSON.stringify(env[name]);
  if (v?.type === 'integer') return `${name}=${got} is not a whole number`;
  if (v?.type === 'boolean') return `${name}=${got} must be true, false or auto`;
  if (v?.type === 'url') return `${name}=${got} is not a URL (expected scheme://...)`;
  if (v?.enum) return `${name}=${got} must be one of ${v.enum.join(', ')}`;
  return `${name}=${got} ${e.message ?? 'is invalid'}`;
}

/** Reads, validates and freezes the configuration. Throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present: Record<string, string> = {};
  for (const v of ENV_VARS) {
    const raw = env[v.name];
    if (raw !== undefined && raw !== '') present[v.name] = raw;
  }
  const problems: string[] = [];
  if (!validateEnv(present)) {
    for (const e of validateEnv.errors ?? []) problems.push(describeError(e, present));
  }
  const values: Record<string, unknown> = {};
  for (const v of ENV_VARS) {
    const raw = present[v.name] ?? v.default;
    if (raw === undefined) {
      values[v.key] = undefined;
      continue;
    }
    if (v.type === 'integer') {
      const n = Number(raw);
      if (Number.isSafeInteger(n)) {
        if (v.min !== undefined && n < v.min) problems.push(`${v.name}=${n} is below the minimum ${v.min}`);
        if (v.max !== undefined && n > v.max) problems.push(`${v.name}=${n} is above the maximum ${v.max}`);
      }
      values[v.key] = n;
    } else if (v.type === 'boolean') {
      values[v.key] = raw;
    } else {
      values[v.key] = raw;
    }
  }
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  const databaseUrl = values.databaseUrl as string | undefined;
  const demo = String(values.demoData);
  const config: Config = {
    ...(values as unknown as Config),
    baseUrl: String(values.baseUrl ?? `http://${String(values.host)}:${String(values.port)}`).replace(/\/+$/, ''),
    demoData: demo === 'auto' ? databaseUrl === undefined : demo === 'true' || demo === '1',
    subscriptionAllowedHosts: String(values.subscriptionAllowedHosts ?? '')
      .split(',')
      .map((h) => h.trim())
      .filter((h) => h !== ''),
  };
  if (config.maxPageSize < config.defaultPageSize) {
    throw new ConfigError([`DEFAULT_PAGE_SIZE=${config.defaultPageSize} is above MAX_PAGE_SIZE=${config.maxPageSize}`]);
  }
  if (config.mpiReviewWeight >= config.mpiAutoLinkWeight) {
    throw new ConfigError([`MPI_REVIEW_WEIGHT=${config.mpiReviewWeight} must be below MPI_AUTO_LINK_WEIGHT=${config.mpiAutoLinkWeight}`]);
  }
  if ((config.mllpTlsKeyFile === undefined) !== (config.mllpTlsCertFile === undefined)) {
    throw new ConfigError(['MLLP_TLS_KEY_FILE and MLLP_TLS_CERT_FILE must be set together']);
  }
  return Object.freeze(config);
}
