import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import type { Aggregate } from '../api';
import { api, isAbort } from '../api';
import { UChart } from '../chart';
import { Card, Empty, ErrorBox, FilterActions, Filters, Loading, PageHead, RangeInputs, TextField } from '../components';
import { useCategories } from '../data';
import { fmtNum } from '../format';
import { markReady } from '../perf';
import type { Route } from '../router';
import { navigate } from '../router';

const GRANULARITIES = ['minute', 'hour', 'day', 'week', 'month', 'year', 'none'];
const AGGS = ['count', 'sum', 'avg', 'min', 'max', 'p50', 'p90', 'p95', 'p99'];
const FILLS = ['none', 'zero', 'null'];

function zones(): string[] {
  try {
    const z = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
    return z.includes('UTC') ? z : ['UTC', ...z];
  } catch {
    return ['UTC'];
  }
}

function safeTz(tz: string): string {
  try {
    uPlot.tzDate(new Date(0), tz);
    return tz;
  } catch {
    return 'Etc/UTC';
  }
}

interface Settings {
  category: string;
  name: string;
  from: string;
  to: string;
  granularity: string;
  agg: string;
  tz: string;
  fill: string;
}

function settingsOf(p: Record<string, string>): Settings {
  return {
    category: p.category ?? '',
    name: p.name ?? '',
    from: p.from ?? '',
    to: p.to ?? '',
    granularity: GRANULARITIES.includes(p.granularity) ? p.granularity : 'day',
    agg: AGGS.includes(p.agg) ? p.agg : 'count',
    tz: p.tz || 'UTC',
    fill: FILLS.includes(p.fill) ? p.fill : 'none',
  };
}

/** A setting chosen from a list; choosing applies it at once. */
function SelectField({ label, name, value, options, choose, text = (o) => o, onPick }: { label: string; name: keyof Settings; value: string; options: string[]; choose?: boolean; text?: (o: string) => string; onPick: (k: keyof Settings, v: string) => void }) {
  return (
    <label class="field">
      <span>{label}</span>
      <select name={name} data-testid={`select-${name}`} value={value} onChange={(ev) => onPick(name, (ev.target as HTMLSelectElement).value)}>
        {choose ? <option value="">Choose…</option> : null}
        {options.map((o) => (
          <option key={o} value={o}>
            {text(o)}
          </option>
        ))}
      </select>
    </label>
  );
}

