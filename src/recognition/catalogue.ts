/**
 * The mutual-recognition catalogue (检查检验结果互认目录): which items are recognisable, how long a
 * result stays valid, what makes two results comparable, between which institutions, and at what
 * price a repeat would have cost. Data a county edits (mappings/recognition/catalogue.json),
 * checked against its JSON Schema at start. Versioned by effective date: an order is judged by the
 * version in force on its date, and a recorded decision keeps the version it was made under.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import type { Coding } from '@medplum/fhirtypes';

export type ItemCategory = 'lab' | 'imaging' | 'ecg';
export type RecognitionScope = 'community' | 'same-level' | 'community-and-independent';

export interface CatalogueCoding {
  readonly system: string;
  readonly code: string;
  readonly display?: string;
}

export interface CatalogueItem {
  readonly id: string;
  readonly category: ItemCategory;
  readonly name: { readonly zh: string; readonly en: string };
  /** Codes of the orderable item. */
  readonly codes: readonly CatalogueCoding[];
  /** Codes of the results that answer it, when they differ from the order codes. */
  readonly resultCodes?: readonly CatalogueCoding[];
  /** DICOM modalities of an imaging or ECG study that answers it. */
  readonly modality?: readonly string[];
  readonly bodySite?: CatalogueCoding;
  readonly validityDays: number;
  readonly scope: RecognitionScope;
  readonly comparable?: {
    readonly units?: readonly string[];
    readonly methods?: readonly CatalogueCoding[];
    readonly specimenTypes?: readonly CatalogueCoding[];
  };
  /** What a repeat would have cost (yuan). */
  readonly price?: number;
}

export interface CatalogueVersion {
  readonly version: string;
  /** First day (YYYY-MM-DD) the version is in force. */
  readonly effectiveFrom: string;
  readonly comment?: string;
  readonly items: readonly CatalogueItem[];
}

interface CatalogueFile {
  readonly versions: readonly CatalogueVersion[];
}

export class CatalogueError extends Error {
  override readonly name = 'CatalogueError';
}

const SCHEMA = JSON.parse(readFileSync(new URL('../../mappings/recognition/catalogue.schema.json', import.meta.url), 'utf8')) as object;
const validateFile = new Ajv({ allErrors: true, strict: false }).compile<CatalogueFile>(SCHEMA);

const describe = (errors: ErrorObject[] | null | undefined): string =>
  (errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message ?? 'invalid'}`).join('; ');

const key = (c: { system?: string; code?: string }): string => `${c.system ?? ''}|${c.code ?? ''}`;

/** The catalogue's versions, checked: unique versions and dates, unique item ids and codes within a version. */
export class Catalogue {
  private readonly versions: readonly CatalogueVersion[];
  private readonly byCode = new Map<CatalogueVersion, Map<string, CatalogueItem>>();

  constructor(file: unknown, source = 'catalogue') {
    if (!validateFile(file)) throw new CatalogueError(`${source}: ${describe(validateFile.errors)}`);
    this.versions = [...file.versions].sort((a, b) => a.effectiveFrom.localeCompare(b.effectiveFrom));
    const seen = new Set<string>();
    for (const v of this.versions) {
      if (seen.has(v.version) || seen.has(`@${v.effectiveFrom}`)) throw new CatalogueError(`${source}: version ${v.version} (${v.effectiveFrom}) is not unique`);
      seen.add(v.version);
      seen.add(`@${v.effectiveFrom}`);
      const codes = new Map<string, CatalogueItem>();
      const ids = new Set<string>();
      for (const item of v.items) {
        if (ids.has(item.id)) throw new CatalogueError(`${source}: item ${item.id} appears twice in version ${v.version}`);
        ids.add(item.id);
        for (const c of item.codes) {
          const other = codes.get(key(c));
          if (other) throw new CatalogueError(`${source}: code ${key(c)} names both ${other.id} and ${item.id} in version ${v.version}`);
          codes.set(key(c), item);
        }
      }
      this.byCode.set(v, codes);
    }
  }

  static load(path: string): Catalogue {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new CatalogueError(`${path}: ${(e as Error).message}`);
    }
    return new Catalogue(raw, path);
  }

  /** The version in force on a day (YYYY-MM-DD), or undefined before the first one. */
  inForce(day: string): CatalogueVersion | undefined {
    let found: CatalogueVersion | undefined;
    for (const v of this.versions) if (v.effectiveFrom <= day) found = v;
    return found;
  }

  version(name: string): CatalogueVersion | undefined {
    return this.versions.find((v) => v.version === name);
  }

  /** The item of a version that one of these codings orders. */
  itemFor(version: CatalogueVersion, codings: readonly Coding[]): CatalogueItem | undefined {
    const codes = this.byCode.get(version);
    for (const c of codings) {
      const hit = codes?.get(key(c));
      if (hit) return hit;
    }
    return undefined;
  }

  /** The item with this id in a version. */
  item(version: CatalogueVersion, id: string): CatalogueItem | undefined {
    return version.items.find((i) => i.id === id);
  }
}
