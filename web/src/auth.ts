// The credential lives in sessionStorage only: never in the URL, never in a cookie,
// never in localStorage. Signing out (or any 401/403, or the token's expiry) clears it.

export const STORAGE_KEY = 'eye.auth';

export type AuthKind = 'api_key' | 'client_credentials';

export interface Auth {
  kind: AuthKind;
  /** What goes after `Authorization: Bearer `. */
  token: string;
  /** For client credentials: the client id (shown in the header). */
  label: string;
  /** Epoch milliseconds after which the token is no longer valid; null for API keys. */
  expires_at: number | null;
}

type Listener = () => void;

let current: Auth | null = load();
let reason: string | null = null;
const listeners = new Set<Listener>();
let expiryTimer: number | undefined;

function load(): Auth | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const a = JSON.parse(raw) as Auth;
    if (typeof a?.token !== 'string' || a.token === '') return null;
    return a;
  } catch {
    return null;
  }
}

function emit() {
  for (const l of listeners) l();
}

function armExpiry() {
  if (expiryTimer !== undefined) clearTimeout(expiryTimer);
  expiryTimer = undefined;
  if (current?.expires_at != null) {
    const left = current.expires_at - Date.now();
    if (left <= 0) {
      signOut('Your access token expired. Sign in again.');
      return;
    }
    // setTimeout's limit is ~24.8 days; tokens are much shorter than that.
    expiryTimer = window.setTimeout(() => signOut('Your access token expired. Sign in again.'), Math.min(left, 2 ** 31 - 1));
  }
}

export function getAuth(): Auth | null {
  // Re-read: a test (or another tab of this session) may have changed it.
  const stored = load();
  if (stored?.token !== current?.token) {
    current = stored;
    armExpiry();
  }
  return current;
}

export function signInReason(): string | null {
  return reason;
}

export function signIn(a: Auth) {
  current = a;
  reason = null;
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(a));
  armExpiry();
  emit();
}

export function signOut(why: string | null = null) {
  current = null;
  reason = why;
  sessionStorage.removeItem(STORAGE_KEY);
  if (expiryTimer !== undefined) clearTimeout(expiryTimer);
  expiryTimer = undefined;
  emit();
}

export function subscribeAuth(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

armExpiry();
