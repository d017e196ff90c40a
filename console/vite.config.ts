/**
 * Build of the web console: `vite build` (run by `npm run build`) writes dist/console-ui/, which
 * the gateway serves at /console.
 */
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/console-ui', import.meta.url)),
    emptyOutDir: true,
    // The CSP of /console allows scripts and styles from the gateway itself only.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
});
