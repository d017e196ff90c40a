/**
 * Wording of JSON Schema (ajv) errors in the registry files an integrator edits by hand (OAuth2
 * clients, HL7 senders), so that each names the entry and field to fix:
 * `client #2 ("county-his"), field "institution" must be an 18-character unified social credit code`.
 */
import type { ErrorObject } from 'ajv';

export interface RegistryShape {
  /** Top-level property holding the entries (`clients`, `senders`). */
  readonly list: string;
  /** How an entry is called in messages (`client`, `sender`). */
  readonly noun: string;
  /** The entry's identifying field (`clientId`, `id`). */
  readonly idField: string;
  /** Messages for pattern failures of particular fields, by field name. */
  readonly patternHints?: Readonly<Record<string, string>>;
}

export function describeRegistryError(e: ErrorObject, data: unknown, shape: RegistryShape): string {
  const parts = e.instancePath.split('/').slice(1);
  const hint = e.keyword === 'pattern' ? shape.patternHints?.[parts[2] ?? ''] : undefined;
  const detail =
    e.keyword === 'additionalProperties'
      ? `has unknown field "${String((e.params as { additionalProperty: string }).additionalProperty)}"`
      : e.keyword === 'required'
        ? `lacks required field "${String((e.params as { missingProperty: string }).missingProperty)}"`
        : (hint ?? e.message ?? 'is invalid');
  if (parts[0] !== shape.list || parts.length < 2) return `${e.instancePath || 'file'} ${detail}`;
  const entries = (data as Record<string, unknown> | undefined)?.[shape.list];
  const id = Array.isArray(entries) ? (entries[Number(parts[1])] as Record<string, unknown> | undefined)?.[shape.idField] : undefined;
  const field = parts.slice(2).join('.');
  return `${shape.noun} #${parts[1]}${typeof id === 'string' ? ` ("${id}")` : ''}${field ? `, field "${field}"` : ''} ${detail}`;
}

export const USCC_HINT = 'must be an 18-character unified social credit code (统一社会信用代码)';
