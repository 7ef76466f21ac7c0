"""Runs every migration and every query The Eye sends on current ClickHouse (chdb).

Reads `eye-admin sql` output (JSON) on stdin. The local server is ClickHouse 18.16; this
proves the same SQL also works, with the same results, on the release chdb embeds.
Runs every check and exits non-zero when any failed.
"""

import datetime
import json
import sys
import tempfile
import time
import zoneinfo

from chdb import session

SESSION = "sql-check-session"


# Aggregation samples (see tools/admin/src/samples.rs): metric/cpu in Europe/Paris over
# [2026-03-28, 2026-04-01), around the spring daylight-saving shift.
METRIC = [
    ("2026-03-28T22:30:00+00:00", 1.0),
    ("2026-03-29T00:30:00+00:00", 3.0),
    ("2026-03-29T23:30:00+00:00", 5.0),
    ("2026-03-30T10:00:00+00:00", 7.0),
    ("2026-03-30T11:00:00+00:00", None),
    ("2026-04-05T00:00:00+00:00", 100.0),
]
RANGE = ("2026-03-28T00:00:00+00:00", "2026-04-01T00:00:00+00:00")


def bucket(granularity, t, tz):
    """The bucket start of `t`, from local calendar fields (independent of the SQL)."""
    local = t.astimezone(tz)
    midnight = lambda d: datetime.datetime(d.year, d.month, d.day, tzinfo=tz)
    if granularity == "none":
        return 0
    start = {
        "minute": lambda: local.replace(second=0, microsecond=0),
        "hour": lambda: local.replace(minute=0, second=0, microsecond=0),
        "day": lambda: midnight(local),
        "week": lambda: midnight(local.date() - datetime.timedelta(days=local.weekday())),
        "month": lambda: midnight(local.date().replace(day=1)),
        "year": lambda: midnight(local.date().replace(month=1, day=1)),
    }[granularity]()
    return int(start.timestamp())


def aggregate(agg, values, events):
    v = sorted(values)
    q = lambda p: v[min(int(p * len(v)), len(v) - 1)]
    return {
        "avg": lambda: sum(v) / len(v),
        "min": lambda: v[0],
        "max": lambda: v[-1],
        "sum": lambda: sum(v),
        "count": lambda: float(events),
        "p50": lambda: q(0.5),
        "p90": lambda: q(0.9),
        "p95": lambda: q(0.95),
        "p99": lambda: q(0.99),
    }[agg]()


def check_aggregates(run, expect, queries):
    rows = ", ".join(
        f"('00000000-0000-7000-8000-0000000001{i:02d}', 'metric-session', 'metric', 'cpu', "
        f"{int(datetime.datetime.fromisoformat(ts).timestamp()) * 1000000}, 1, '{{}}', {'NULL' if v is None else v})"
        for i, (ts, v) in enumerate(METRIC)
    )
    columns = "(event_id, session_id, category, name, ts_us, received_at_us, data, value)"
    run("insert metric rows", f"INSERT INTO events {columns} VALUES {rows}")
    # A replayed copy of the second value: aggregated once.
    run("insert a replayed metric", f"INSERT INTO events {columns} VALUES "
        f"('00000000-0000-7000-8000-000000000101', 'metric-session', 'metric', 'cpu', "
        f"{int(datetime.datetime.fromisoformat(METRIC[1][0]).timestamp()) * 1000000}, 1, '{{}}', 3.0)")
    tz = zoneinfo.ZoneInfo("Europe/Paris")
    lo, hi = (datetime.datetime.fromisoformat(t) for t in RANGE)
    shapes = [n for n in queries if n.startswith("aggregate_")]
    expect("every granularity and aggregation has a sample", len(shapes) == 7 + 9 - 1, shapes)
    for name in shapes:
        _, granularity, agg = name.split("_")
        groups = {}
        for ts, v in METRIC:
            t = datetime.datetime.fromisoformat(ts)
            if not (lo <= t < hi) or (agg != "count" and v is None):
                continue
            g = groups.setdefault(bucket(granularity, t, tz), ([], [0]))
            if v is not None:
                g[0].append(v)
            g[1][0] += 1
        want = [(start, aggregate(agg, vals, n[0]), n[0]) for start, (vals, n) in sorted(groups.items())]
        got = run(name, queries[name]) or []
        got = [(int(r["start_s"]), float(r["value"]), int(r["events"])) for r in got]
        expect(f"{name}: buckets, values and counts as computed independently", got == want, (got, want))


