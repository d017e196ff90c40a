export * from './frame-decoder.js';
export * from './server.js';
export * from './client.js';
