/**
 * The registry of OAuth2 clients (the HIS of each member institution, the regional platform,
 * auditors, administrators), read from CLIENTS_FILE and checked at start: a bad entry fails
 * start-up with a message naming the entry and the field.
 *
 * File shape: `{ "clients": [ { clientId, name, institution?, scopes, secretHash?, jwks?, role?,
 * subordinates?, disabled?, comment? } ], "operators"?: [ { username, name, client, secretHash,
 * disabled?, comment? } ] }`. Secrets are stored only as scrypt hashes (scripts/hash-secret.ts);
 * `jwks` holds the public keys of a private_key_jwt client. An operator is a person who logs in
 * to the web console with a username and password and acts as the named client, recorded by name
 * as the user of everything the session does.
 */
import { describeRegistryError, USCC_HINT, type RegistryShape } from '../registry-errors.js';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import { importJWK, type JWK } from 'jose';
import { parseSecretHash, SECRET_HASH_PATTERN } from './secrets.js';
import { normalizeScope } from './scopes.js';

/** Algorithms a client may sign its assertion with (SMART Backend Services). */
export const ASSERTION_ALGORITHMS = ['RS384', 'ES384'] as const;

export interface ClientJwks {
  readonly keys: readonly JWK[];
}

export interface Client {
  readonly clientId: string;
  readonly name: string;
  /** Unified social credit code of the member institution the client acts for. */
  readonly institution?: string;
  /** Allowed scopes, normalised to SMART v2. */
  readonly scopes: readonly string[];
  readonly secretHash?: string;
  readonly jwks?: ClientJwks;
  /** `his`, `platform`, `auditor`, `admin`, … */
  readonly role?: string;
  /** The client may also write for the institutions under its own. */
  readonly subordinates?: boolean;
  /** A disabled client authenticates but gets no token (unauthorized_client). */
  readonly disabled?: boolean;
}

/** A person with a console login, acting as one registered client. */
export interface Operator {
  readonly username: string;
  readonly name: string;
  /** The client the operator acts as (its role, institution and scopes). */
  readonly client: string;
  readonly secretHash: string;
  /** A disabled operator cannot log in. */
  readonly disabled?: boolean;
}

export interface ClientRegistry {
  get(clientId: string): Client | undefined;
  readonly clients: readonly Client[];
  operator(username: string): Operator | undefined;
}

export class ClientsFileError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`Invalid clients file ${source}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ClientsFileError';
  }
}

/** The demo community's clients, used when CLIENTS_FILE is not set. */
export const DEMO_CLIENTS_URL = new URL('../../demo/clients.json', import.meta.url);

const CLIENT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
/** GB 32100-2015: 18 characters from digits and capital letters without I, O, S, V, Z. */
export const USCC_PATTERN = '^[0-9A-HJ-NPQRTUWXY]{18}$';

const FILE_SCHEMA = {
  type: 'object',
  required: ['clients'],
  additionalProperties: false,
  properties: {
    $comment: { type: 'string' },
    comment: { type: 'string' },
    clients: {
      type: 'array',
      items: {
        type: 'object',
        required: ['clientId', 'name', 'scopes'],
        additionalProperties: false,
        properties: {
          clientId: { type: 'string', pattern: CLIENT_ID_PATTERN },
          name: { type: 'string', minLength: 1 },
          institution: { type: 'string', pattern: USCC_PATTERN },
          scopes: { type: 'array', items: { type: 'string', minLength: 1 } },
          secretHash: { type: 'string', pattern: SECRET_HASH_PATTERN },
          jwks: {
            type: 'object',
            required: ['keys'],
            properties: { keys: { type: 'array', minItems: 1, items: { type: 'object', required: ['kty'] } } },
          },
          role: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,31}$' },
          subordinates: { type: 'boolean' },
          disabled: { type: 'boolean' },
          comment: { type: 'string' },
        },
      },
    },
    operators: {
      type: 'array',
      items: {
        type: 'object',
        required: ['username', 'name', 'client', 'secretHash'],
        additionalProperties: false,
        properties: {
          username: { type: 'string', pattern: CLIENT_ID_PATTERN },
          name: { type: 'string', minLength: 1 },
          client: { type: 'string', pattern: CLIENT_ID_PATTERN },
          secretHash: { type: 'string', pattern: SECRET_HASH_PATTERN },
          disabled: { type: 'boolean' },
          comment: { type: 'string' },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true });
const validateFile = ajv.compile(FILE_SCHEMA);

interface RawFile {
  clients: Array<Client & { comment?: string; scopes: string[] }>;
  operators?: Array<Operator & { comment?: string }>;
}

function entryName(data: unknown, index: number): string {
  const id = (data as RawFile | undefined)?.clients?.[index]?.clientId;
  return typeof id === 'string' ? `client #${index} ("${id}")` : `client #${index}`;
}

const CLIENTS_SHAPE: RegistryShape = {
  list: 'clients',
  noun: 'client',
  idField: 'clientId',
  patternHints: { institution: USCC_HINT, secretHash: 'must be scrypt$N$r$p$salt$hash as printed by scripts/hash-secret.ts' },
};

