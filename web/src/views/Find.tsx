import { useEffect, useState } from 'preact/hooks';
import type { EventPage, EyeEvent, SessionSummary, UserSessions } from '../api';
import { seg } from '../api';
import { Card, Empty, EventTable, Mono, PageHead, Time } from '../components';
import { fmtNum } from '../format';
import { Paged, apiPages, usePages } from '../pages';
import { markReady } from '../perf';
import type { Route } from '../router';
import { href, navigate } from '../router';

function SearchBox({ label, name, placeholder, initial, onSubmit, help }: { label: string; name: string; placeholder: string; initial: string; onSubmit: (v: string) => void; help: string }) {
  const [v, setV] = useState(initial);
  useEffect(() => setV(initial), [initial]);
  return (
    <form
      class="search-box"
      data-testid={`find-${name}-form`}
      onSubmit={(ev) => {
        ev.preventDefault();
        if (v.trim()) onSubmit(v.trim());
      }}
    >
      <label class="field grow">
        <span>{label}</span>
        <input type="text" name={name} data-testid={`find-${name}`} placeholder={placeholder} value={v} autoComplete="off" spellcheck={false} onInput={(ev) => setV((ev.target as HTMLInputElement).value)} />
        <span class="hint">{help}</span>
      </label>
      <button type="submit" class="btn btn-primary" data-testid={`find-${name}-submit`}>
        Find
      </button>
    </form>
  );
}

function UserSessionsResult({ user }: { user: string }) {
  const pages = usePages<SessionSummary>(
    'find',
    apiPages(`/v1/users/${seg(user)}/sessions`, { limit: 100 }, (r: UserSessions) => r.sessions),
    [user],
  );
  return (
    <Card title={<>Sessions of user <Mono>{user}</Mono></>} testid="user-sessions">
      <Paged pages={pages} errorTitle="Could not list the user's sessions" empty="No sessions found for this user." noun="sessions">
        <div class="table-wrap">
          <table class="table" data-testid="user-sessions-table">
            <thead>
              <tr>
                <th>Session</th>
                <th>Started</th>
                <th>Ended</th>
                <th>Machine</th>
                <th class="num">Events</th>
                <th>Last event</th>
              </tr>
            </thead>
            <tbody>
              {pages.items.map((s) => (
                <tr key={s.session_id} data-testid="session-row" data-session-id={s.session_id}>
                  <td class="mono ellipsis">
                    <a href={href('session', { id: s.session_id })} title={s.session_id}>
                      {s.session_id}
                    </a>
                  </td>
                  <td class="nowrap">
                    <Time iso={s.started_at} />
                  </td>
                  <td class="nowrap">{s.ended_at ? <Time iso={s.ended_at} /> : <span class="badge">open</span>}</td>
                  <td class="mono ellipsis">
                    {s.machine_id ? <a href={href('find', { machine: s.machine_id })}>{s.machine_id}</a> : <span class="muted">—</span>}
                  </td>
                  <td class="num">{fmtNum(s.event_count)}</td>
                  <td class="nowrap">
                    <Time iso={s.last_event_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Paged>
    </Card>
  );
}

function MachineEventsResult({ machine }: { machine: string }) {
  const pages = usePages<EyeEvent>(
    'find',
    apiPages(`/v1/machines/${seg(machine)}/events`, { limit: 100 }, (r: EventPage) => r.events),
    [machine],
  );
  return (
    <Card title={<>Events of machine <Mono>{machine}</Mono></>} testid="machine-events">
      <Paged pages={pages} errorTitle="Could not list the machine's events" empty="No events found for this machine." noun="events">
        <EventTable events={pages.items} testid="machine-events-table" />
      </Paged>
    </Card>
  );
}

export function Find({ route }: { route: Route }) {
  const { user = '', machine = '' } = route.params;
  useEffect(() => {
    if (!user && !machine) markReady('find');
  }, [user, machine]);
  return (
    <div class="view" data-testid="view-find">
      <PageHead title="Find" sub="Look up a session, a user's sessions or a machine's events." />
      <div class="find-grid">
        <Card>
          <SearchBox label="Session id" name="session" placeholder="e.g. 7f0c…" initial="" help="Opens the session's timeline." onSubmit={(v) => navigate('session', { id: v })} />
        </Card>
        <Card>
          <SearchBox label="User id" name="user" placeholder="e.g. u-42" initial={user} help="Lists the user's sessions, newest first." onSubmit={(v) => navigate('find', { user: v })} />
        </Card>
        <Card>
          <SearchBox label="Machine id" name="machine" placeholder="e.g. m-7" initial={machine} help="Lists the machine's events in time order." onSubmit={(v) => navigate('find', { machine: v })} />
        </Card>
      </div>
      {user ? <UserSessionsResult user={user} /> : null}
      {machine ? <MachineEventsResult machine={machine} /> : null}
      {!user && !machine ? <Empty>Enter an id above. Results keep their place in the address bar, so you can share the link.</Empty> : null}
    </div>
  );
}
