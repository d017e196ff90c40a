/**
 * Synthetic data for the benchmarks, loaded through the FHIR API as transaction Bundles (the
 * gateway's one write path). Falls back to one POST per resource if transactions are refused.
 * Every identifier is a well-formed, made-up resident ID card number.
 */
export const ID_CARD_SYSTEM = 'urn:oid:2.16.156.10011.1.3';

/** Observation codes the seed spreads over: code + display + unit. */
export const OBSERVATION_CODES = [
  ['8867-4', 'Heart rate', '/min', 60, 100],
  ['8480-6', 'Systolic blood pressure', 'mm[Hg]', 100, 160],
  ['8462-4', 'Diastolic blood pressure', 'mm[Hg]', 60, 100],
  ['8310-5', 'Body temperature', 'Cel', 36, 39],
  ['29463-7', 'Body weight', 'kg', 40, 100],
  ['8302-2', 'Body height', 'cm', 145, 190],
  ['2339-0', 'Glucose [Mass/volume] in Blood', 'mg/dL', 70, 200],
  ['718-7', 'Hemoglobin [Mass/volume] in Blood', 'g/dL', 10, 17],
  ['4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood', '%', 4, 10],
  ['2093-3', 'Cholesterol [Mass/volume] in Serum or Plasma', 'mg/dL', 120, 280],
] as const;

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/** GB 11643-1999 check character of the first 17 digits. */
function checkChar(first17: string): string {
  const sum = [...first17].reduce((s, d, i) => s + Number(d) * WEIGHTS[i], 0);
  return '10X98765432'[sum % 11];
}

/** A distinct, well-formed ID card number for every n below 25 million (a run-specific offset avoids clashes). */
export function idCardNumber(n: number): string {
  const day = n % 25_000;
  const seq = Math.floor(n / 25_000) % 1000;
  const birth = new Date(Date.UTC(1940, 0, 1) + day * 86_400_000);
  const ymd = birth.toISOString().slice(0, 10).replace(/-/g, '');
  const first17 = `511702${ymd}${String(seq).padStart(3, '0')}`;
  return first17 + checkChar(first17);
}

const FAMILY = ['王', '李', '张', '刘', '陈', '杨', '赵', '黄', '周', '吴'];
const GIVEN = ['伟', '芳', '娜', '秀英', '敏', '静', '丽', '强', '磊', '军', '洋', '勇'];

/** Family name of the n-th generated patient. */
export function patientFamily(n: number): string {
  return FAMILY[n % FAMILY.length];
}

export function patient(n: number): Record<string, unknown> {
  const id = idCardNumber(n);
  return {
    resourceType: 'Patient',
    identifier: [{ system: ID_CARD_SYSTEM, value: id }],
    name: [{ use: 'official', family: patientFamily(n), given: [GIVEN[Math.floor(n / FAMILY.length) % GIVEN.length]] }],
    gender: n % 2 === 0 ? 'female' : 'male',
    birthDate: `${id.slice(6, 10)}-${id.slice(10, 12)}-${id.slice(12, 14)}`,
  };
}

export function observation(n: number, patientId: string): Record<string, unknown> {
  const [code, display, unit, low, high] = OBSERVATION_CODES[n % OBSERVATION_CODES.length];
  const value = Math.round((low + ((n * 7919) % 1000) / 1000 * (high - low)) * 10) / 10;
  const day = new Date(Date.UTC(2024, 0, 1) + (n % 365) * 86_400_000).toISOString().slice(0, 10);
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: code.startsWith('8') || code === '29463-7' ? 'vital-signs' : 'laboratory' }] }],
    code: { coding: [{ system: 'http://loinc.org', code, display }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: `${day}T08:00:00+08:00`,
    valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
  };
}

const FHIR_JSON = 'application/fhir+json';

async function post(url: string, body: unknown, authorization: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON, authorization }, body: JSON.stringify(body) });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { text: text.slice(0, 500) };
  }
  return { status: res.status, json };
}

