/**
 * DICOM Part 10 files (`application/dicom`): the header is read with dicom-parser up to the pixel
 * data, which is neither stored nor required. Handles explicit/implicit little endian, big endian
 * and deflated transfer syntaxes, and a bare dataset without preamble and File Meta Information
 * (some modalities write those). A header that cannot be read is refused naming the element.
 */
import dicomParser, { type DataSet } from 'dicom-parser';
import iconv from 'iconv-lite';
import { inflateRawSync } from 'node:zlib';
import { GatewayError } from '../../errors.js';
import { readRecord, tagLabel, TAGS, type AttributeSource, type DicomRecord } from './attributes.js';

const VR_RE = /^(AE|AS|AT|CS|DA|DS|DT|FL|FD|IS|LO|LT|OB|OD|OF|OL|OW|PN|SH|SL|SQ|SS|ST|TM|UC|UI|UL|UN|UR|US|UT)$/;
const IS_VALUE = /^\s*[+-]?\d+\s*$/;
const DS_VALUE = /^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/;

/** DICOM character sets (0008,0005) → iconv-lite names; the default repertoire is ASCII (read as Latin-1). */
const CHARSETS: Record<string, string> = {
  '': 'latin1',
  'ISO_IR 6': 'latin1',
  'ISO_IR 100': 'latin1',
  'ISO_IR 192': 'utf8',
  GB18030: 'gb18030',
  GBK: 'gbk',
  'ISO 2022 IR 6': 'latin1',
  'ISO 2022 IR 100': 'latin1',
};

function key(tag: string): string {
  return `x${tag.toLowerCase()}`;
}

/** Inflates the dataset of the deflated transfer syntax (1.2.840.10008.1.2.1.99). */
function inflater(bytes: Uint8Array, position: number): Uint8Array {
  const inflated = inflateRawSync(bytes.subarray(position));
  const out = new Uint8Array(position + inflated.length);
  out.set(bytes.subarray(0, position), 0);
  out.set(inflated, position);
  return out;
}

/** dicom-parser throws strings naming the tag as `gggg,eeee`; the answer names it the usual way. */
function headerError(e: unknown): GatewayError {
  const text = typeof e === 'string' ? e : e instanceof Error ? e.message : String((e as { exception?: unknown })?.exception ?? e);
  const m = /\b([0-9a-f]{4}),?([0-9a-f]{4})\b/i.exec(text);
  const where = m ? tagLabel(m[1] + m[2]) : undefined;
  const plain = text.replace(/^dicomParser\.[A-Za-z0-9]+: /, '');
  return new GatewayError('GW_ERR_BAD_REQUEST', `The DICOM header cannot be read${where ? ` at ${where}` : ''}: ${plain}`, where ? { expression: where } : {});
}

function hasPreamble(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/** Leading bytes skipped before a bare dataset's first element (some writers leave a stray byte or two). */
const MAX_LEAD = 16;

/**
 * A dataset written without preamble and meta header: it starts at a group 0002 or 0008 element
 * within the first bytes; explicit VR when the two bytes after the tag spell a VR, else implicit.
 */
function parseBareDataset(bytes: Uint8Array): DataSet {
  let start = -1;
  for (let i = 0; i < Math.min(MAX_LEAD, bytes.length - 8) && start === -1; i++) {
    if ((bytes[i] === 0x08 || bytes[i] === 0x02) && bytes[i + 1] === 0x00) start = i;
  }
  if (start === -1) {
    throw new GatewayError('GW_ERR_BAD_REQUEST', 'Not a DICOM Part 10 file: no "DICM" prefix at byte 128 and no dataset starting at group 0002 or 0008', { expression: 'body' });
  }
  const data = bytes.subarray(start);
  const explicit = VR_RE.test(String.fromCharCode(data[4], data[5]));
  const parser = dicomParser.littleEndianByteArrayParser;
  const stream = new dicomParser.ByteStream(parser, data, 0);
  // DataSet is exported at run time but missing from the package's typings.
  const DataSetClass = (dicomParser as unknown as { DataSet: new (p: typeof parser, b: Uint8Array, e: object) => DataSet }).DataSet;
  const dataSet = new DataSetClass(parser, data, {});
  const options = { untilTag: key(TAGS.PixelData) };
  if (explicit) dicomParser.parseDicomDataSetExplicit(dataSet, stream, data.length, options);
  else dicomParser.parseDicomDataSetImplicit(dataSet, stream, data.length, options);
  return dataSet;
}

/** Checks the integer and decimal strings of the header (explicit VR only: implicit VR carries no VR to check). */
function checkNumbers(ds: DataSet): void {
  for (const el of Object.values(ds.elements)) {
    if (el.vr !== 'IS' && el.vr !== 'DS') continue;
    const text = ds.string(el.tag);
    if (text === undefined) continue;
    const re = el.vr === 'IS' ? IS_VALUE : DS_VALUE;
    for (const v of text.split('\\')) {
      if (v.trim() !== '' && !re.test(v)) {
        const where = tagLabel(el.tag.slice(1));
        throw new GatewayError('GW_ERR_BAD_REQUEST', `${where} holds "${v.slice(0, 40)}", not a valid ${el.vr === 'IS' ? 'integer string (IS)' : 'decimal string (DS)'}`, { expression: where });
      }
    }
  }
}

function sourceOf(ds: DataSet): AttributeSource {
  const charset = CHARSETS[(ds.string(key(TAGS.SpecificCharacterSet)) ?? '').trim()] ?? 'latin1';
  const raw = (tag: string): string | undefined => {
    const el = ds.elements[key(tag)];
    if (!el || el.length === 0) return undefined;
    const bytes = ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);
    return iconv.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), charset).replace(/[\0 ]+$/, '');
  };
  const strings = (tag: string) =>
    (raw(tag) ?? '')
      .split('\\')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  return {
    string: (tag) => strings(tag)[0],
    strings,
    personName: (tag) => strings(tag)[0]?.split('=')[0] || undefined,
  };
}

export interface Part10Result {
  readonly record: DicomRecord;
  readonly transferSyntax?: string;
}

/** Reads a Part 10 file's header into a record; 400 naming the element when it cannot. */
export function readPart10(bytes: Uint8Array): Part10Result {
  let ds: DataSet;
  try {
    ds = hasPreamble(bytes)
      ? dicomParser.parseDicom(bytes, { untilTag: key(TAGS.PixelData), inflater: inflater as unknown as (arr: Uint8Array, position: number) => void })
      : parseBareDataset(bytes);
  } catch (e) {
    if (e instanceof GatewayError) throw e;
    throw headerError(e);
  }
  checkNumbers(ds);
  const transferSyntax = ds.string(key(TAGS.TransferSyntaxUID))?.trim() || undefined;
  return { record: readRecord(sourceOf(ds)), ...(transferSyntax ? { transferSyntax } : {}) };
}