function describe(e: ErrorObject, data: unknown): string {
  return describeRegistryError(e, data, CLIENTS_SHAPE);
}

async function checkJwk(jwk: JWK): Promise<string | undefined> {
  if ('d' in jwk || 'p' in jwk || 'k' in jwk) return 'is a private or symmetric key; register only the public key';
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') return `has kty "${String(jwk.kty)}"; expected RSA or EC`;
  if (jwk.kty === 'EC' && jwk.crv !== 'P-384') return `has crv "${String(jwk.crv)}"; ES384 needs P-384`;
  const alg = jwk.kty === 'RSA' ? 'RS384' : 'ES384';
  if (jwk.alg !== undefined && jwk.alg !== alg) return `has alg "${jwk.alg}"; expected ${alg}`;
  try {
    const key = await importJWK({ ...jwk, alg }, alg);
    const modulus = (key as { algorithm?: { modulusLength?: number } }).algorithm ?? {};
    if (jwk.kty === 'RSA' && (modulus.modulusLength ?? 0) < 2048) return 'is an RSA key shorter than 2048 bits';
  } catch (e) {
    return `cannot be imported: ${(e as Error).message}`;
  }
  return undefined;
}

/** Validates parsed clients-file JSON and builds the registry. `source` names the file in errors. */
export async function parseClients(data: unknown, source: string): Promise<ClientRegistry> {
  if (!validateFile(data)) {
    throw new ClientsFileError(source, (validateFile.errors ?? []).map((e) => describe(e, data)));
  }
  const problems: string[] = [];
  const byId = new Map<string, Client>();
  const raw = data as unknown as RawFile;
  for (const [i, c] of raw.clients.entries()) {
    const where = entryName(data, i);
    if (byId.has(c.clientId)) problems.push(`${where} repeats the clientId of an earlier entry`);
    if (c.secretHash === undefined && c.jwks === undefined) problems.push(`${where} needs "secretHash" or "jwks" to authenticate`);
    if (c.secretHash !== undefined) {
      const parsed = parseSecretHash(c.secretHash);
      if (typeof parsed === 'string') problems.push(`${where}, field "secretHash" ${parsed}`);
    }
    const scopes: string[] = [];
    for (const [j, s] of c.scopes.entries()) {
      const n = normalizeScope(s);
      const resident = c.role === 'resident';
      if (n === undefined) problems.push(`${where}, field "scopes.${j}" "${s}" is not a system scope (system/<Type|*>.<cruds>, or v1 .read/.write)`);
      else if (n.startsWith('patient/') && !resident) problems.push(`${where}, field "scopes.${j}" "${s}" is a patient scope: only a resident app (role "resident") may have one`);
      else if (n.startsWith('system/') && resident) problems.push(`${where}, field "scopes.${j}" "${s}" is a system scope: a resident app has patient scopes only`);
      else scopes.push(n);
    }
    for (const [j, k] of (c.jwks?.keys ?? []).entries()) {
      const problem = await checkJwk(k);
      if (problem) problems.push(`${where}, field "jwks.keys.${j}" ${problem}`);
    }
    const { comment: _comment, ...rest } = c;
    byId.set(c.clientId, Object.freeze({ ...rest, scopes: Object.freeze([...new Set(scopes)]) }));
  }
  const operators = new Map<string, Operator>();
  for (const [i, o] of (raw.operators ?? []).entries()) {
    const where = `operator #${i} ("${o.username}")`;
    if (operators.has(o.username)) problems.push(`${where} repeats the username of an earlier operator`);
    const client = byId.get(o.client);
    if (!client) problems.push(`${where}, field "client" "${o.client}" is not a registered client`);
    else if (client.role === 'resident') problems.push(`${where}, field "client" "${o.client}" is a resident app; an operator acts as a system client`);
    const parsed = parseSecretHash(o.secretHash);
    if (typeof parsed === 'string') problems.push(`${where}, field "secretHash" ${parsed}`);
    const { comment: _comment, ...rest } = o;
    operators.set(o.username, Object.freeze(rest));
  }
  if (problems.length > 0) throw new ClientsFileError(source, problems);
  const clients = Object.freeze([...byId.values()]);
  return { get: (id) => byId.get(id), clients, operator: (username) => operators.get(username) };
}

/** Reads and validates a clients file. */
export async function loadClients(file: string | URL): Promise<ClientRegistry> {
  const source = file instanceof URL ? fileURLToPath(file) : file;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ClientsFileError(source, [`cannot be read: ${(e as Error).message}`]);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ClientsFileError(source, [`is not valid JSON: ${(e as Error).message}`]);
  }
  return parseClients(data, source);
}

/** The configured clients, or the demo clients with a warning when CLIENTS_FILE is not set. */
export async function loadConfiguredClients(
  config: { readonly clientsFile: string | undefined },
  logger: { warn(obj: object, msg: string): void },
): Promise<ClientRegistry> {
  if (config.clientsFile) return loadClients(config.clientsFile);
  logger.warn(
    { clientsFile: fileURLToPath(DEMO_CLIENTS_URL) },
    'CLIENTS_FILE is not set: using the demo clients, whose secrets are public; set CLIENTS_FILE in production',
  );
  return loadClients(DEMO_CLIENTS_URL);
}
