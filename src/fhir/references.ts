/**
 * Walking and rewriting the references inside a resource (urn:uuid: placeholders and
 * conditional references of transaction Bundles).
 */
import type { Resource } from '@medplum/fhirtypes';

/** A found `reference` string with the FHIRPath-like location it sits at. */
export interface FoundReference {
  readonly value: string;
  readonly path: string;
  readonly set: (v: string) => void;
}

/** Every Reference.reference string in the resource (contained resources included). */
export function findReferences(resource: Resource): FoundReference[] {
  const out: FoundReference[] = [];
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${path}[${i}]`));
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const obj = node as Record<string, unknown>;
    for (const [key, value] of Object.entries(obj)) {
      if (key === 'reference' && typeof value === 'string') {
        out.push({ value, path: `${path}.reference`, set: (v) => (obj.reference = v) });
      } else if (typeof value === 'object' && value !== null) {
        walk(value, `${path}.${key}`);
      }
    }
  };
  walk(resource, resource.resourceType);
  return out;
}

/** `Patient?identifier=...`: a conditional reference, resolved by search at write time. */
export function isConditionalReference(ref: string): boolean {
  return /^[A-Z][A-Za-z]+\?/.test(ref);
}
