//! The statements of retention ([`crate::retention`]): which rows have expired, as read
//! conditions and as `ALTER … DELETE` / `DROP PARTITION` / `MODIFY TTL`, each with the
//! cutoffs as bound values. Table names are [`Table`]'s, never input; category names come
//! from configuration and are bound like any value.
//!
//! In cluster mode an `ALTER` names the shards' `<table>_local` tables, `ON CLUSTER`, and
//! the `events` a mutation looks expired events up in is the shard's own `events_local`:
//! every table here is sharded by `session_id` ([`crate::migrations::sharding_key`]), so
//! a shard's actors and keys belong to its own events.

use crate::migrations::Cluster;
use crate::retention::{Cutoffs, RetentionConfig, Table};
use crate::statement::{sql, Statement};

/// The latest instant a DateTime holds (2106-02-07): the TTL of rows kept forever.
const FOREVER_S: u64 = u32::MAX as u64;

/// ` AND` the events `cut` keeps, on a table with `category`, `ts_us` and `ts`. Nothing
/// when no event expires. The partition column `ts` is bounded too when every category
/// has a cutoff, so a read skips whole expired months.
pub fn kept_events(s: Statement, cut: &Cutoffs) -> Statement {
    if !cut.limits_events() {
        return s;
    }
    let s = s.push_text(" AND ts_us >= ");
    let s = event_cutoff(s, cut, "ts_us");
    match cut.all_expired_before() {
        Some(t) => s.push(
            sql!(" AND ts >= toDateTime(?)"),
            [crate::sql::partition_second(t).into()],
        ),
        None => s,
    }
}

/// ` AND` the rows of a table without a category (`identity_actors`) that may belong to
/// kept events: those at or after the earliest cutoff, when every category has one. A
/// superset; the read of `events` that follows applies [`kept_events`] exactly.
pub fn maybe_kept(s: Statement, cut: &Cutoffs) -> Statement {
    match cut.all_expired_before() {
        Some(t) => s.push(sql!(" AND ts_us >= ?"), [t.into()]),
        None => s,
    }
}

/// ` AND` the quarantined records `cut` keeps (and the months that can hold them).
pub fn kept_rejected(s: Statement, cut: &Cutoffs) -> Statement {
    match cut.quarantine {
        Some(t) => s.push(
            sql!(" AND received_at_us >= ? AND received_at >= toDateTime(?)"),
            [t.into(), crate::sql::partition_second(t).into()],
        ),
        None => s,
    }
}

/// The cutoff of each row's category: `multiIf(category = ?, toInt64(?), …, default)`,
/// the default being the default cutoff or, when other categories are kept forever, the
/// row's own time (`time_column`), which no comparison with `<` finds expired.
fn event_cutoff(s: Statement, cut: &Cutoffs, time_column: &str) -> Statement {
    if cut.categories.is_empty() {
        return match cut.default {
            Some(t) => s.push(sql!("toInt64(?)"), [t.into()]),
            None => s.push_text(time_column),
        };
    }
    let mut s = s.push_text("multiIf(");
    for (category, t) in &cut.categories {
        s = s.push(
            sql!("category = ?, toInt64(?), "),
            [category.into(), (*t).into()],
        );
    }
    let s = match cut.default {
        Some(t) => s.push(sql!("toInt64(?)"), [t.into()]),
        None => s.push_text(time_column),
    };
    s.push_text(")")
}

/// The partition of a row of `t`: `toYYYYMM` of its partition column.
fn partition_expr(t: Table) -> &'static str {
    match t {
        Table::Events | Table::EventsByType | Table::IdentityActors => "toYYYYMM(ts)",
        Table::EventKeys => "toYYYYMM(toDateTime(intDiv(client_ts_us, 1000000), 'UTC'))",
        Table::Quarantine => "toYYYYMM(received_at)",
        Table::QuarantineReplays => "toYYYYMM(replayed_at)",
    }
}

