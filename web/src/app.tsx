import { useEffect, useRef, useState } from 'preact/hooks';
import type { Auth } from './auth';
import { getAuth, signInReason, signOut, subscribeAuth } from './auth';
import { clearCache } from './data';
import { setUtc, useUtc } from './format';
import { markOpen } from './perf';
import type { Route, View } from './router';
import { href, useRoute } from './router';
import { Catalogue } from './views/Catalogue';
import { Events } from './views/Events';
import { Find } from './views/Find';
import { Pipeline } from './views/Pipeline';
import { Rejected } from './views/Rejected';
import { Session } from './views/Session';
import { SignIn } from './views/SignIn';
import { Trends } from './views/Trends';

const NAV: [View, string, string][] = [
  ['find', 'Find', 'M10 4a6 6 0 1 0 3.7 10.7l4.3 4.3 1.4-1.4-4.3-4.3A6 6 0 0 0 10 4zm0 2a4 4 0 1 1 0 8 4 4 0 0 1 0-8z'],
  ['events', 'Events', 'M4 5h16v2H4zm0 6h16v2H4zm0 6h10v2H4z'],
  ['trends', 'Trends', 'M3 17l5-6 4 4 7-9 2 1.5-8.5 11-4-4-3.5 4.2z'],
  ['catalogue', 'Catalogue', 'M5 3h10l4 4v14H5zm2 2v14h10V8h-3V5zm2 6h6v2H9zm0 4h6v2H9z'],
  ['rejected', 'Rejected', 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm-5 9h10v2H7z'],
  ['pipeline', 'Pipeline', 'M3 11h4l2-5 4 12 2-7h6v2h-4.5L13 21 9 9.5 8.3 13H3z'],
];

function useAuth(): Auth | null {
  const [a, set] = useState<Auth | null>(getAuth());
  useEffect(() => subscribeAuth(() => set(getAuth())), []);
  return a;
}

function ViewFor({ route }: { route: Route }) {
  switch (route.view) {
    case 'find':
      return <Find route={route} />;
    case 'session':
      return <Session route={route} />;
    case 'events':
      return <Events route={route} />;
    case 'trends':
      return <Trends route={route} />;
    case 'catalogue':
      return <Catalogue route={route} />;
    case 'rejected':
      return <Rejected route={route} />;
    case 'pipeline':
      return <Pipeline route={route} />;
  }
}

export function App() {
  const auth = useAuth();
  const route = useRoute();
  const utc = useUtc();
  // The view is entered when it shows, not while the sign-in form is up.
  const wasAuthed = useRef(!!auth);
  if (auth && !wasAuthed.current) markOpen(route.view);
  wasAuthed.current = !!auth;

  useEffect(() => {
    if (!auth) clearCache();
  }, [auth]);

  if (!auth) return <SignIn reason={signInReason()} />;

  const active = route.view === 'session' ? 'find' : route.view;
  return (
    <div class="shell" data-testid="app">
      <nav class="sidebar" aria-label="Views">
        <a class="brand" href={href('find')}>
          <span class="logo" aria-hidden="true" />
          The Eye
        </a>
        <ul>
          {NAV.map(([v, label, path]) => (
            <li key={v}>
              <a href={href(v)} class={active === v ? 'nav active' : 'nav'} data-testid={`nav-${v}`} aria-current={active === v ? 'page' : undefined}>
                <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
                  <path d={path} fill="currentColor" />
                </svg>
                {label}
              </a>
            </li>
          ))}
        </ul>
        <div class="sidebar-foot">
          <label class="toggle small" title="Show times in UTC instead of local time">
            <input type="checkbox" data-testid="utc-toggle" checked={utc} onChange={(e) => setUtc((e.target as HTMLInputElement).checked)} />
            <span class="toggle-dot" />
            UTC times
          </label>
          <div class="who small" title={auth.kind === 'api_key' ? 'Signed in with an API key' : 'Signed in with client credentials'}>
            <span class="muted">{auth.kind === 'api_key' ? 'API key' : 'Client'}</span> <span class="mono">{auth.label}</span>
          </div>
          <button type="button" class="btn btn-ghost btn-block" data-testid="sign-out" onClick={() => signOut(null)}>
            Sign out
          </button>
        </div>
      </nav>
      <main class="main" key={route.raw}>
        <ViewFor route={route} />
      </main>
    </div>
  );
}
