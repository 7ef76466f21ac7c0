import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Pipeline as P } from '../api';
import { api } from '../api';
import { Sparkline } from '../chart';
import { ErrorBox, Loading, PageHead, Time } from '../components';
import { fmtNum } from '../format';
import { markReady } from '../perf';
import type { Route } from '../router';

const POLL_MS = 2000;
/** Keep this many seconds of samples for the sparklines. */
const WINDOW_S = 300;

interface Sample {
  t: number; // seconds (observed_at)
  p: P;
}

interface Derived {
  t: number;
  ingestRate: number | null;
  rowsRate: number | null;
  lag: number | null;
  freshness: number | null; // mean over the interval, seconds
}

function derive(a: Sample, b: Sample): Derived {
  const dt = b.t - a.t;
  const d = (x: number | null | undefined, y: number | null | undefined) => (x == null || y == null || dt <= 0 || y < x ? null : (y - x) / dt);
  const fa = a.p.consumer?.freshness_seconds;
  const fb = b.p.consumer?.freshness_seconds;
  let freshness: number | null = null;
  if (fa?.sum != null && fb?.sum != null && fa.count != null && fb.count != null && fb.count > fa.count) {
    freshness = (fb.sum - fa.sum) / (fb.count - fa.count);
  }
  return {
    t: b.t,
    ingestRate: d(a.p.ingest?.events?.produced, b.p.ingest?.events?.produced),
    rowsRate: d(a.p.consumer?.rows_inserted_total, b.p.consumer?.rows_inserted_total),
    lag: b.p.consumer?.lag_messages ?? null,
    freshness,
  };
}

function Metric({ label, value, unit, sub, children, testid }: { label: string; value: string; unit?: string; sub?: ComponentChildren; children?: ComponentChildren; testid: string }) {
  return (
    <div class="metric" data-testid={testid}>
      <div class="metric-label">{label}</div>
      <div class="metric-value">
        {value}
        {unit ? <span class="metric-unit"> {unit}</span> : null}
      </div>
      {sub ? <div class="metric-sub small muted">{sub}</div> : null}
      {children}
    </div>
  );
}

function Status({ svc, name }: { svc: { up: boolean; error: string | null; url: string } | null; name: string }) {
  if (!svc) {
    return (
      <div class="svc off" data-testid={`pipeline-${name}-status`}>
        <span class="dot" />
        <strong>{name}</strong>
        <span class="muted">not configured</span>
      </div>
    );
  }
  const { up, error, url } = svc;
  return (
    <div class={`svc ${up ? 'up' : 'down'}`} data-testid={`pipeline-${name}-status`}>
      <span class="dot" />
      <strong>{name}</strong>
      <span>{up ? 'up' : 'down'}</span>
      <span class="mono small muted ellipsis" title={url}>
        {url}
      </span>
      {error ? <span class="svc-error small">{error}</span> : null}
    </div>
  );
}

export function Pipeline(_: { route: Route }) {
  const [samples, setSamples] = useState<Sample[]>([]);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let stop = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        const p = await api<P>('/v1/pipeline');
        if (stop) return;
        const t = new Date(p.observed_at).getTime() / 1e3 || Date.now() / 1e3;
        setSamples((s) => {
          const next = s.length && s[s.length - 1].t === t ? s : [...s, { t, p }];
          return next.filter((x) => x.t >= t - WINDOW_S - 4);
        });
        setError(null);
      } catch (e) {
        if (!stop) setError(e);
      }
      if (!stop) timer = window.setTimeout(tick, POLL_MS);
    };
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, []);

  useEffect(() => {
    if (samples.length > 0 || error) markReady('pipeline');
  }, [samples.length > 0, !!error]);

  const last = samples[samples.length - 1];
  const series: Derived[] = [];
  for (let i = 1; i < samples.length; i++) series.push(derive(samples[i - 1], samples[i]));
  const cur = series[series.length - 1];
  const xs = series.map((d) => d.t);
  const f = last?.p.consumer?.freshness_seconds;
  const lifetime = f?.sum != null && f?.count ? f.sum / f.count : null;
  const waiting = samples.length < 2 ? 'measuring…' : undefined;

  return (
    <div class="view" data-testid="view-pipeline">
      <PageHead title="Pipeline" sub={<>Ingest → Kafka → consumer → ClickHouse, sampled every {POLL_MS / 1000} s.</>}>
        {last ? (
          <span class="muted small" data-testid="pipeline-observed">
            observed <Time iso={last.p.observed_at} />
          </span>
        ) : null}
      </PageHead>
      <ErrorBox error={error} title={(error as { status?: number })?.status === 404 ? 'The query service has no /v1/pipeline yet' : 'Could not read the pipeline'} />
      {!last && !error ? <Loading label="Reading the pipeline…" /> : null}
      {last ? (
        <div data-testid="pipeline">
          <div class="svc-row">
            <Status name="ingest" svc={last.p.ingest} />
            <Status name="consumer" svc={last.p.consumer} />
          </div>
          <div class="metrics">
            <Metric
              testid="metric-ingest-rate"
              label="Ingest rate"
              value={waiting ?? fmtNum(cur?.ingestRate ?? null, 1)}
              unit={waiting ? undefined : 'events/s'}
              sub={
                <>
                  {fmtNum(last.p.ingest?.events?.produced ?? null)} produced · {fmtNum(last.p.ingest?.events?.quarantined ?? null)} quarantined · {fmtNum(last.p.ingest?.events?.failed ?? null)} failed
                </>
              }
            >
              <Sparkline testid="spark-ingest" xs={xs} ys={series.map((d) => d.ingestRate)} color="#4f6bed" />
            </Metric>
            <Metric testid="metric-rows-rate" label="Rows stored" value={waiting ?? fmtNum(cur?.rowsRate ?? null, 1)} unit={waiting ? undefined : 'rows/s'} sub={<>{fmtNum(last.p.consumer?.rows_inserted_total)} inserted in all</>}>
              <Sparkline testid="spark-rows" xs={xs} ys={series.map((d) => d.rowsRate)} color="#2f9e44" />
            </Metric>
            <Metric testid="metric-lag" label="Consumer lag" value={fmtNum(last.p.consumer?.lag_messages)} unit="messages" sub={<>{fmtNum(last.p.consumer?.quarantined_total)} quarantined by the consumer</>}>
              <Sparkline testid="spark-lag" xs={xs} ys={series.map((d) => d.lag)} color="#e8590c" />
            </Metric>
            <Metric
              testid="metric-freshness"
              label="Freshness"
              value={waiting ?? fmtNum(cur?.freshness ?? null, 2)}
              unit={!waiting && cur?.freshness != null ? 's' : undefined}
              sub={
                <>
                  {cur && cur.freshness == null && last.p.consumer?.up ? 'no rows stored in the last interval' : 'event time to stored, over the last interval'} · lifetime mean{' '}
                  {lifetime != null ? `${fmtNum(lifetime, 2)} s` : '—'}
                </>
              }
            >
              <Sparkline testid="spark-freshness" xs={xs} ys={series.map((d) => d.freshness)} color="#ae3ec9" />
            </Metric>
          </div>
          <p class="muted small">Rates are differences between consecutive samples divided by the time between them; the sparklines cover the last {WINDOW_S / 60} minutes this page has been open.</p>
        </div>
      ) : null}
    </div>
  );
}
