/**
 * OperationDefinitions of remote reading, listed in the CapabilityStatement.
 */
import type { OperationDefinition } from '@medplum/fhirtypes';
import { FHIR_BASE } from '../fhir/systems.js';

const common = { resourceType: 'OperationDefinition', version: '0.1.0', status: 'active', kind: 'operation', system: false, type: false, instance: true, affectsState: true } as const;

export const REQUEST_READING_DEFINITION: OperationDefinition = {
  ...common,
  id: 'request-reading',
  url: `${FHIR_BASE}/OperationDefinition/request-reading`,
  name: 'RequestReading',
  title: 'Send a study for reading by a reading centre (基层检查、县级诊断)',
  description: 'Creates a ServiceRequest (performer: the reading centre) and a Task the centre claims and completes; the study becomes based on the request.',
  code: 'request-reading',
  resource: ['ImagingStudy'],
  parameter: [
    { name: 'performer', use: 'in', min: 1, max: '1', type: 'string', documentation: 'USCC of the reading centre (valueString or valueIdentifier).' },
    { name: 'category', use: 'in', min: 0, max: '1', type: 'code', documentation: 'imaging (default) or ecg.' },
    { name: 'note', use: 'in', min: 0, max: '1', type: 'string' },
    { name: 'serviceRequest', use: 'out', min: 1, max: '1', type: 'ServiceRequest' },
    { name: 'task', use: 'out', min: 1, max: '1', type: 'Task' },
  ],
};

export const CLAIM_DEFINITION: OperationDefinition = {
  ...common,
  id: 'claim',
  url: `${FHIR_BASE}/OperationDefinition/claim`,
  name: 'Claim',
  title: 'The reading centre takes a reading Task',
  description: 'requested → in-progress; only the institution the Task is owned by.',
  code: 'claim',
  resource: ['Task'],
  parameter: [{ name: 'return', use: 'out', min: 1, max: '1', type: 'Task' }],
};

export const COMPLETE_DEFINITION: OperationDefinition = {
  ...common,
  id: 'complete',
  url: `${FHIR_BASE}/OperationDefinition/complete`,
  name: 'Complete',
  title: 'The reading centre reports on a claimed Task',
  description: 'Stores the DiagnosticReport linked to the study and the ServiceRequest, and completes the Task and the ServiceRequest, in one transaction.',
  code: 'complete',
  resource: ['Task'],
  parameter: [
    { name: 'report', use: 'in', min: 1, max: '1', type: 'DiagnosticReport' },
    { name: 'report', use: 'out', min: 1, max: '1', type: 'DiagnosticReport' },
    { name: 'task', use: 'out', min: 1, max: '1', type: 'Task' },
    { name: 'serviceRequest', use: 'out', min: 1, max: '1', type: 'ServiceRequest' },
  ],
};

export const READING_OPERATIONS = [
  { definition: REQUEST_READING_DEFINITION, types: ['ImagingStudy'] },
  { definition: CLAIM_DEFINITION, types: ['Task'] },
  { definition: COMPLETE_DEFINITION, types: ['Task'] },
] as const;