def check_lifecycle(run, expect, queries):
    """Deletion and retention, last: they remove sample rows. The view's storage table is
    named as Store::view_storage names it, from the view's UUID (an Atomic database)."""
    uuid = (run("lifecycle_view_uuid", queries["lifecycle_view_uuid"]) or [{}])[0]
    uuid = next(iter(uuid.values()), "")
    expect("lifecycle_view_uuid: events_by_type has a UUID here (Atomic database)",
           bool(uuid) and uuid != "00000000-0000-0000-0000-000000000000", uuid)
    storage = f"`.inner_id.{uuid}`"
    names = sorted(n for n in queries if n.startswith("lifecycle_") and n != "lifecycle_view_uuid")
    # Reads and counts, then the mutations and drops, then the TTL.
    order = lambda n: (n.startswith("lifecycle_ttl_"), "_mutation_" in n or "_delete_" in n or "_drop_" in n)
    session_rows = f"SELECT count() AS n FROM events WHERE session_id = '{SESSION}'"
    before = run("lifecycle: the deleted session's rows, before", session_rows) or [{}]
    expect("lifecycle: the session to delete has rows", int(before[0].get("n", 0)) > 0, before)
    # A quarantined record of the session, replayed once: the deletion finds its rejection id
    # first, then removes the outcome by that id.
    rid = "00000000-0000-7000-8000-000000000001"
    run("lifecycle: a quarantined record of the session",
        "INSERT INTO rejected_events (rejection_id, received_at_us, source, client, codes, reasons, raw, "
        f"event_id, session_id, category, name) VALUES ('{rid}', 7, 'ingest', 'anonymous', "
        f"['schema_required'], '[]', '{{}}', '', '{SESSION}', 'c', 'n')")
    run("lifecycle: its replay outcome",
        "INSERT INTO rejected_replays (rejection_id, replay_id, replayed_at_us, replayed_by, result, "
        f"codes, reasons) VALUES ('{rid}', '{rid}', 8, 'ops', 'rejected', ['schema_required'], '[]')")
    found = run("lifecycle_deletion_rejections_0", queries["lifecycle_deletion_rejections_0"]) or []
    expect("lifecycle: the session's quarantined record is looked up by its rejection id",
           [next(iter(r.values()), "") for r in found] == [rid], found)
    replays = f"SELECT count() AS n FROM rejected_replays WHERE rejection_id = '{rid}'"
    for name in sorted(names, key=order):
        run(name, queries[name].replace("`.inner.events_by_type`", storage))
    for _ in range(300):
        pending = run("lifecycle: mutations pending", queries["lifecycle_deletion_pending"]) or [{}]
        if int(next(iter(pending[0].values()), 1)) == 0:
            break
        time.sleep(0.1)
    left = run("lifecycle: the deleted session's rows, after", session_rows) or [{}]
    expect("lifecycle: deletion mutations removed the session's events", int(left[0].get("n", 1)) == 0, left)
    left = run("lifecycle: the replay outcome, after", replays) or [{}]
    expect("lifecycle: deletion mutations removed the record's replay outcome", int(left[0].get("n", 1)) == 0, left)
    ttl = run("lifecycle: TTL set on the view's storage",
              f"SELECT create_table_query AS q FROM system.tables WHERE database = 'eye' "
              f"AND name = '.inner_id.{uuid}'") or [{}]
    expect("lifecycle: the view's storage has the TTL", "TTL" in ttl[0].get("q", ""), ttl)


