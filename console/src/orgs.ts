/** Names of the member institutions by USCC, for labels (read once per session when allowed). */
import { getJson } from './api';

const USCC = 'https://fhir.county-hie.cn/sid/uscc';
let cache: Promise<Map<string, string>> | undefined;

interface OrgBundle {
  entry?: { resource?: { name?: string; identifier?: { system?: string; value?: string }[] } }[];
}

export function institutionNames(): Promise<Map<string, string>> {
  cache ??= getJson<OrgBundle>('/fhir/Organization?_count=200&_elements=name,identifier').then(
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
