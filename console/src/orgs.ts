/** Names of the member institutions by USCC, for labels (read once per session when allowed). */
import type { Bundle, Organization } from '@medplum/fhirtypes';
import { getJson } from './api';

const USCC = 'https://fhir.county-hie.cn/sid/uscc';
let cache: Promise<Map<string, string>> | undefined;

export function institutionNames(): Promise<Map<string, string>> {
  cache ??= getJson<Bundle<Organization>>('/fhir/Organization?_count=200&_elements=name,identifier').then(
    (b) => {
      const m = new Map<string, string>();
      for (const e of b.entry ?? []) {
        const code = e.resource?.identifier?.find((i) => i.system === USCC)?.value;
        if (code && e.resource?.name) m.set(code, e.resource.name);
      }
      return m;
    },
    () => new Map<string, string>(),
  );
  return cache;
}

export function forgetInstitutions(): void {
  cache = undefined;
}

export function nameOf(names: Map<string, string> | undefined, uscc: string): string {
  return names?.get(uscc) ?? (uscc || '—');
}
