import { useState } from 'preact/hooks';
import { api, exchangeClientCredentials } from '../api';
import { signIn } from '../auth';
import { ErrorBox } from '../components';

export function SignIn({ reason }: { reason: string | null }) {
  const [mode, setMode] = useState<'client' | 'key'>('client');
  const [key, setKey] = useState('');
  const [clientId, setClientId] = useState('');
  const [secret, setSecret] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === 'key') {
        const token = key.trim();
        // Check the key before keeping it: one small read.
        await api('/v1/categories', { limit: 1 }, { token });
        signIn({ kind: 'api_key', token, label: token.split('.')[0], expires_at: null });
      } else {
        const r = await exchangeClientCredentials(clientId.trim(), secret.trim());
        // Leave a little slack so a request never leaves with a token about to lapse.
        const expires = Date.now() + Math.max(1, r.expires_in - 5) * 1000;
        signIn({ kind: 'client_credentials', token: r.access_token, label: clientId.trim(), expires_at: expires });
      }
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  return (
    <div class="signin-page">
      <form class="signin card" data-testid="signin-form" onSubmit={submit} autoComplete="off">
        <div class="brand brand-lg">
          <span class="logo" aria-hidden="true" />
          The Eye
        </div>
        <p class="muted">Sign in to explore events. Your credential stays in this tab only and is forgotten when you sign out or close it.</p>
        {reason ? (
          <div class="alert alert-warn" role="alert" data-testid="signin-reason">
            {reason}
          </div>
        ) : null}
        <div class="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={mode === 'client'} class={mode === 'client' ? 'tab active' : 'tab'} data-testid="signin-tab-client" onClick={() => setMode('client')}>
            Client credentials
          </button>
          <button type="button" role="tab" aria-selected={mode === 'key'} class={mode === 'key' ? 'tab active' : 'tab'} data-testid="signin-tab-key" onClick={() => setMode('key')}>
            API key
          </button>
        </div>
        {mode === 'key' ? (
          <label class="field">
            <span>API key</span>
            <input type="password" name="api_key" data-testid="input-api-key" placeholder="eye_…" value={key} required autoComplete="off" spellcheck={false} onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
          </label>
        ) : (
          <>
            <label class="field">
              <span>Client id</span>
              <input type="text" name="client_id" data-testid="input-client-id" value={clientId} required autoComplete="off" spellcheck={false} onInput={(e) => setClientId((e.target as HTMLInputElement).value)} />
            </label>
            <label class="field">
              <span>Client secret</span>
              <input type="password" name="client_secret" data-testid="input-client-secret" value={secret} required autoComplete="off" onInput={(e) => setSecret((e.target as HTMLInputElement).value)} />
            </label>
          </>
        )}
        <ErrorBox error={error} title="Sign-in failed" />
        <button type="submit" class="btn btn-primary btn-block" data-testid="signin-submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
