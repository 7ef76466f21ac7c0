import { useEffect, useRef, useState } from 'preact/hooks';
import type { Rejected as Rej, RejectedPage } from '../api';
import { api, isAbort } from '../api';
import { Card, Empty, ErrorBox, LoadMore, Loading, PageHead, RangeInputs, Time } from '../components';
import { fmtNum } from '../format';
import { markReady } from '../perf';
import type { Route } from '../router';
import { href, navigate } from '../router';

const COMMON_REASONS = [
  'invalid_json',
  'invalid_timestamp',
  'timestamp_too_old',
  'timestamp_in_future',
  'schema_violation',
  'unknown_event_type',
  'missing_field',
  'invalid_type',
  'too_large',
  'duplicate',
];

function RejectedRow({ r }: { r: Rej }) {
  const [open, setOpen] = useState(false);
  const hint = [r.category && r.name ? `${r.category}/${r.name}` : r.category || r.name, r.event_id && `event ${r.event_id}`, r.session_id && `session ${r.session_id}`].filter(Boolean);
  return (
    <li class="rej" data-testid="rejected-row" data-rejection-id={r.rejection_id}>
      <div class="rej-head">
        <Time iso={r.received_at} />
        <span class="badge">{r.source}</span>
        {r.client ? (
          <span class="muted small">
            client <span class="mono">{r.client}</span>
          </span>
        ) : null}
        {hint.length ? <span class="mono small muted rej-hint">{hint.join(' · ')}</span> : null}
        <span class="grow" />
        <span class="muted small mono" title={r.raw_sha256 ? `sha256 ${r.raw_sha256}` : undefined}>
          {fmtNum(r.raw_bytes)} bytes{r.raw_truncated ? ' (truncated)' : ''}
        </span>
      </div>
      <ul class="reasons" data-testid="rejected-reasons">
        {(r.reasons ?? []).map((x, i) => (
          <li key={i}>
            <a class="mono code-chip" href={href('rejected', { reason: x.code })} title="Show only this reason">
              {x.code}
            </a>{' '}
            <span class="mono field-name">{x.field || '(item)'}</span> <span>{x.message}</span>
          </li>
        ))}
        {r.reasons === null ? <li class="muted">reasons not readable</li> : null}
      </ul>
      <div class={`raw ${open ? 'open' : ''}`}>
        <pre class="pre" data-testid="rejected-raw">
          {r.raw}
        </pre>
        {r.raw.length > 300 || r.raw.split('\n').length > 6 ? (
          <button type="button" class="btn btn-xs btn-ghost" onClick={() => setOpen(!open)}>
            {open ? 'Collapse payload' : 'Show whole payload'}
          </button>
        ) : null}
      </div>
      <div class="muted small mono rej-id">{r.rejection_id}</div>
    </li>
  );
}

export function Rejected({ route }: { route: Route }) {
  const p = route.params;
  const filters = { reason: p.reason ?? '', from: p.from ?? '', to: p.to ?? '' };
  const [form, setForm] = useState(filters);
  useEffect(() => setForm(filters), [route.raw]);
  const [rows, setRows] = useState<Rej[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const key = JSON.stringify(filters);
  const cur = useRef<string | null>(null);
  cur.current = cursor;

  useEffect(() => {
    const ac = new AbortController();
    setRows([]);
    setLoaded(false);
    setError(null);
    setBusy(true);
    api<RejectedPage>('/v1/rejected', { ...filters, limit: 50 }, { signal: ac.signal })
      .then((r) => {
        setRows(r.rejected);
        setCursor(r.next_cursor);
        setLoaded(true);
      })
      .catch((e) => {
        if (!isAbort(e)) setError(e);
      })
      .finally(() => {
        if (!ac.signal.aborted) setBusy(false);
      });
    return () => ac.abort();
  }, [key]);

  useEffect(() => {
    if (loaded || error) markReady('rejected');
  }, [loaded, error]);

  const more = async () => {
    if (!cur.current) return;
    setBusy(true);
    try {
      const r = await api<RejectedPage>('/v1/rejected', { ...filters, limit: 50, cursor: cur.current });
      setRows((x) => [...x, ...r.rejected]);
      setCursor(r.next_cursor);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="view" data-testid="view-rejected">
      <PageHead title="Rejected" sub="What ingest or the consumer refused, with the reasons and the payload as received." />
      <Card>
        <form
          class="filters"
          data-testid="rejected-filters"
          onSubmit={(ev) => {
            ev.preventDefault();
            navigate('rejected', form);
          }}
        >
          <label class="field">
            <span>Reason code</span>
            <input type="text" name="reason" list="dl-reasons" data-testid="input-reason" placeholder="any" value={form.reason} onInput={(ev) => setForm({ ...form, reason: (ev.target as HTMLInputElement).value })} />
            <datalist id="dl-reasons">
              {COMMON_REASONS.map((c) => (
                <option key={c} value={c} />
              ))}
            </datalist>
          </label>
          <RangeInputs from={form.from} to={form.to} onChange={(from, to) => setForm({ ...form, from, to })} />
          <div class="field actions">
            <button type="submit" class="btn btn-primary" data-testid="apply-rejected">
              Apply
            </button>
            <button type="button" class="btn btn-ghost" onClick={() => navigate('rejected', {})}>
              Clear
            </button>
          </div>
        </form>
      </Card>
      <Card title="Rejections" testid="rejected-results">
        <ErrorBox error={error} title="Could not list rejections" />
        {!loaded && busy ? <Loading /> : null}
        {loaded && rows.length === 0 ? <Empty>Nothing was rejected{filters.reason || filters.from || filters.to ? ' that matches these filters' : ''}.</Empty> : null}
        {rows.length > 0 ? (
          <ul class="rej-list" data-testid="rejected-list">
            {rows.map((r) => (
              <RejectedRow key={r.rejection_id} r={r} />
            ))}
          </ul>
        ) : null}
        {loaded ? <LoadMore onClick={more} busy={busy} hasMore={cursor !== null} count={rows.length} noun="rejections" /> : null}
      </Card>
    </div>
  );
}
