import t from 'tap';
import { ConfigError, loadConfig } from '../../../src/config.js';

t.test('MLLP settings: defaults, 0 disables, TLS key and cert together', async (t) => {
  const c = loadConfig({});
  t.equal(c.mllpPort, 2575);
  t.equal(c.mllpHost, '127.0.0.1');
  t.equal(c.mllpMaxFrameBytes, 10 * 1024 * 1024);
  t.equal(c.mllpIdleTimeoutMs, 600_000);
  t.equal(c.mllpTlsKeyFile, undefined);
  t.equal(loadConfig({ MLLP_PORT: '0' }).mllpPort, 0);
  t.throws(() => loadConfig({ MLLP_TLS_KEY_FILE: '/k.pem' }), ConfigError);
  t.throws(() => loadConfig({ MLLP_MAX_FRAME_BYTES: '10' }), ConfigError);
  t.equal(loadConfig({ MLLP_TLS_KEY_FILE: '/k.pem', MLLP_TLS_CERT_FILE: '/c.pem' }).mllpTlsCertFile, '/c.pem');
});