/// Per monthly partition of `t` (and per category, where it has one): the newest time and
/// the rows ([`crate::retention::PartitionStat`]). The time is `ts_us`, the event's time,
/// in every table of events (also in `event_keys`, partitioned by the client's time), and
/// `received_at_us` in the quarantine (`replayed_at_us` for its replay outcomes).
pub fn partition_stats(t: Table) -> Statement {
    let (category, time) = match t {
        Table::Events | Table::EventsByType => ("category", "ts_us"),
        Table::IdentityActors | Table::EventKeys => ("''", "ts_us"),
        Table::Quarantine => ("''", "received_at_us"),
        Table::QuarantineReplays => ("''", "replayed_at_us"),
    };
    Statement::new(&format!(
        "SELECT {} AS partition, {category} AS category, max({time}) AS last_us, count() AS rows \
         FROM {} GROUP BY partition, category ORDER BY partition, category",
        partition_expr(t),
        t.name()
    ))
}

/// The condition on a row of `t` that it has expired. `events` names the table expired
/// events are looked up in, for the tables without a category.
fn expired(s: Statement, t: Table, cut: &Cutoffs, events: &str) -> Statement {
    match t {
        Table::Events | Table::EventsByType => {
            if !cut.limits_events() {
                return s.push_text("0 = 1");
            }
            event_cutoff(s.push_text("ts_us < "), cut, "ts_us")
        }
        Table::IdentityActors | Table::EventKeys => {
            let Some(latest) = cut.none_expired_from() else {
                return s.push_text("0 = 1");
            };
            let s = s
                .push(sql!("ts_us < ?"), [latest.into()])
                .push_text(&format!(
                    " AND (session_id, event_id, client_ts_us) IN \
                     (SELECT session_id, event_id, client_ts_us FROM {events} WHERE "
                ));
            expired(s, Table::Events, cut, events).push_text(")")
        }
        Table::Quarantine => match cut.quarantine {
            Some(q) => s.push(sql!("received_at_us < ?"), [q.into()]),
            None => s.push_text("0 = 1"),
        },
        Table::QuarantineReplays => match cut.quarantine {
            Some(q) => s.push(sql!("replayed_at_us < ?"), [q.into()]),
            None => s.push_text("0 = 1"),
        },
    }
}

/// ` AND` the row is in none of the partitions `gone` (dropped whole, so not deleted).
fn outside(s: Statement, t: Table, gone: &[u32]) -> Statement {
    if gone.is_empty() {
        return s;
    }
    let months: Vec<i64> = gone.iter().map(|m| i64::from(*m)).collect();
    s.push(sql!(" AND NOT has(?, "), [months.into()])
        .push_text(&format!("toInt64({}))", partition_expr(t)))
}

/// How many rows of `t` have expired outside the partitions `gone`.
pub fn expired_count(t: Table, cut: &Cutoffs, gone: &[u32]) -> Statement {
    let s = Statement::new(&format!("SELECT count() FROM {} WHERE ", t.name()));
    outside(expired(s, t, cut, crate::sql::EVENTS_TABLE), t, gone)
}

/// `ALTER TABLE <t> [ON CLUSTER c] `. A view is named itself: partition drops and
/// mutations on a materialized view reach its storage table, on 18.16 (`.inner.<view>`) as on
/// current servers (`.inner_id.<uuid>`), both checked.
fn alter(t: Table, cluster: Option<Cluster<'_>>) -> Statement {
    alter_named(t.name(), cluster)
}

/// `ALTER TABLE <table> [ON CLUSTER c] ` (`<table>_local` on a cluster).
fn alter_named(table: &str, cluster: Option<Cluster<'_>>) -> Statement {
    match cluster {
        None => alter_exact(table, None),
        Some(_) => alter_exact(&format!("{table}_local"), cluster),
    }
}

/// `ALTER TABLE <table> [ON CLUSTER c] `, `table` named as it is on each server.
fn alter_exact(table: &str, cluster: Option<Cluster<'_>>) -> Statement {
    match cluster {
        None => Statement::new(&format!("ALTER TABLE `{table}` ")),
        Some(c) => Statement::new(&format!(
            "ALTER TABLE {}.`{table}` ON CLUSTER {} ",
            c.database, c.name
        )),
    }
}

