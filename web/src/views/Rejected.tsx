import { useEffect, useState } from 'preact/hooks';
import type { Rejected as Rej, RejectedPage } from '../api';
import { Card, FilterActions, Filters, PageHead, RangeInputs, TextField, Time } from '../components';
import { fmtNum } from '../format';
import { Paged, apiPages, usePages } from '../pages';
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
  const key = JSON.stringify(filters);
  const pages = usePages<Rej>(
    'rejected',
    apiPages('/v1/rejected', { ...filters, limit: 50 }, (r: RejectedPage) => r.rejected),
    [key],
  );

  return (
    <div class="view" data-testid="view-rejected">
      <PageHead title="Rejected" sub="What ingest or the consumer refused, with the reasons and the payload as received." />
      <Filters testid="rejected-filters" onApply={() => navigate('rejected', form)}>
        <TextField label="Reason code" name="reason" testid="input-reason" list="dl-reasons" options={COMMON_REASONS} placeholder="any" value={form.reason} onValue={(reason) => setForm({ ...form, reason })} />
        <RangeInputs from={form.from} to={form.to} onChange={(from, to) => setForm({ ...form, from, to })} />
        <FilterActions testid="apply-rejected" onClear={() => navigate('rejected', {})} />
      </Filters>
      <Card title="Rejections" testid="rejected-results">
        <Paged pages={pages} errorTitle="Could not list rejections" empty={<>Nothing was rejected{filters.reason || filters.from || filters.to ? ' that matches these filters' : ''}.</>} noun="rejections">
          <ul class="rej-list" data-testid="rejected-list">
            {pages.items.map((r) => (
              <RejectedRow key={r.rejection_id} r={r} />
            ))}
          </ul>
        </Paged>
      </Card>
    </div>
  );
}
