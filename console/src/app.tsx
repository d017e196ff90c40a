/**
 * The console shell: login, navigation between the screens (hash routes), language switch,
 * logout, and the idle timer that ends the session when the operator stops working.
 */
import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { currentSession, login, logout, whenSessionEnds, type Session } from './api';
import { LangContext, translator, useT, type Key, type Lang } from './i18n';
import { forgetInstitutions } from './orgs';
import { Audit } from './screens/audit';
import { DeadLetters } from './screens/dead-letters';
import { Feeds } from './screens/feeds';
import { Kpis } from './screens/kpis';
import { Subscriptions } from './screens/subscriptions';

const SCREENS: { route: string; key: Key; view: () => JSX.Element }[] = [
  { route: 'feeds', key: 'feeds', view: Feeds },
  { route: 'dead-letters', key: 'deadLetters', view: DeadLetters },
  { route: 'audit', key: 'audit', view: Audit },
  { route: 'kpis', key: 'kpis', view: Kpis },
  { route: 'subscriptions', key: 'subscriptions', view: Subscriptions },
];

function routeOf(hash: string): string {
  const r = hash.replace(/^#\/?/, '');
  return SCREENS.some((s) => s.route === r) ? r : '';
}

function Login({ onLogin, ended }: { onLogin: (s: Session) => void; ended: boolean }) {
  const t = useT();
  // An operator (a person's login) or a registered OAuth2 client.
  const [asOperator, setAsOperator] = useState(false);
  const [id, setId] = useState('');
  const [secret, setSecret] = useState('');
  const [failed, setFailed] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFailed(false);
    try {
      const s = await login(asOperator ? { username: id, password: secret } : { clientId: id, clientSecret: secret });
      setSecret('');
      onLogin(s);
    } catch {
      setFailed(true);
    }
  };
  const switchTo = (operator: boolean) => {
    setAsOperator(operator);
    setId('');
    setSecret('');
    setFailed(false);
  };
  return (
    <form className="login panel" onSubmit={(e) => void submit(e)} method="post" autoComplete="off" data-testid="login-form">
      <h2>{t('login')}</h2>
      {ended && <p className="warn">{t('sessionEnded')}</p>}
      <p className="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={!asOperator} className={asOperator ? '' : 'active'} onClick={() => switchTo(false)} data-testid="login-as-client">
          {t('asClient')}
        </button>
        <button type="button" role="tab" aria-selected={asOperator} className={asOperator ? 'active' : ''} onClick={() => switchTo(true)} data-testid="login-as-operator">
          {t('asOperator')}
        </button>
      </p>
      <p className="muted">{t(asOperator ? 'operatorHint' : 'loginHint')}</p>
      <label>
        {t(asOperator ? 'username' : 'clientId')}
        <input name={asOperator ? 'username' : 'clientId'} value={id} onChange={(e) => setId(e.target.value)} required autoComplete="username" />
      </label>
      <label>
        {t(asOperator ? 'password' : 'clientSecret')}
        <input name={asOperator ? 'password' : 'clientSecret'} type="password" value={secret} onChange={(e) => setSecret(e.target.value)} required autoComplete="current-password" />
      </label>
      {failed && (
        <p className="warn" data-testid="login-failed">
          {t(asOperator ? 'operatorLoginFailed' : 'loginFailed')}
        </p>
      )}
      <button type="submit">{t('login')}</button>
    </form>
  );
}

export function App() {
  const [lang, setLang] = useState<Lang>(navigator.language.toLowerCase().startsWith('zh') ? 'zh' : 'en');
  const t = useMemo(() => translator(lang), [lang]);
  const [session, setSession] = useState<Session | undefined>();
  const [checked, setChecked] = useState(false);
  const [ended, setEnded] = useState(false);
  const [route, setRoute] = useState(routeOf(location.hash));
  const lastActivity = useRef(Date.now());

  useEffect(() => {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.title = t('title');
  }, [lang, t]);

  useEffect(() => {
    whenSessionEnds(() => {
      forgetInstitutions();
      setSession(undefined);
      setEnded(true);
    });
    void currentSession().then((s) => {
      setSession(s);
      setChecked(true);
    });
    const onHash = () => setRoute(routeOf(location.hash));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // Idle: no key, click or pointer movement for the session's idle minutes ends it here too (the
  // gateway ends it on its side by the same rule).
  useEffect(() => {
    if (!session) return;
    const touch = () => {
      lastActivity.current = Date.now();
    };
    const events = ['keydown', 'pointerdown', 'pointermove', 'wheel'] as const;
    for (const e of events) addEventListener(e, touch, { passive: true });
    const timer = setInterval(() => {
      if (Date.now() - lastActivity.current > session.idleMinutes * 60_000) {
        void logout().then(() => {
          forgetInstitutions();
          setSession(undefined);
          setEnded(true);
        });
      }
    }, 5_000);
    return () => {
      clearInterval(timer);
      for (const e of events) removeEventListener(e, touch);
    };
  }, [session]);

  const doLogout = async () => {
    await logout();
    forgetInstitutions();
    setSession(undefined);
    setEnded(false);
  };

  const home = session?.role === 'auditor' ? 'audit' : 'feeds';
  const current = SCREENS.find((s) => s.route === (route || home)) ?? SCREENS[0];
  const View = current.view;

  return (
    <LangContext.Provider value={{ lang, t }}>
      <header className="top">
        <h1>{t('title')}</h1>
        {session && (
          <nav>
            {SCREENS.map((s) => (
              <a key={s.route} href={`#/${s.route}`} className={s === current ? 'active' : ''} data-testid={`nav-${s.route}`}>
                {t(s.key)}
              </a>
            ))}
          </nav>
        )}
        <span className="who">
          <button onClick={() => setLang(lang === 'zh' ? 'en' : 'zh')} data-testid="lang">
            {t('language')}
          </button>
          {session && (
            <>
              <span data-testid="who">
                {session.operator ? `${t('operator')}: ${session.name} (${session.operator} · ${session.clientId})` : `${t('loggedInAs')}: ${session.name} (${session.clientId})`}
              </span>
              <button onClick={() => void doLogout()} data-testid="logout">
                {t('logout')}
              </button>
            </>
          )}
        </span>
      </header>
      <main>{!checked ? null : session ? <View key={current.route} /> : <Login onLogin={(s) => { setSession(s); setEnded(false); lastActivity.current = Date.now(); }} ended={ended} />}</main>
    </LangContext.Provider>
  );
}
