import { useEffect, useMemo, useState } from 'preact/hooks';
import type { Category, SchemaEntry } from '../api';
import { Card, Empty, ErrorBox, Loading, PageHead, Pre, Time, pretty } from '../components';
import { loadCategories, loadSchemas } from '../data';
import { fmtNum } from '../format';
import { markReady } from '../perf';
import type { Route } from '../router';
import { href } from '../router';

interface Row extends Category {
  schema: unknown | undefined;
}

function CatalogueRow({ r, schemasKnown }: { r: Row; schemasKnown: boolean }) {
  const [open, setOpen] = useState(false);
  const has = r.schema !== undefined;
  return (
    <>
      <tr data-testid="catalogue-row" data-category={r.category} data-name={r.name} data-events={String(r.events)} data-has-schema={has ? 'true' : 'false'}>
        <td class="mono">{r.category}</td>
        <td class="mono">{r.name}</td>
        <td class="num">{fmtNum(r.events)}</td>
        <td class="nowrap">
          <Time iso={r.first_seen} ms={false} />
        </td>
        <td class="nowrap">
          <Time iso={r.last_seen} ms={false} />
        </td>
        <td>
          {has ? (
            <button type="button" class="btn btn-xs" data-testid="toggle-schema" aria-expanded={open} onClick={() => setOpen(!open)}>
              {open ? 'Hide schema' : 'Schema'}
            </button>
          ) : (
            <span class="badge badge-warn" data-testid="no-schema" title={schemasKnown ? 'Events of this type are accepted without validation.' : 'Schemas could not be loaded.'}>
              {schemasKnown ? 'no schema' : 'schema unknown'}
            </span>
          )}
        </td>
        <td class="right nowrap">
          <a class="btn btn-xs btn-ghost" href={href('events', { category: r.category, name: r.name })}>
            Events
          </a>{' '}
          <a class="btn btn-xs btn-ghost" href={href('trends', { category: r.category, name: r.name, granularity: 'day', agg: 'count' })}>
            Trend
          </a>
        </td>
      </tr>
      {open && has ? (
        <tr class="detail-row" data-testid="schema-row">
          <td colSpan={7}>
            <Pre text={pretty(r.schema)} testid="schema-text" />
          </td>
        </tr>
      ) : null}
    </>
  );
}

export function Catalogue(_: { route: Route }) {
  const [cats, setCats] = useState<Category[] | null>(null);
  const [schemas, setSchemas] = useState<SchemaEntry[] | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [schemaError, setSchemaError] = useState<unknown>(null);
  const [filter, setFilter] = useState('');

  useEffect(() => {
    let live = true;
    Promise.allSettled([loadCategories(true), loadSchemas(true)]).then(([c, s]) => {
      if (!live) return;
      if (c.status === 'fulfilled') setCats(c.value);
      else setError(c.reason);
      if (s.status === 'fulfilled') setSchemas(s.value);
      else {
        setSchemas(null);
        setSchemaError(s.reason);
      }
    });
    return () => {
      live = false;
    };
  }, []);

  useEffect(() => {
    if (cats || error) markReady('catalogue');
  }, [cats, error]);

  const rows = useMemo<Row[]>(() => {
    const byType = new Map<string, unknown>();
    for (const s of schemas ?? []) byType.set(`${s.category}\u0000${s.name}`, s.schema);
    const f = filter.trim().toLowerCase();
    return (cats ?? [])
      .filter((c) => !f || `${c.category}/${c.name}`.toLowerCase().includes(f))
      .map((c) => ({ ...c, schema: byType.get(`${c.category}\u0000${c.name}`) }));
  }, [cats, schemas, filter]);

  const schemasKnown = Array.isArray(schemas);
  const withSchema = rows.filter((r) => r.schema !== undefined).length;

  return (
    <div class="view" data-testid="view-catalogue">
      <PageHead title="Catalogue" sub="Every event type stored, with its volume and JSON Schema." />
      <ErrorBox error={error} title="Could not list the event types" />
      {schemas === null && !schemaError ? <div class="alert alert-info">The query service does not serve schemas (/v1/schemas) yet.</div> : null}
      {schemaError ? <ErrorBox error={schemaError} title="Could not load the schemas" /> : null}
      {!cats && !error ? <Loading /> : null}
      {cats ? (
        <Card
          title={`${fmtNum(cats.length)} event types`}
          actions={
            <>
              <span class="muted small">{schemasKnown ? `${withSchema} of ${rows.length} shown have a schema` : ''}</span>
              <input type="search" class="input-sm" placeholder="Filter types…" data-testid="catalogue-filter" value={filter} onInput={(ev) => setFilter((ev.target as HTMLInputElement).value)} />
            </>
          }
          testid="catalogue"
        >
          {rows.length === 0 ? (
            <Empty>{cats.length === 0 ? 'No events stored yet.' : 'No type matches the filter.'}</Empty>
          ) : (
            <div class="table-wrap">
              <table class="table" data-testid="catalogue-table">
                <thead>
                  <tr>
                    <th>Category</th>
                    <th>Name</th>
                    <th class="num">Events</th>
                    <th>First seen</th>
                    <th>Last seen</th>
                    <th>Schema</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {rows.map((r) => (
                    <CatalogueRow key={`${r.category}\u0000${r.name}`} r={r} schemasKnown={schemasKnown} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Card>
      ) : null}
    </div>
  );
}
