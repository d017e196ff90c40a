/**
 * DICOM JSON (PS3.18 F.2): one dataset object or an array of them, as a PACS answers QIDO-RS
 * searches and WADO-RS metadata requests. Values are read only for the attributes the gateway maps;
 * InlineBinary and BulkDataURI (pixel data) are ignored.
 */
import { GatewayError } from '../../errors.js';
import { readRecord, tagLabel, type AttributeSource, type DicomRecord } from './attributes.js';

type JsonAttribute = { vr?: unknown; Value?: unknown };
type JsonDataset = Record<string, JsonAttribute>;

const TAG_KEY = /^[0-9A-Fa-f]{8}$/;

function sourceOf(ds: JsonDataset): AttributeSource {
  const values = (tag: string): unknown[] => {
    const a = ds[tag] ?? ds[tag.toLowerCase()];
    return a && Array.isArray(a.Value) ? a.Value : [];
  };
  const strings = (tag: string): string[] =>
    values(tag)
      .map((v) => (typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : ''))
      .filter((s) => s !== '');
  return {
    string: (tag) => strings(tag)[0],
    strings,
    personName: (tag) => {
      const v = values(tag)[0];
      const alphabetic = v && typeof v === 'object' ? (v as { Alphabetic?: unknown }).Alphabetic : undefined;
      return typeof alphabetic === 'string' && alphabetic.trim() !== '' ? alphabetic.trim() : undefined;
    },
  };
}

function checkShape(ds: unknown, where: string): JsonDataset {
  if (!ds || typeof ds !== 'object' || Array.isArray(ds)) throw new GatewayError('GW_ERR_BAD_REQUEST', `${where} is not a DICOM JSON dataset object`, { expression: where });
  for (const [k, v] of Object.entries(ds)) {
    if (!TAG_KEY.test(k)) throw new GatewayError('GW_ERR_BAD_REQUEST', `${where}: "${k.slice(0, 40)}" is not a DICOM tag (8 hexadecimal digits)`, { expression: `${where}.${k.slice(0, 40)}` });
    if (!v || typeof v !== 'object' || typeof (v as JsonAttribute).vr !== 'string') {
      throw new GatewayError('GW_ERR_BAD_REQUEST', `${where}: attribute ${tagLabel(k)} has no "vr"`, { expression: `${where}.${k}` });
    }
  }
  return ds as JsonDataset;
}

/** The records of a DICOM JSON body; an error names the dataset (`[2]`) and the tag. */
export function readDicomJson(body: unknown): DicomRecord[] {
  const list = Array.isArray(body) ? body : [body];
  if (list.length === 0) throw new GatewayError('GW_ERR_BAD_REQUEST', 'The DICOM JSON array is empty', { expression: 'body' });
  return list.map((item, i) => {
    const where = Array.isArray(body) ? `[${i}]` : 'body';
    try {
      return readRecord(sourceOf(checkShape(item, where)));
    } catch (e) {
      if (e instanceof GatewayError && Array.isArray(body)) {
        const issues = e.outcome.issue.map((x) => ({ ...x, diagnostics: `${where}: ${x.diagnostics ?? ''}`, expression: (x.expression ?? []).map((p) => `${where} ${p}`) }));
        throw new GatewayError(e.code, `${where}: ${e.message}`, { issues });
      }
      throw e;
    }
  });
}