function TrendChart({ agg, onDrawn }: { agg: Aggregate; onDrawn: () => void }) {
  const tip = useRef<HTMLDivElement | null>(null);
  const data = useMemo<uPlot.AlignedData>(() => [agg.buckets.map((b) => new Date(b.start).getTime() / 1e3), agg.buckets.map((b) => b.value)], [agg]);
  const tz = safeTz(agg.tz);
  const showPoints = agg.buckets.length <= 120;
  const drawn = useRef(onDrawn);
  drawn.current = onDrawn;
  return (
    <UChart
      testid="trend-chart"
      height={320}
      data={data}
      deps={[agg]}
      onCreate={(u) => {
        const t = document.createElement('div');
        t.className = 'tooltip';
        t.setAttribute('data-testid', 'trend-tooltip');
        t.hidden = true;
        u.over.appendChild(t);
        tip.current = t;
      }}
      build={(width, height) => ({
        width,
        height,
        tzDate: (ts: number) => uPlot.tzDate(new Date(ts * 1e3), tz),
        legend: { show: false },
        cursor: { y: false, points: { size: 9 } },
        scales: { x: { time: true } },
        axes: [
          { stroke: '#667', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#dde' } },
          { stroke: '#667', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#dde' }, size: 64, values: (_u, splits) => splits.map((v) => fmtNum(v, 3)) },
        ],
        series: [
          {},
          {
            label: `${agg.agg}`,
            stroke: '#4f6bed',
            width: 2,
            fill: 'rgba(79,107,237,0.10)',
            spanGaps: false,
            points: { show: showPoints, size: 5, fill: '#4f6bed' },
          },
        ],
        hooks: {
          draw: [() => drawn.current()],
          setCursor: [
            (u: uPlot) => {
              const t = tip.current;
              if (!t) return;
              const i = u.cursor.idx;
              if (i == null || !agg.buckets[i] || u.cursor.left == null || u.cursor.left < 0) {
                t.hidden = true;
                return;
              }
              const b = agg.buckets[i];
              t.textContent = `${b.start}\n${agg.agg}: ${b.value === null ? 'no value' : fmtNum(b.value, 6)}\ncount: ${fmtNum(b.count)}`;
              t.hidden = false;
              const x = u.valToPos(data[0][i], 'x');
              const yv = b.value ?? 0;
              const y = u.valToPos(yv, 'y');
              const w = u.over.clientWidth;
              t.style.left = `${Math.min(Math.max(0, x + 12), Math.max(0, w - 200))}px`;
              t.style.top = `${Math.max(0, y - 60)}px`;
            },
          ],
        },
      })}
    />
  );
}

export function Trends({ route }: { route: Route }) {
  const s = settingsOf(route.params);
  const [form, setForm] = useState<Settings>(s);
  useEffect(() => setForm(s), [route.raw]);
  const cats = useCategories();
  const [agg, setAgg] = useState<Aggregate | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const pending = useRef(false);
  const ready = s.category !== '' && s.name !== '';
  const key = JSON.stringify(s);

  useEffect(() => {
    if (!ready) {
      setAgg(null);
      markReady('trends');
      return;
    }
    const ac = new AbortController();
    setBusy(true);
    setError(null);
    api<Aggregate>('/v1/aggregate', { ...s }, { signal: ac.signal })
      .then((r) => {
        performance.mark('eye:trends:data');
        pending.current = true;
        setAgg(r);
        if (r.buckets.length === 0) markReady('trends');
      })
      .catch((e) => {
        if (isAbort(e)) return;
        setError(e);
        setAgg(null);
        markReady('trends');
      })
      .finally(() => {
        if (!ac.signal.aborted) setBusy(false);
      });
    return () => ac.abort();
  }, [key]);

  const onDrawn = () => {
    if (!pending.current) return;
    pending.current = false;
    try {
      performance.measure('eye:trends:redraw', 'eye:trends:data');
    } catch {
      /* ignore */
    }
    markReady('trends');
  };

  const apply = (f: Settings) => navigate('trends', { ...f });
  const set = (k: keyof Settings, v: string, now = false) => {
    const f = { ...form, [k]: v };
    if (k === 'category') {
      const names = (cats.data ?? []).filter((c) => c.category === v).map((c) => c.name);
      if (!names.includes(f.name)) f.name = names[0] ?? '';
    }
    setForm(f);
    if (now && f.category && f.name) apply(f);
  };

  const pick = (k: keyof Settings, v: string) => set(k, v, true);

  const catOptions = useMemo(() => {
    const all = new Set((cats.data ?? []).map((c) => c.category));
    if (form.category) all.add(form.category);
    return [...all].sort();
  }, [cats.data, form.category]);
  const nameOptions = useMemo(() => {
    const all = new Set((cats.data ?? []).filter((c) => c.category === form.category).map((c) => c.name));
    if (form.name) all.add(form.name);
    return [...all].sort();
  }, [cats.data, form.category, form.name]);
  const tzList = useMemo(zones, []);

  const total = agg ? agg.buckets.reduce((n, b) => n + b.count, 0) : 0;

  return (
    <div class="view" data-testid="view-trends">
      <PageHead title="Trends" sub="An aggregate of one event type's values over time." />
      <Filters testid="trends-filters" onApply={() => apply(form)}>
        <SelectField label="Category" name="category" value={form.category} options={catOptions} choose onPick={pick} />
        <SelectField label="Name" name="name" value={form.name} options={nameOptions} choose onPick={pick} />
        <SelectField label="Granularity" name="granularity" value={form.granularity} options={GRANULARITIES} onPick={pick} />
        <SelectField label="Aggregation" name="agg" value={form.agg} options={AGGS} onPick={pick} />
        <SelectField label="Fill" name="fill" value={form.fill} options={FILLS} text={(g) => (g === 'none' ? 'none (skip empty)' : g)} onPick={pick} />
        <TextField label="Time zone" name="tz" testid="input-tz" list="dl-tz" options={tzList} value={form.tz} onValue={(v) => set('tz', v)} />
        <RangeInputs from={form.from} to={form.to} onChange={(from, to) => setForm({ ...form, from, to })} />
        <FilterActions testid="apply-trends" label="Draw" disabled={!form.category || !form.name} />
      </Filters>
      {cats.error ? <ErrorBox error={cats.error} title="Could not load the event types" /> : null}
      {!ready ? <Empty>Choose a category and a name to draw their trend.</Empty> : null}
      <ErrorBox error={error} title="Could not aggregate" />
      {ready && busy && !agg ? <Loading label="Aggregating…" /> : null}
      {agg ? (
        <>
          <Card
            title={
              <>
                <span class="mono">{agg.agg}</span> of <span class="mono">{agg.category}/{agg.name}</span> per {agg.granularity === 'none' ? 'whole range' : agg.granularity}
              </>
            }
            actions={
              <span class="muted small">
                {fmtNum(agg.buckets.length)} buckets · {fmtNum(total)} events · {agg.tz}
                {busy ? ' · updating…' : ''}
              </span>
            }
            testid="trend-card"
          >
            {agg.buckets.length === 0 ? <Empty>No events of this type in this range.</Empty> : <TrendChart agg={agg} onDrawn={onDrawn} />}
          </Card>
          {agg.buckets.length > 0 ? (
            <Card title="Points" testid="trend-points">
              <div class="table-wrap scroll-y">
                <table class="table" data-testid="trend-table">
                  <thead>
                    <tr>
                      <th>Bucket start ({agg.tz})</th>
                      <th class="num">Value ({agg.agg})</th>
                      <th class="num">Count</th>
                    </tr>
                  </thead>
                  <tbody>
                    {agg.buckets.map((b) => (
                      <tr key={b.start} data-testid="trend-row" data-start={b.start} data-value={b.value === null ? '' : String(b.value)} data-count={String(b.count)}>
                        <td class="mono">{b.start}</td>
                        <td class="num">{b.value === null ? <span class="muted">null</span> : fmtNum(b.value, 6)}</td>
                        <td class="num">{fmtNum(b.count)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </Card>
          ) : null}
        </>
      ) : null}
    </div>
  );
}