def main() -> int:
    spec = json.load(sys.stdin)
    s = session.Session(tempfile.mkdtemp(prefix="eye-sqlcheck-"))
    version = s.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
    passed = 0
    failed = []

    def run(name, sql, fmt="JSONEachRow", already_ok=False):
        nonlocal passed
        try:
            out = s.query(sql, fmt).bytes().decode()
        except Exception as e:  # chdb raises its own error types
            if already_ok and "already exists" in str(e):
                # The migration runner counts this as applied (ALTER ... ADD COLUMN again).
                passed += 1
                print(f"ok   {name} (already applied)")
                return []
            failed.append(name)
            print(f"FAIL {name}: {e}\n  SQL: {sql}", file=sys.stderr)
            return None
        passed += 1
        print(f"ok   {name}")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def expect(name, cond, detail):
        nonlocal passed
        if cond:
            passed += 1
            print(f"ok   {name}")
        else:
            failed.append(name)
            print(f"FAIL {name}: {detail}", file=sys.stderr)

    run("create database", "CREATE DATABASE IF NOT EXISTS eye")
    run("use database", "USE eye")
    # Twice: migrations must be idempotent.
    for attempt in (1, 2):
        for m in spec["migrations"]:
            for i, stmt in enumerate(m["statements"]):
                run(f"migration {m['name']} statement {i} (pass {attempt})", stmt, already_ok=attempt == 2)

    queries = {q["name"]: q["sql"] for q in spec["queries"]}
    for name in ("ping", "create_migrations_table", "record_migration"):
        run(name, queries[name])
    applied = run("applied_migrations", queries["applied_migrations"]) or []
    expect("record_migration is read back", [r["version"] for r in applied] == [999], applied)

    # Three events of the session, posted out of order, one delivered twice; and another
    # session's event that must not appear.
    run(
        "insert sample rows",
        "INSERT INTO events (event_id, session_id, category, name, ts_us, received_at_us, data, value) VALUES "
        f"('00000000-0000-7000-8000-000000000003', '{SESSION}', 'c', 'n', 3000000, 1, '{{}}', NULL), "
        f"('00000000-0000-7000-8000-000000000001', '{SESSION}', 'c', 'n', 1000000, 1, '{{\"a\":1}}', 1.5), "
        f"('00000000-0000-7000-8000-000000000002', '{SESSION}', 'c', 'n', 2000000, 1, '{{}}', NULL), "
        "('00000000-0000-7000-8000-000000000009', 'other', 'c', 'n', 500000, 1, '{}', NULL)",
    )
    run(
        "insert a replayed copy",
        "INSERT INTO events (event_id, session_id, category, name, ts_us, received_at_us, data, value) VALUES "
        f"('00000000-0000-7000-8000-000000000001', '{SESSION}', 'c', 'n', 1000000, 1, '{{\"a\":1}}', 1.5)",
    )
    rows = run("session_events", queries["session_events"]) or []
    expect(
        "session_events: one row per event, in time order",
        [r["ts_us"] for r in rows] == [1000000, 2000000, 3000000]
        and len({r["event_id"] for r in rows}) == 3
        and all(r["session_id"] == SESSION for r in rows),
        rows,
    )
    counts = run("event_counts", queries["event_counts"]) or [{}]
    expect(
        "event_counts: distinct events",
        counts[0].get("distinct_events") == 4 and counts[0].get("stored_rows") in (4, 5),
        counts,
    )
    copies = run("stored_copies", queries["stored_copies"]) or []
    found = sorted((r["session_id"], r["event_id"][-2:], r["ts_us"]) for r in copies)
    expect(
        "stored_copies: the stored copies of the asked events, from event_keys",
        found in ([("other", "09", 500000), (SESSION, "01", 1000000)],
                  [("other", "09", 500000), (SESSION, "01", 1000000), (SESSION, "01", 1000000)]),
        copies,
    )
    ts = run("materialized ts", "SELECT toString(ts) AS ts FROM events WHERE ts_us = 3000000 LIMIT 1") or []
    expect("ts is event time in seconds, UTC", ts == [{"ts": "1970-01-01 00:00:03"}], ts)

    # The quarantine: two rejections, one replayed; listing is in arrival order, filtered by
    # reason and resumable after a cursor.
    run(
        "insert rejections",
        "INSERT INTO rejected_events (rejection_id, received_at_us, source, client, codes, reasons, raw, "
        "event_id, session_id, category, name) VALUES "
        "('00000000-0000-7000-8000-000000000011', 5, 'ingest', 'anonymous', ['invalid_timestamp'], '[]', '{}', '', 's', 'c', 'n'), "
        "('00000000-0000-7000-8000-000000000012', 6, 'ingest', 'anonymous', ['schema_required'], '[]', '{}', '', 's', 'c', 'n'), "
        "('00000000-0000-7000-8000-000000000011', 5, 'ingest', 'anonymous', ['invalid_timestamp'], '[]', '{}', '', 's', 'c', 'n')",
    )
    listed = run("rejected_all", queries["rejected_all"]) or []
    expect(
        "rejected_all: each rejection once, in arrival order",
        [r["received_at_us"] for r in listed] == [5, 6],
        listed,
    )
    filtered = run("rejected_filtered", queries["rejected_filtered"]) or []
    expect(
        "rejected_filtered: reason and cursor applied",
        [r["rejection_id"] for r in filtered] == ["00000000-0000-7000-8000-000000000011"],
        filtered,
    )
    # Session lifecycle: the end arrives before the start.
    run(
        "insert session records",
        "INSERT INTO sessions (update_id, session_id, kind, user_id, machine_id, org_id, at_us, received_at_us) VALUES "
        f"('00000000-0000-7000-8000-000000000021', '{SESSION}', 'end', '', '', '', 9000000, 1), "
        f"('00000000-0000-7000-8000-000000000022', '{SESSION}', 'start', 'u', 'm', '11232', 1000000, 2)",
    )
    meta = run("session_meta", queries["session_meta"]) or []
    expect(
        "session_meta merges start and end",
        len(meta) == 1
        and meta[0]["user_id"] == "u"
        and meta[0]["org_id"] == "11232"
        and int(meta[0]["started_at_us"]) == 1000000
        and int(meta[0]["ended_at_us"]) == 9000000,
        meta,
    )

    stats = run("session_stats", queries["session_stats"]) or []
    expect(
        "session_stats: distinct events, first and last time",
        [(int(r["events"]), int(r["first_us"]), int(r["last_us"])) for r in stats] == [(3, 1000000, 3000000)],
        stats,
    )
    # History across sessions, through the owner index (migration 0006).
    users = run("user_sessions", queries["user_sessions"]) or []
    expect(
        "user_sessions: the user's session with metadata and event statistics",
        [(r["session_id"], r["machine_id"], int(r["started_at_us"]), int(r["ended_at_us"]), int(r["events"]))
         for r in users] == [(SESSION, "m", 1000000, 9000000, 3)],
        users,
    )
    after = run("user_sessions_after", queries["user_sessions_after"])
    expect("user_sessions_after: nothing older than the cursor", after == [], after)
    machine = run("machine_events", queries["machine_events"]) or []
    expect(
        "machine_events: the machine's events from a time on, once each",
        [int(r["ts_us"]) for r in machine] == [2000000, 3000000],
        machine,
    )
    span = run("events_time_range", queries["events_time_range"]) or []
    expect(
        "events_time_range: every type, one row per event",
        [int(r["ts_us"]) for r in span] == [500000, 1000000, 2000000],
        span,
    )
    named = run("events_name_only", queries["events_name_only"]) or []
    expect(
        "events_name_only: newest first",
        [int(r["ts_us"]) for r in named] == [3000000, 2000000, 1000000, 500000],
        named,
    )

    # Identities (migration 0009): the user's first two events, the anonymous id's first and
    # third (the first names both), the other session's event under a stranger; each row
    # stored twice, as a replayed batch would.
    actor = lambda a, n, ts, s=SESSION: f"('{a}', {ts}, '00000000-0000-7000-8000-00000000000{n}', '{s}', {ts})"
    actors = ", ".join([actor("sample-user", 1, 1000000), actor("sample-user", 2, 2000000),
                        actor("sample-anon", 1, 1000000), actor("sample-anon", 3, 3000000),
                        actor("stranger", 9, 500000, "other")])
    link = "('sample-user', 'sample-anon', 'identify', '00000000-0000-7000-8000-000000000001', 's', 1)"
    for attempt in (1, 2):
        run(f"insert identity actors ({attempt})",
            f"INSERT INTO identity_actors (actor_id, ts_us, event_id, session_id, client_ts_us) VALUES {actors}")
        run(f"insert identity links ({attempt})",
            f"INSERT INTO identity_links (user_id, anonymous_id, via, event_id, session_id, ts_us) VALUES {link}")
    linked = run("linked_ids", queries["linked_ids"]) or []
    expect("linked_ids: each linked id once", linked == [{"anonymous_id": "sample-anon"}], linked)
    seen = run("actor_seen", queries["actor_seen"]) or [{}]
    expect("actor_seen: an id some event names", [int(v) for v in seen[0].values()] == [1], seen)
    mine = run("identity_events", queries["identity_events"]) or []
    expect(
        "identity_events: the ids' events once each, in time order, no stranger's",
        [int(r["ts_us"]) for r in mine] == [1000000, 2000000, 3000000],
        mine,
    )
    older = run("identity_events_desc_after", queries["identity_events_desc_after"]) or []
    expect(
        "identity_events_desc_after: newest first after the cursor, limit",
        [int(r["ts_us"]) for r in older] == [2000000],
        older,
    )

    # The second ordering is filled by the inserts above; pages resume after a cursor.
    page = run("events_by_type_page", queries["events_by_type_page"]) or []
    expect(
        "events_by_type_page: type filter, cursor, one row per event",
        [int(r["ts_us"]) for r in page] == [2000000, 3000000],
        page,
    )
    desc = run("session_events_page_desc", queries["session_events_page_desc"]) or []
    expect(
        "session_events_page_desc: newest first, limit",
        [int(r["ts_us"]) for r in desc] == [3000000, 2000000],
        desc,
    )

    cats = run("categories", queries["categories"]) or []
    expect(
        "categories: distinct events per type, first and last time",
        [(r["category"], r["name"], int(r["events"]), int(r["first_us"]), int(r["last_us"])) for r in cats]
        == [("c", "n", 4, 500000, 3000000)],
        cats,
    )

    check_aggregates(run, expect, queries)

    # Batch-insert deduplication, as the consumer turns it on where the server has it: the
    # same batch inserted again with the same token is skipped; another token is not.
    supported = run("insert_token_supported", queries["insert_token_supported"]) or [{}]
    expect("insert tokens supported on current ClickHouse", list(supported[0].values()) == ["1"] or list(supported[0].values()) == [1], supported)
    for t in ("events", "rejected", "sessions", "links", "actors"):
        run(f"insert_dedup_window_{t}", queries[f"insert_dedup_window_{t}"])
    row = ("('00000000-0000-7000-8000-0000000000d1', 'dedup-session', 'c', 'n', 7000000, 1, '{}', NULL)")
    cols = "INSERT INTO events (event_id, session_id, category, name, ts_us, received_at_us, data, value)"
    for i, token in enumerate(("eye.events/0/10-19", "eye.events/0/10-19", "eye.events/0/10-25")):
        run(f"tokened insert {i}", f"{cols} SETTINGS insert_deduplication_token = '{token}' VALUES {row}")
    stored = run("tokened rows", "SELECT count() AS n FROM events WHERE session_id = 'dedup-session'") or [{}]
    expect("a repeated token is skipped, a new one is not", int(stored[0].get("n", 0)) == 2, stored)

    covered = {"session_stats", "user_sessions", "user_sessions_after", "machine_events", "events_time_range",
               "events_name_only", "categories", "events_by_type_page", "session_events_page_desc", "ping", "create_migrations_table", "record_migration", "applied_migrations",
               "session_events", "event_counts", "rejected_all", "rejected_filtered", "session_meta",
               "insert_token_supported", "insert_dedup_window_events", "insert_dedup_window_rejected",
               "insert_dedup_window_sessions", "stored_copies", "insert_dedup_window_links",
               "insert_dedup_window_actors", "linked_ids", "actor_seen", "identity_events",
               "identity_events_desc_after"}
    for name in queries:
        if name not in covered and not name.startswith(("aggregate_", "lifecycle_")):
            run(name, queries[name])

    check_lifecycle(run, expect, queries)

    print(f"sqlcheck on ClickHouse {version}: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
