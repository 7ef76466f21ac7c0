import { getAuth, signOut } from './auth';

// ---- Shapes (docs/openapi.json) ----

export interface EyeEvent {
  event_id: string;
  session_id: string;
  category: string;
  name: string;
  timestamp: string;
  client_timestamp: string;
  sent_at?: string;
  received_at: string;
  data: Record<string, unknown> | null;
  value?: number;
}

export interface EventPage {
  events: EyeEvent[];
  next_cursor: string | null;
}

export interface SessionLifecycle {
  user_id: string | null;
  machine_id: string | null;
  org_id: string | null;
  started_at: string | null;
  ended_at: string | null;
}

export interface SessionSummary extends SessionLifecycle {
  session_id: string;
  event_count: number;
  first_event_at: string | null;
  last_event_at: string | null;
}

export interface SessionDetail extends SessionSummary {
  events: EyeEvent[];
  next_cursor: string | null;
}

export interface UserSessions {
  user_id: string;
  sessions: SessionSummary[];
  next_cursor: string | null;
}

export interface Bucket {
  start: string;
  value: number | null;
  count: number;
}

export interface Aggregate {
  category: string;
  name: string;
  granularity: string;
  agg: string;
  tz: string;
  fill: string;
  buckets: Bucket[];
}

export interface Category {
  category: string;
  name: string;
  events: number;
  first_seen: string;
  last_seen: string;
}

export interface SchemaEntry {
  category: string;
  name: string;
  schema: unknown;
}

export interface Reason {
  field: string;
  code: string;
  message: string;
}

export interface Rejected {
  rejection_id: string;
  received_at: string;
  source: string;
  client: string;
  reasons: Reason[] | null;
  raw: string;
  raw_bytes: number;
  raw_sha256: string;
  raw_truncated: boolean;
  event_id: string;
  session_id: string;
  category: string;
  name: string;
}

export interface RejectedPage {
  rejected: Rejected[];
  next_cursor: string | null;
}

export interface ScrapeBase {
  url: string;
  up: boolean;
  error: string | null;
}

/** A scraped service is `null` when not configured; its figures are absent (or null) when down. */
export interface Pipeline {
  observed_at: string;
  ingest:
    | (ScrapeBase & {
        events?: { produced: number | null; quarantined: number | null; failed: number | null } | null;
      })
    | null;
  consumer:
    | (ScrapeBase & {
        lag_messages?: number | null;
        rows_inserted_total?: number | null;
        quarantined_total?: number | null;
        freshness_seconds?: { sum: number | null; count: number | null } | null;
      })
    | null;
}

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope: string;
}

// ---- Errors ----

export class ApiError extends Error {
  status: number;
  code: string;
  details: Reason[];
  constructor(status: number, code: string, message: string, details: Reason[] = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function readError(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const b = body as { error?: unknown; error_description?: unknown } | null;
  if (b && typeof b.error === 'object' && b.error !== null) {
    const e = b.error as { code?: string; message?: string; details?: Reason[] };
    return new ApiError(res.status, e.code ?? 'error', e.message ?? res.statusText, Array.isArray(e.details) ? e.details : []);
  }
  if (b && typeof b.error === 'string') {
    // OAuth errors: {"error":"invalid_client","error_description":"..."}
    return new ApiError(res.status, b.error, typeof b.error_description === 'string' ? b.error_description : b.error);
  }
  return new ApiError(res.status, `http_${res.status}`, `${res.status} ${res.statusText || 'error'}`.trim());
}

// ---- Calls ----

export type Params = Record<string, string | number | null | undefined>;

export function qs(params: Params): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

export function seg(s: string): string {
  return encodeURIComponent(s);
}

/** GET a JSON API path with the signed-in credential. 401/403 sign out with the API's reason. */
export async function api<T>(path: string, params: Params = {}, opts: { signal?: AbortSignal; token?: string } = {}): Promise<T> {
  const token = opts.token ?? getAuth()?.token;
  if (!token) {
    signOut('Sign in to continue.');
    throw new ApiError(401, 'unauthenticated', 'Sign in to continue.');
  }
  let res: Response;
  try {
    res = await fetch(path + qs(params), {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      signal: opts.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    throw new ApiError(0, 'network_error', `Could not reach the query service (${(e as Error)?.message ?? e}).`);
  }
  if (!res.ok) {
    const err = await readError(res);
    if ((res.status === 401 || res.status === 403) && !opts.token) {
      signOut(`${err.message} (${res.status} ${err.code})`);
    }
    throw err;
  }
  return (await res.json()) as T;
}

export async function exchangeClientCredentials(clientId: string, clientSecret: string): Promise<TokenResponse> {
  const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret });
  let res: Response;
  try {
    res = await fetch('/oauth/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: body.toString(),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, 'network_error', `Could not reach the query service (${(e as Error)?.message ?? e}).`);
  }
  if (!res.ok) throw await readError(res);
  return (await res.json()) as TokenResponse;
}

export function isAbort(e: unknown): boolean {
  return (e as Error)?.name === 'AbortError';
}
