export * from './model.js';
export * from './parse-error.js';
export * from './parse.js';
export * from './escape.js';
export * from './charset.js';
export * from './batch.js';
export * from './ack.js';
