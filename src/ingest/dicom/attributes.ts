/**
 * The DICOM attributes the gateway reads from an instance or a study search result, whatever the
 * encoding it came in (Part 10 file or PS3.18 DICOM JSON). Tags are written `(gggg,eeee)` in every
 * message a client sees, so that an error names the element as a PACS engineer looks it up.
 */
import { GatewayError } from '../../errors.js';

export const TAGS = {
  SpecificCharacterSet: '00080005',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ModalitiesInStudy: '00080061',
  ReferringPhysicianName: '00080090',
  TimezoneOffsetFromUTC: '00080201',
  RetrieveURL: '00081190',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  BodyPartExamined: '00180015',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  StudyID: '00200010',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
  TransferSyntaxUID: '00020010',
  PixelData: '7FE00010',
} as const;

export type TagName = keyof typeof TAGS;

/** `(0020,000D) StudyInstanceUID` */
export function tagLabel(tag: string): string {
  const t = tag.toUpperCase();
  const name = (Object.keys(TAGS) as TagName[]).find((k) => TAGS[k] === t);
  return `(${t.slice(0, 4)},${t.slice(4)})${name ? ` ${name}` : ''}`;
}

/** What one DICOM object tells about its study, series and instance. */
export interface DicomRecord {
  readonly studyUid: string;
  readonly seriesUid?: string;
  readonly sopInstanceUid?: string;
  readonly sopClassUid?: string;
  readonly modality?: string;
  /** Study-level search results (QIDO-RS /studies) list the modalities and counts instead of instances. */
  readonly modalitiesInStudy?: readonly string[];
  readonly numberOfSeries?: number;
  readonly numberOfInstances?: number;
  readonly patientId?: string;
  readonly patientName?: string;
  readonly birthDate?: string;
  readonly sex?: string;
  readonly studyDate?: string;
  readonly studyTime?: string;
  readonly timezoneOffset?: string;
  readonly accessionNumber?: string;
  readonly studyDescription?: string;
  readonly seriesDescription?: string;
  readonly seriesNumber?: number;
  readonly instanceNumber?: number;
  readonly referringPhysician?: string;
  readonly bodyPart?: string;
  readonly retrieveUrl?: string;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const IS = /^[+-]?\d{1,12}$/;

/** A reader of string values by tag, common to both encodings; undefined when absent or empty. */
export interface AttributeSource {
  /** The value (first value of a multi-valued one), trimmed. */
  string(tag: string): string | undefined;
  /** All values. */
  strings(tag: string): string[];
  /** A person name as DICOM writes it (`Family^Given^Middle^Prefix^Suffix`), alphabetic group only. */
  personName(tag: string): string | undefined;
}

function uid(src: AttributeSource, tag: string, required: boolean): string | undefined {
  const v = src.string(tag);
  if (v === undefined) {
    if (required) throw new GatewayError('GW_ERR_BUSINESS_RULE', `Required attribute ${tagLabel(tag)} is missing or empty`, { expression: tagLabel(tag) });
    return undefined;
  }
  if (v.length > 64 || !UID.test(v)) throw new GatewayError('GW_ERR_BAD_REQUEST', `${tagLabel(tag)} "${v.slice(0, 80)}" is not a valid UID`, { expression: tagLabel(tag) });
  return v;
}

function integer(src: AttributeSource, tag: string): number | undefined {
  const v = src.string(tag);
  if (v === undefined) return undefined;
  if (!IS.test(v)) throw new GatewayError('GW_ERR_BAD_REQUEST', `${tagLabel(tag)} "${v.slice(0, 40)}" is not an integer string (IS)`, { expression: tagLabel(tag) });
  return Number(v);
}

/**
 * The record of one DICOM object. Every object needs its StudyInstanceUID; an instance (one that
 * has a SOPInstanceUID) also needs its series UID, SOP class and modality. A study-level result
 * has neither series nor SOP instance UID.
 */
export function readRecord(src: AttributeSource): DicomRecord {
  const studyUid = uid(src, TAGS.StudyInstanceUID, true) as string;
  const sopInstanceUid = uid(src, TAGS.SOPInstanceUID, false);
  const seriesUid = uid(src, TAGS.SeriesInstanceUID, sopInstanceUid !== undefined);
  const instance = sopInstanceUid !== undefined;
  const sopClassUid = uid(src, TAGS.SOPClassUID, instance);
  const modality = src.string(TAGS.Modality);
  if (seriesUid && !modality) throw new GatewayError('GW_ERR_BUSINESS_RULE', `Required attribute ${tagLabel(TAGS.Modality)} is missing or empty`, { expression: tagLabel(TAGS.Modality) });
  const modalities = src.strings(TAGS.ModalitiesInStudy);
  const opt = <K extends keyof DicomRecord>(k: K, v: DicomRecord[K] | undefined) => (v === undefined || v === '' ? {} : { [k]: v });
  return {
    studyUid,
    ...opt('seriesUid', seriesUid),
    ...opt('sopInstanceUid', sopInstanceUid),
    ...opt('sopClassUid', sopClassUid),
    ...opt('modality', modality),
    ...(modalities.length ? { modalitiesInStudy: modalities } : {}),
    ...opt('numberOfSeries', integer(src, TAGS.NumberOfStudyRelatedSeries)),
    ...opt('numberOfInstances', integer(src, TAGS.NumberOfStudyRelatedInstances)),
    ...opt('patientId', src.string(TAGS.PatientID)),
    ...opt('patientName', src.personName(TAGS.PatientName)),
    ...opt('birthDate', src.string(TAGS.PatientBirthDate)),
    ...opt('sex', src.string(TAGS.PatientSex)),
    ...opt('studyDate', src.string(TAGS.StudyDate)),
    ...opt('studyTime', src.string(TAGS.StudyTime)),
    ...opt('timezoneOffset', src.string(TAGS.TimezoneOffsetFromUTC)),
    ...opt('accessionNumber', src.string(TAGS.AccessionNumber)),
    ...opt('studyDescription', src.string(TAGS.StudyDescription)),
    ...opt('seriesDescription', src.string(TAGS.SeriesDescription)),
    ...opt('seriesNumber', integer(src, TAGS.SeriesNumber)),
    ...opt('instanceNumber', integer(src, TAGS.InstanceNumber)),
    ...opt('referringPhysician', src.personName(TAGS.ReferringPhysicianName)),
    ...opt('bodyPart', src.string(TAGS.BodyPartExamined)),
    ...opt('retrieveUrl', src.string(TAGS.RetrieveURL)),
  };
}

/** `Family^Given^Middle^Prefix^Suffix` → `Family Given Middle …` (empty components dropped). */
export function personNameText(pn: string): string | undefined {
  const text = pn
    .split('=')[0]
    .split('^')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .join(' ');
  return text || undefined;
}
