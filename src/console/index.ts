/**
 * The web console for operators and auditors, served at /console: a single-page app built by
 * `npm run build` (Vite, sources in console/) into dist/console-ui/. The files hold no data and
 * are served without a token; everything the page shows comes from the gateway's API, called
 * with the console session cookie (auth/session.ts).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';
import { GatewayError } from '../errors.js';

export const CONSOLE_PREFIX = '/console';
/** Resolved from this module, so that it works from both src/ and dist/. */
export const CONSOLE_ROOT = fileURLToPath(new URL('../../dist/console-ui/', import.meta.url));

/** The page may load its own scripts and styles and call its own origin, nothing else. */
const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export async function consoleRoutes(app: FastifyInstance, opts: { root?: string } = {}): Promise<void> {
  const root = opts.root ?? CONSOLE_ROOT;
  app.addHook('onSend', async (req, reply, payload) => {
    void reply.header('content-security-policy', CONSOLE_CSP);
    // The page and its entry are re-read on every visit; the hashed assets may be cached.
    const assets = req.url.startsWith(`${CONSOLE_PREFIX}/assets/`);
    void reply.header('cache-control', assets ? 'public, max-age=31536000, immutable' : 'no-store');
    return payload;
  });
  app.get(CONSOLE_PREFIX, async (_req, reply) => reply.redirect(`${CONSOLE_PREFIX}/`));
  if (!existsSync(`${root}/index.html`)) {
    app.get(`${CONSOLE_PREFIX}/*`, async () => {
      throw new GatewayError('GW_ERR_UNAVAILABLE', 'The console is not built: run npm run build');
    });
    return;
  }
  await app.register(fastifyStatic, { root, prefix: `${CONSOLE_PREFIX}/`, index: ['index.html'], wildcard: true, decorateReply: false });
}