/** `Patient/abc/_history/1` or `http://host/fhir/Patient/abc/_history/1` → `abc`. */
function idFromLocation(location: unknown, resourceType: string): string | undefined {
  if (typeof location !== 'string') return undefined;
  const m = new RegExp(`(?:^|/)${resourceType}/([A-Za-z0-9\\-.]{1,64})(?:/_history/|$)`).exec(location);
  return m?.[1];
}

async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export interface Seeder {
  /** Creates the resources, returning their ids in order. */
  create(resources: readonly Record<string, unknown>[]): Promise<string[]>;
  readonly mode: 'transaction' | 'single';
}

/**
 * Writes through transaction Bundles of `batch` entries; if the first Bundle is refused, warns
 * and writes one resource per POST instead, so the read and search workloads can still run.
 */
export function createSeeder(fhirBase: string, options: { batch: number; concurrency: number; authorization: string }): Seeder {
  let mode: 'transaction' | 'single' = 'transaction';

  async function single(resource: Record<string, unknown>): Promise<string> {
    const type = String(resource.resourceType);
    const { status, json } = await post(`${fhirBase}/${type}`, resource, options.authorization);
    const id = typeof json.id === 'string' ? json.id : undefined;
    if (status !== 201 || !id) throw new Error(`POST ${type} answered ${status}: ${JSON.stringify(json).slice(0, 500)}`);
    return id;
  }

  async function transaction(chunk: readonly Record<string, unknown>[]): Promise<string[] | undefined> {
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: chunk.map((resource, i) => ({
        fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        resource,
        request: { method: 'POST', url: String(resource.resourceType) },
      })),
    };
    let { status, json } = await post(fhirBase, bundle, options.authorization);
    // A conflict between concurrent Bundles (or a busy database) asks the client to retry.
    for (let attempt = 1; (status === 409 || status === 503) && attempt <= 8; attempt++) {
      await new Promise((r) => setTimeout(r, 100 * attempt + Math.random() * 200));
      ({ status, json } = await post(fhirBase, bundle, options.authorization));
    }
    if (status !== 200) {
      if (mode === 'transaction') console.warn(`transaction Bundle refused (${status}): ${JSON.stringify(json).slice(0, 300)}; falling back to single POSTs`);
      return undefined;
    }
    const entries = (json.entry ?? []) as { response?: { location?: string }; resource?: { id?: string } }[];
    const ids = entries.map((e, i) => e.resource?.id ?? idFromLocation(e.response?.location, String(chunk[i].resourceType)));
    if (ids.length !== chunk.length || ids.some((id) => !id)) throw new Error(`transaction response lacks ids: ${JSON.stringify(json).slice(0, 500)}`);
    return ids as string[];
  }

  return {
    get mode() {
      return mode;
    },
    async create(resources) {
      const ids: string[] = new Array(resources.length);
      const chunks: { start: number; items: readonly Record<string, unknown>[] }[] = [];
      for (let start = 0; start < resources.length; start += options.batch) chunks.push({ start, items: resources.slice(start, start + options.batch) });
      if (mode === 'transaction' && chunks.length > 0) {
        const first = await transaction(chunks[0].items);
        if (first) {
          first.forEach((id, i) => (ids[i] = id));
          chunks.shift();
        } else {
          mode = 'single';
        }
      }
      if (mode === 'transaction') {
        await inParallel(chunks, options.concurrency, async ({ start, items }) => {
          const got = await transaction(items);
          if (!got) throw new Error('transaction Bundle refused after earlier ones were accepted');
          got.forEach((id, i) => (ids[start + i] = id));
        });
        return ids;
      }
      const indexes = resources.map((_, i) => i).filter((i) => ids[i] === undefined);
      await inParallel(indexes, options.concurrency * 4, async (i) => {
        ids[i] = await single(resources[i]);
      });
      return ids;
    },
  };
}
