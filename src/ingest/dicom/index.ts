/**
 * DICOM study metadata (Part 10 headers and DICOM JSON) → ImagingStudy, Patient and the PACS's
 * WADO-RS Endpoint, through the one write path.
 */
export { TAGS, tagLabel, readRecord, type DicomRecord } from './attributes.js';
export { readPart10, type Part10Result } from './part10.js';
export { readDicomJson } from './json.js';
export { accessionSystem, studyCondition, studyIdentifier, wadoBase, dicomBundle, DICOM_UID_SYSTEM, DICOM_MODALITY_SYSTEM, ENDPOINT_SYSTEM } from './imaging-study.js';
export { storeDicom, type DicomStoreDeps } from './store.js';
export { dicomRoutes, DICOM_MEDIA_TYPE, DICOM_JSON_MEDIA_TYPE, type DicomRoutesOptions } from './routes.js';
export { replayDicomPost, isDicomDeadLetter, type DicomReplayDeps, type DicomReplay } from './replay.js';
