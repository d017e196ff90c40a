/**
 * The HL7 v2 sending systems of the community: each (MSH-3 sending application, MSH-4 sending
 * facility) pair is bound to one member institution, so that a message is written with that
 * institution's rights and no other. Loaded from a JSON file (HL7_SENDERS_FILE, default the demo
 * file) and checked with a JSON Schema at start: a bad file fails start-up.
 */
import { describeRegistryError, USCC_HINT } from '../registry-errors.js';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';

export type SenderCharset = 'UTF-8' | 'GBK' | 'GB18030';

export interface Sender {
  readonly id: string;
  /** MSH-3 (namespace id, first component). */
  readonly sendingApplication: string;
  /** MSH-4 (namespace id, first component). */
  readonly sendingFacility: string;
  /** USCC code of the member institution the sender writes for. */
  readonly institution: string;
  /** Character set of messages without MSH-18. */
  readonly defaultCharset: SenderCharset;
  /** When set, MLLP messages are accepted only on these local ports. */
  readonly mllpPorts?: readonly number[];
  /** The OAuth client allowed to post as this sender over HTTP; without it, HTTP ingest is refused. */
  readonly clientId?: string;
  /** Accepted MSH-9 types (`ORU^R01`); without it, every type the mappings know. */
  readonly messageTypes?: readonly string[];
}

export interface SenderRegistry {
  readonly senders: readonly Sender[];
  byId(id: string): Sender | undefined;
  /** The sender registered for an MSH-3 / MSH-4 pair. */
  find(sendingApplication: string, sendingFacility: string): Sender | undefined;
}

/** How a message arrived. */
export interface Origin {
  readonly channel: 'mllp' | 'http';
  readonly remoteAddress?: string;
  /** Local MLLP port the message came in on. */
  readonly localPort?: number;
  /** OAuth client of an HTTP post. */
  readonly clientId?: string;
}

export const DEMO_SENDERS_URL = new URL('../../demo/hl7-senders.json', import.meta.url);

const ID = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const USCC = '^[0-9A-HJ-NPQRTUWXY]{18}$';

const FILE_SCHEMA = {
  type: 'object',
  required: ['senders'],
  additionalProperties: false,
  properties: {
    comment: { type: 'string' },
    senders: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'sendingApplication', 'sendingFacility', 'institution', 'defaultCharset'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', pattern: ID },
          sendingApplication: { type: 'string', minLength: 1, maxLength: 227 },
          sendingFacility: { type: 'string', minLength: 1, maxLength: 227 },
          institution: { type: 'string', pattern: USCC },
          defaultCharset: { enum: ['UTF-8', 'GBK', 'GB18030'] },
          mllpPorts: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1, maximum: 65535 } },
          clientId: { type: 'string', pattern: ID },
          messageTypes: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[A-Z0-9]{3}\\^[A-Z0-9]{3}$' } },
          comment: { type: 'string' },
        },
      },
    },
  },
} as const;

const validateFile = new Ajv({ allErrors: true }).compile(FILE_SCHEMA);

export class SendersFileError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`HL7 senders file ${source} is invalid:\n  - ${problems.join('\n  - ')}`);
    this.name = 'SendersFileError';
  }
}

function describe(e: ErrorObject, data: unknown): string {
  return describeRegistryError(e, data, { list: 'senders', noun: 'sender', idField: 'id', patternHints: { institution: USCC_HINT } });
}

const key = (app: string, facility: string) => `${app}\u0000${facility}`;

/** Checks a parsed senders file and builds the registry; throws SendersFileError listing every problem. */
export function parseSenders(data: unknown, source = 'senders file'): SenderRegistry {
  if (!validateFile(data)) throw new SendersFileError(source, (validateFile.errors ?? []).map((e) => describe(e, data)));
  const senders = (data as { senders: (Sender & { comment?: string })[] }).senders.map(({ comment: _c, ...s }) => Object.freeze(s) as Sender);
  const problems: string[] = [];
  const ids = new Map<string, Sender>();
  const pairs = new Map<string, Sender>();
  for (const s of senders) {
    if (ids.has(s.id)) problems.push(`sender id "${s.id}" appears twice`);
    ids.set(s.id, s);
    const k = key(s.sendingApplication, s.sendingFacility);
    const other = pairs.get(k);
    if (other) problems.push(`senders "${other.id}" and "${s.id}" both claim MSH-3 "${s.sendingApplication}" / MSH-4 "${s.sendingFacility}"`);
    pairs.set(k, s);
  }
  if (problems.length > 0) throw new SendersFileError(source, problems);
  return {
    senders: Object.freeze(senders),
    byId: (id) => ids.get(id),
    find: (app, facility) => pairs.get(key(app, facility)),
  };
}

/** Reads and checks a senders file (path or URL; default the demo senders). */
export async function loadSenders(file: string | URL = DEMO_SENDERS_URL): Promise<SenderRegistry> {
  const source = file instanceof URL ? fileURLToPath(file) : file;
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new SendersFileError(source, [`cannot be read as JSON: ${(e as Error).message}`]);
  }
  return parseSenders(data, source);
}

/** Why a message is refused before it is mapped (answered AR). */
export interface SenderRefusal {
  readonly reason: 'unknown-sender' | 'unbound-client' | 'wrong-port' | 'unsupported-type';
  readonly text: string;
}

/**
 * Identifies the sender of a message and checks that it may send it by this door: a known
 * MSH-3/MSH-4 pair; over HTTP, posted by the OAuth client bound to that sender; over MLLP, on
 * one of its ports when they are listed; a message type it is registered for.
 */
export function identifySender(
  registry: SenderRegistry,
  header: { sendingApplication: string; sendingFacility: string; messageType: string },
  origin: Origin,
): Sender | SenderRefusal {
  const sender = registry.find(header.sendingApplication, header.sendingFacility);
  if (!sender) {
    return { reason: 'unknown-sender', text: `Unknown sender: MSH-3 "${header.sendingApplication}" / MSH-4 "${header.sendingFacility}" is not registered` };
  }
  if (origin.channel === 'http' && (!sender.clientId || sender.clientId !== origin.clientId)) {
    return { reason: 'unbound-client', text: `Client "${origin.clientId ?? 'unknown'}" may not post messages of sender "${sender.id}"` };
  }
  if (origin.channel === 'mllp' && sender.mllpPorts && (origin.localPort === undefined || !sender.mllpPorts.includes(origin.localPort))) {
    return { reason: 'wrong-port', text: `Sender "${sender.id}" may not send on port ${origin.localPort ?? 'unknown'}` };
  }
  if (sender.messageTypes && !sender.messageTypes.includes(header.messageType)) {
    return { reason: 'unsupported-type', text: `Sender "${sender.id}" is not registered for message type ${header.messageType || '(none)'}` };
  }
  return sender;
}

export function isRefusal(x: Sender | SenderRefusal): x is SenderRefusal {
  return 'reason' in x;
}