/// Deletes the rows of `t` that have expired, outside the partitions `gone`.
pub fn delete_expired(
    t: Table,
    cut: &Cutoffs,
    gone: &[u32],
    cluster: Option<Cluster<'_>>,
) -> Statement {
    let events = match cluster {
        None => crate::sql::EVENTS_TABLE.to_owned(),
        Some(c) => format!("{}.{}_local", c.database, crate::sql::EVENTS_TABLE),
    };
    let s = alter(t, cluster).push_text("DELETE WHERE ");
    outside(expired(s, t, cut, &events), t, gone)
}

/// Drops one monthly partition of `t`.
pub fn drop_partition(t: Table, month: u32, cluster: Option<Cluster<'_>>) -> Statement {
    alter(t, cluster).push(sql!("DROP PARTITION ?"), [month.into()])
}

/// The mutations of `t` not done yet, on every server of the cluster when there is one. A
/// view's mutations are recorded under its storage table, whose name only 18.16 derives
/// from the view's (current servers use the view's UUID), so for a view every view
/// storage of the database counts: waiting for another's is only longer.
pub fn pending_mutations(t: Table, database: &str, cluster: Option<Cluster<'_>>) -> Statement {
    let from = match cluster {
        None => "system.mutations".to_owned(),
        Some(c) => format!("cluster('{}', system, mutations)", c.name),
    };
    let s = Statement::new(&format!(
        "SELECT count() FROM {from} WHERE is_done = 0 AND "
    ))
    .push(sql!("database = ? AND "), [database.into()]);
    match (t.is_view(), cluster) {
        (true, _) => s.push_text("substring(table, 1, 6) = '.inner'"),
        (false, None) => s.push(sql!("table = ?"), [t.name().into()]),
        (false, Some(_)) => s.push(sql!("table = ?"), [format!("{}_local", t.name()).into()]),
    }
}

/// `MODIFY TTL` statements setting `config` as the TTL of the tables that carry a
/// category or the quarantine's time (servers with TTL: 19.6+). A row's TTL is its time
/// plus its category's days; a category kept forever gets the last instant a DateTime
/// holds. `event_keys` and `identity_actors` have no category: the scheduled run removes
/// theirs ([`crate::retention::apply`]).
///
/// `MODIFY TTL` is the one `ALTER` a view does not pass on, so `events_by_type` is named by
/// its storage table as each server names it, `by_type_storage`
/// ([`crate::Store::view_storage`] of `events_by_type`, `events_by_type_local` on a cluster).
pub fn ttl_statements(
    config: &RetentionConfig,
    cluster: Option<Cluster<'_>>,
    by_type_storage: &str,
) -> Vec<Statement> {
    let mut out = Vec::new();
    let categories = config.category_days.entries();
    if !categories.is_empty() || config.default_days.is_some() {
        for target in [
            alter(Table::Events, cluster),
            alter_exact(by_type_storage, cluster),
        ] {
            let mut s = target.push_text("MODIFY TTL ");
            if !categories.is_empty() {
                s = s.push_text("multiIf(");
            }
            for (category, days) in categories {
                s = s.push(
                    sql!("category = ?, ts + toIntervalDay(?), "),
                    [category.as_str().into(), days.get().into()],
                );
            }
            s = match config.default_days {
                Some(d) => s.push(sql!("ts + toIntervalDay(?)"), [d.get().into()]),
                None => s.push(sql!("toDateTime(?, 'UTC')"), [FOREVER_S.into()]),
            };
            if !categories.is_empty() {
                s = s.push_text(")");
            }
            out.push(s);
        }
    }
    if let Some(d) = config.quarantine_days {
        out.push(alter(Table::Quarantine, cluster).push(
            sql!("MODIFY TTL received_at + toIntervalDay(?)"),
            [d.get().into()],
        ));
        out.push(alter(Table::QuarantineReplays, cluster).push(
            sql!("MODIFY TTL replayed_at + toIntervalDay(?)"),
            [d.get().into()],
        ));
    }
    out
}
