/**
 * OperationDefinitions of the recognition operations, listed in the CapabilityStatement.
 */
import type { OperationDefinition } from '@medplum/fhirtypes';
import { FHIR_BASE } from '../fhir/systems.js';

const common = { resourceType: 'OperationDefinition', version: '0.1.0', status: 'active', kind: 'operation', system: true, type: false, instance: false } as const;

export const RECOGNIZE_DEFINITION: OperationDefinition = {
  ...common,
  id: 'recognize',
  url: `${FHIR_BASE}/OperationDefinition/recognize`,
  name: 'Recognize',
  title: 'Mutual recognition of test results (检查检验结果互认)',
  description:
    'For each ordered item, the recent results of the person (any linked local patient) that the ordering institution can recognise ' +
    'instead of repeating the test, or why none qualifies, under the recognition catalogue version in force on the order date. ' +
    'Also at Patient/[id]/$recognize.',
  affectsState: false,
  code: 'recognize',
  resource: ['Patient'],
  instance: true,
  parameter: [
    { name: 'patient', use: 'in', min: 0, max: '1', type: 'Reference', documentation: 'The patient (Patient/id), or give identifier. Not needed with a ServiceRequest or at the instance level.' },
    { name: 'identifier', use: 'in', min: 0, max: '1', type: 'Identifier', documentation: 'Any identifier of any linked local patient (system|value in GET).' },
    { name: 'serviceRequest', use: 'in', min: 0, max: '*', type: 'Reference', documentation: 'Draft or active orders (a reference, or the resource in POST).' },
    { name: 'code', use: 'in', min: 0, max: '*', type: 'Coding', documentation: 'Ordered item codes (LOINC or an institution local code; system|code in GET).' },
    { name: 'date', use: 'in', min: 0, max: '1', type: 'date', documentation: 'Order date; default today.' },
    { name: 'institution', use: 'in', min: 0, max: '1', type: 'string', documentation: 'USCC of the ordering institution; default the client’s own.' },
    { name: 'catalogueVersion', use: 'out', min: 0, max: '1', type: 'string', documentation: 'Catalogue version the answer used.' },
    {
      name: 'item',
      use: 'out',
      min: 0,
      max: '*',
      documentation: 'One per ordered item.',
      part: [
        { name: 'order', use: 'out', min: 1, max: '*', type: 'Coding', documentation: 'What was ordered.' },
        { name: 'serviceRequest', use: 'out', min: 0, max: '1', type: 'Reference' },
        { name: 'catalogueItem', use: 'out', min: 0, max: '1', type: 'Coding' },
        { name: 'recognised', use: 'out', min: 1, max: '1', type: 'boolean' },
        { name: 'reason', use: 'out', min: 1, max: '1', type: 'Coding', documentation: 'recognised, or why nothing is.' },
        { name: 'result', use: 'out', min: 0, max: '*', documentation: 'Each candidate result: reference, institution, date, validUntil, recognisable, reason, value.' },
      ],
    },
  ],
};

export const DECISION_DEFINITION: OperationDefinition = {
  ...common,
  id: 'recognition-decision',
  url: `${FHIR_BASE}/OperationDefinition/recognition-decision`,
  name: 'RecognitionDecision',
  title: 'Record the decision on a recognisable result',
  description: 'The ordering institution records whether it accepted a recognition (counted, and the results marked) or repeated the test, with a reason.',
  affectsState: true,
  code: 'recognition-decision',
  parameter: [
    { name: 'patient', use: 'in', min: 0, max: '1', type: 'Reference' },
    { name: 'identifier', use: 'in', min: 0, max: '1', type: 'Identifier' },
    { name: 'item', use: 'in', min: 1, max: '1', type: 'code', documentation: 'Catalogue item id.' },
    { name: 'decision', use: 'in', min: 1, max: '1', type: 'code', documentation: 'accepted | repeated' },
    { name: 'reason', use: 'in', min: 0, max: '1', type: 'code', documentation: 'For repeated: clinical-change | patient-request | result-questioned | other' },
    { name: 'result', use: 'in', min: 0, max: '*', type: 'Reference', documentation: 'For accepted: the results recognised.' },
    { name: 'date', use: 'in', min: 0, max: '1', type: 'date' },
    { name: 'institution', use: 'in', min: 0, max: '1', type: 'string' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'OperationOutcome' },
  ],
};

export const STATS_DEFINITION: OperationDefinition = {
  ...common,
  id: 'recognition-stats',
  url: `${FHIR_BASE}/OperationDefinition/recognition-stats`,
  name: 'RecognitionStats',
  title: 'Mutual recognition statistics (互认项次)',
  description: 'Per ordering institution and item over a period of order dates: offered, accepted, repeated (by reason) and the cost saved.',
  affectsState: false,
  code: 'recognition-stats',
  parameter: [
    { name: 'institution', use: 'in', min: 0, max: '1', type: 'string' },
    { name: 'item', use: 'in', min: 0, max: '1', type: 'code' },
    { name: 'start', use: 'in', min: 0, max: '1', type: 'date' },
    { name: 'end', use: 'in', min: 0, max: '1', type: 'date' },
    { name: 'row', use: 'out', min: 0, max: '*', documentation: 'institution, item, offered, accepted, repeated, repeatedReason (code + count), saved (Money, CNY).' },
  ],
};

export const RECOGNITION_OPERATIONS: readonly { definition: OperationDefinition; types: readonly string[] }[] = [
  { definition: RECOGNIZE_DEFINITION, types: ['Patient'] },
  { definition: DECISION_DEFINITION, types: [] },
  { definition: STATS_DEFINITION, types: [] },
];
