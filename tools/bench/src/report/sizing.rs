//! BENCHMARKS.md's "Growing beyond one machine": what one ingest replica, one consumer, one
//! ClickHouse shard and one broker took in a run, what a node of [`NODE_CORES`] cores would
//! take, and how many of each a given rate needs. Every figure comes from the run's lines;
//! the constants below are the assumptions the text states.

use super::{count, first, fmt, head, num, of, row, Lines};
use std::fmt::Write as _;

/// Cores of the node the table sizes for.
const NODE_CORES: f64 = 8.0;
/// The rates the table sizes for, events/s.
const RATES: [f64; 3] = [100_000.0, 1_000_000.0, 10_000_000.0];
/// Replicas of each partition in production (`EYE_KAFKA_REPLICATION_FACTOR`), hence also
/// the fewest brokers.
const REPLICATION_FACTOR: f64 = 3.0;
/// Replicas of each ClickHouse shard, so that one server can fail.
const CLICKHOUSE_REPLICAS: u64 = 2;
/// What one broker's link takes in, bytes/s: 10 Gbit/s.
const LINK_BYTES_PER_S: f64 = 1.25e9;
/// Redis admissions per write request with shared limits: its requests, then its events.
const ADMISSIONS_PER_REQUEST: f64 = 2.0;

/// What one component took at one step of a run.
#[derive(Debug, Clone)]
struct Took {
    /// Events, rows or records per second.
    rate: f64,
    cores: f64,
    /// Peak RSS at that step, and the highest of any step of the run (MiB).
    rss_mib: f64,
    rss_max_mib: f64,
    step: String,
}

impl Took {
    fn per_core(&self) -> f64 {
        self.rate / self.cores
    }
}

/// The end-to-end check of the per-core figures: at the run's gentlest end-to-end step,
/// the cores the four components used against the cores the figures predict for the rates
/// they carried.
#[derive(Debug, Clone)]
struct Margin {
    /// predicted ÷ used, at most 1: every capacity is scaled by it.
    factor: f64,
    sent: f64,
    stored: f64,
    predicted: f64,
    used: f64,
    share: f64,
}

#[derive(Debug, Clone)]
struct Figures {
    ingest: Took,
    broker: Took,
    consumer: Took,
    clickhouse: Took,
    /// Mean size of an `eye.events` record before compression.
    record_bytes: f64,
    /// Events per request at the best sweep step.
    batch: f64,
    margin: Option<Margin>,
}

/// How many of each a rate needs.
#[derive(Debug, Clone, PartialEq)]
struct Need {
    ingest: u64,
    consumers: u64,
    consumer_cores: f64,
    shards: u64,
    brokers: u64,
    broker_in_mb_s: f64,
    admissions: f64,
}

const INGEST: &str = "eye-ingest";
const BROKER: &str = "tansu";
const CONSUMER: &str = "eye-consumer";
const CLICKHOUSE: &str = "clickhouse-server";

/// The highest peak RSS of `process` over every step of the run that watched it.
fn rss_max(lines: &Lines, process: &str) -> f64 {
    lines
        .iter()
        .map(|v| num(v, &["processes", process, "peak_rss_mib"]))
        .filter(|x| x.is_finite())
        .fold(f64::NAN, f64::max)
}

fn took(lines: &Lines, v: &serde_json::Value, rate: f64, process: &str, step: &str) -> Took {
    Took {
        rate,
        cores: num(v, &["processes", process, "cores"]),
        rss_mib: num(v, &["processes", process, "peak_rss_mib"]),
        rss_max_mib: rss_max(lines, process),
        step: step.to_owned(),
    }
}

fn usable(t: &Took) -> bool {
    t.rate.is_finite() && t.rate > 0.0 && t.cores.is_finite() && t.cores > 0.0
}

/// The run's figures, or None when it lacks a sweep step or a drain with every
/// component's rate and cores.
fn figures(lines: &Lines) -> Option<Figures> {
    let best = super::pipeline::best_step(lines)?;
    let drain = first(lines, "consumer_drain")?;
    let sent = num(best, &["events_per_sec"]);
    let at_best = format!("best sweep step ({} connections)", best["connections"]);
    let drained = num(drain, &["per_sec"]);
    let at_drain = format!(
        "draining {} pre-filled records",
        count(num(drain, &["rows"]))
    );
    let mut f = Figures {
        ingest: took(lines, best, sent, INGEST, &at_best),
        broker: took(lines, best, sent, BROKER, &at_best),
        consumer: took(lines, drain, drained, CONSUMER, &at_drain),
        clickhouse: took(lines, drain, drained, CLICKHOUSE, &at_drain),
        record_bytes: first(lines, "raw_produce").map_or(f64::NAN, |v| num(v, &["mean_bytes"])),
        batch: num(best, &["batch"]),
        margin: None,
    };
    if ![&f.ingest, &f.broker, &f.consumer, &f.clickhouse]
        .into_iter()
        .all(usable)
    {
        return None;
    }
    f.margin = margin(lines, &f);
    Some(f)
}

/// The check against the end-to-end step with the lowest share of the best rate: ingest
/// and the broker carried what was sent, the consumer and ClickHouse what was stored (sent
/// less the lag's growth).
fn margin(lines: &Lines, f: &Figures) -> Option<Margin> {
    let step = of(lines, "end_to_end")
        .into_iter()
        .min_by(|a, b| num(a, &["share_of_max"]).total_cmp(&num(b, &["share_of_max"])))?;
    let sent = num(step, &["events_per_sec"]);
    let stored = sent - num(step, &["lag", "slope_per_sec"]).max(0.0);
    let predicted = sent / f.ingest.per_core()
        + sent / f.broker.per_core()
        + stored / f.consumer.per_core()
        + stored / f.clickhouse.per_core();
    let used: f64 = [INGEST, BROKER, CONSUMER, CLICKHOUSE]
        .iter()
        .map(|p| num(step, &["processes", p, "cores"]))
        .sum();
    let factor = (predicted / used).min(1.0);
    (factor.is_finite() && factor > 0.0).then_some(Margin {
        factor,
        sent,
        stored,
        predicted,
        used,
        share: num(step, &["share_of_max"]),
    })
}

impl Figures {
    fn factor(&self) -> f64 {
        self.margin.as_ref().map_or(1.0, |m| m.factor)
    }

    /// Events/s one ingest replica on a node takes.
    fn ingest_node(&self) -> f64 {
        self.ingest.per_core() * NODE_CORES * self.factor()
    }

    /// Rows/s one consumer replica stores: it works one batch at a time, so what it
    /// drained, whatever its node's cores.
    fn consumer_replica(&self) -> f64 {
        self.consumer.rate * self.factor()
    }

    fn consumer_per_core(&self) -> f64 {
        self.consumer.per_core() * self.factor()
    }

    /// Rows/s one ClickHouse server of a shard takes.
    fn clickhouse_node(&self) -> f64 {
        self.clickhouse.per_core() * NODE_CORES * self.factor()
    }

    /// Records/s one broker node handles, its followers' copies included.
    fn broker_node(&self) -> f64 {
        self.broker.per_core() * NODE_CORES * self.factor()
    }

    fn need(&self, rate: f64) -> Need {
        let up = |x: f64| x.ceil().max(1.0) as u64;
        // Every record is written on REPLICATION_FACTOR brokers, and each takes in its
        // share of those copies over its link.
        let copies = rate * REPLICATION_FACTOR;
        let by_link = if self.record_bytes.is_finite() {
            up(copies * self.record_bytes / LINK_BYTES_PER_S)
        } else {
            1
        };
        let brokers = up(copies / self.broker_node())
            .max(by_link)
            .max(REPLICATION_FACTOR as u64);
        Need {
            ingest: up(rate / self.ingest_node()),
            consumers: up(rate / self.consumer_replica()),
            consumer_cores: rate / self.consumer_per_core(),
            shards: up(rate / self.clickhouse_node()),
            brokers,
            broker_in_mb_s: copies * self.record_bytes / brokers as f64 / 1e6,
            admissions: rate / self.batch * ADMISSIONS_PER_REQUEST,
        }
    }
}

/// The run the sizing comes from: of those that measured every component, the one with
/// the best ingest rate, where the broker held the pipeline back least.
fn chosen<'a>(runs: &[(&'a str, &'a Lines)]) -> Option<(&'a str, Figures)> {
    runs.iter()
        .filter_map(|(name, lines)| figures(lines).map(|f| (*name, f)))
        .max_by(|a, b| a.1.ingest.rate.total_cmp(&b.1.ingest.rate))
}

fn rss(t: &Took) -> String {
    format!("{} / {}", count(t.rss_mib), count(t.rss_max_mib))
}

fn components_table(md: &mut String, f: &Figures) {
    let node = format!("one {NODE_CORES:.0}-core node");
    head(
        md,
        &[
            "one…",
            "measured at",
            "rate",
            "cores",
            "per core",
            "peak RSS MiB: that step / the run's highest",
            &node,
        ],
    );
    let rows: [(&str, &Took, &str, String); 4] = [
        (
            "ingest replica",
            &f.ingest,
            "events/s",
            format!("{} events/s", count(f.ingest_node())),
        ),
        (
            "consumer",
            &f.consumer,
            "rows/s",
            format!(
                "{} rows/s per replica (one batch at a time); its cores fit {} replicas",
                count(f.consumer_replica()),
                (NODE_CORES / f.consumer.cores).floor()
            ),
        ),
        (
            "ClickHouse shard (one server)",
            &f.clickhouse,
            "rows/s",
            format!("{} rows/s", count(f.clickhouse_node())),
        ),
        (
            "broker (tansu, memory storage)",
            &f.broker,
            "records/s",
            format!(
                "{} records/s, copies for other brokers included",
                count(f.broker_node())
            ),
        ),
    ];
    for (name, t, unit, node) in rows {
        row(
            md,
            &[
                name.to_owned(),
                t.step.clone(),
                format!("{} {unit}", count(t.rate)),
                fmt(t.cores, 2),
                count(t.per_core()),
                rss(t),
                node,
            ],
        );
    }
}

fn needs_table(md: &mut String, f: &Figures) {
    let replicas = format!("ClickHouse shards × {CLICKHOUSE_REPLICAS} replicas");
    let brokers = format!("brokers (RF {REPLICATION_FACTOR:.0})");
    head(
        md,
        &[
            "events/s",
            "ingest replicas",
            "consumers (= partitions at least)",
            "consumer cores",
            &replicas,
            &brokers,
            "MB/s into each broker",
            "Redis admissions/s",
        ],
    );
    for rate in RATES {
        let n = f.need(rate);
        row(
            md,
            &[
                count(rate),
                n.ingest.to_string(),
                n.consumers.to_string(),
                fmt(n.consumer_cores, 1),
                format!(
                    "{} × {CLICKHOUSE_REPLICAS} = {}",
                    n.shards,
                    n.shards * CLICKHOUSE_REPLICAS
                ),
                n.brokers.to_string(),
                count(n.broker_in_mb_s),
                count(n.admissions),
            ],
        );
    }
}

/// How each part grows, with what exists for it.
const HOW: &str = "### How each part grows

- **Partitions.** `eye.events` is keyed by `session_id`, so a session's events stay in one partition, in order, however many partitions there are. The partition count caps the consumer replicas: create the partitions before the load arrives (`eye-admin topics --partitions`, or `EYE_KAFKA_EVENTS_PARTITIONS`), since adding them later re-maps keys and splits the sessions in flight.
- **Consumer replicas** join the same group (`eye-consumer`); the broker gives each partition to one member, so at most one replica per partition does work. All copies of an event share its key, hence a partition, hence one consumer, which is why the consumer can settle first copies on its own.
- **Ingest replicas** are stateless (each request is produced and acknowledged before it is answered) and go behind a load balancer. With `EYE_AUTH_REDIS_URL` they share each client's budgets through one Redis, two admissions per write request; while Redis does not answer, each replica admits within `1/EYE_AUTH_REPLICAS` of every budget. Without Redis each replica keeps its own buckets, and a client's budget applies per replica.
- **ClickHouse shards.** With `EYE_CLICKHOUSE_CLUSTER=<name>` the migrations run `ON CLUSTER`, each table becomes a `Replicated…MergeTree` `<table>_local` on every server (the `{shard}`/`{replica}` macros) behind a `Distributed` table sharded by `cityHash64(session_id)`, and the consumer's inserts into it are synchronous (they return once every shard has its rows). A session's events, and every copy of a retried event (same `event_id`, same session), land on one shard, so the consumer's first-copy look-up, the merges and the read-time dedup by `event_id` never need rows from two shards. Reads fan out to every shard. Without the setting the tables stay single-node.
- **The broker** here is one tansu process: its memory storage forgets everything on restart and serves only to find the pipeline's own limits; its sqlite storage is one file on one disk. Beyond one machine the topics go to a replicated Kafka cluster: `eye-admin topics` creates them with `EYE_KAFKA_REPLICATION_FACTOR` replicas (production: 3) and `min.insync.replicas` `EYE_KAFKA_MIN_INSYNC_REPLICAS` (production: 2), so ingest's `acks=all` means an acknowledged event is on two brokers at least. The services speak only the Kafka protocol.
- **All of it on one host:** `docker-compose.yml`'s `cluster` profile runs three KRaft brokers (replication factor 3, `min.insync.replicas=2`), ClickHouse as two shards × two replicas with ClickHouse Keeper, Redis, two ingest replicas behind nginx and two consumers.

";

/// The section: the figures it comes from, their assumptions, the table, and how each
/// part grows.
pub fn section(runs: &[(&str, &Lines)]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Growing beyond one machine\n");
    let Some((name, f)) = chosen(runs) else {
        let _ = writeln!(
            md,
            "No run measured every component (a sweep step and a consumer drain with the cores of ingest, the broker, the consumer and ClickHouse), so nothing is sized here.\n"
        );
        md.push_str(HOW);
        return md;
    };
    let _ = writeln!(
        md,
        "Sized from the {name} run above, the one with the best ingest rate (where the broker held the pipeline back least): its best sweep step for ingest and the broker, its consumer drain for the consumer and ClickHouse.\n"
    );
    let _ = writeln!(md, "### What one of each took here\n");
    components_table(&mut md, &f);
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "- **Linear per core, up to the node.** A node of {NODE_CORES:.0} cores is taken to do {NODE_CORES:.0} times what one core did here. These figures come from 2 cores shared by every process and the load generator, so each includes that contention, and nothing here ran on more than one machine."
    );
    match &f.margin {
        Some(m) => {
            let _ = writeln!(
                md,
                "- **Margin {}.** At the end-to-end step at {}% of the best rate, ingest and the broker carried {} events/s and the consumer and ClickHouse stored {} rows/s (sent less the lag's growth); for those rates the per-core figures predict {} cores, and the four used {}. Every capacity in this section is scaled by {} (the margin is never above 1).",
                fmt(m.factor, 2),
                fmt(m.share * 100.0, 0),
                count(m.sent),
                count(m.stored),
                fmt(m.predicted, 2),
                fmt(m.used, 2),
                fmt(m.factor, 2),
            );
        }
        None => {
            let _ = writeln!(
                md,
                "- **No margin.** This run has no end-to-end step to check the per-core figures against, so the capacities are the per-core figures as measured."
            );
        }
    }
    let _ = writeln!(
        md,
        "- **A consumer works one batch at a time** (read, look up stored copies, insert, commit, then read on), so its rate is what it drained, not a multiple of cores: here it used {} of a core while ClickHouse worked. In cluster mode each insert waits for every shard the batch reaches, so a replica goes at the pace of the slowest shard; `make bench` runs one ClickHouse server and does not measure that.",
        fmt(f.consumer.cores, 2)
    );
    let _ = writeln!(
        md,
        "- **RSS.** Ingest's is bounded by its in-flight budget (`EYE_INGEST_MAX_INFLIGHT_BYTES`, 32 MiB), whatever the load; the run's highest is under overload. ClickHouse's highest comes from an end-to-end step with merges behind. Tansu's memory storage keeps every record in memory, so its RSS says nothing about a Kafka broker's."
    );
    let others: Vec<String> = runs
        .iter()
        .filter(|(n, _)| *n != name)
        .filter_map(|(n, lines)| {
            figures(lines).map(|o| format!("{} with {n} storage", count(o.broker.per_core())))
        })
        .collect();
    let _ = writeln!(
        md,
        "- **The broker is tansu** with memory storage: the Kafka protocol without a disk, so a Kafka broker, which writes every record to disk, likely does less per core{}. With replication factor {REPLICATION_FACTOR:.0} every record is written on {REPLICATION_FACTOR:.0} brokers, so the table counts {REPLICATION_FACTOR:.0} records per event against the brokers' cores, and as many copies into their links: {} bytes a record on average before compression (ingest's lz4 makes the wire smaller), and 10 Gbit/s per broker assumed, since disks and networks are not measured here (everything ran over loopback).",
        if others.is_empty() {
            String::new()
        } else {
            format!(" (tansu per core: {})", others.join(", "))
        },
        fmt(f.record_bytes, 0),
    );
    let _ = writeln!(md, "\n### What a rate needs\n");
    let _ = writeln!(
        md,
        "Nodes of {NODE_CORES:.0} cores at the capacities above; each count is the least that carries the rate, rounded up. Add one ingest replica and one consumer (and a partition for it) so that a node can fail; each ClickHouse shard already has {CLICKHOUSE_REPLICAS} replicas, each doing the whole shard's inserts and merges.\n"
    );
    needs_table(&mut md, &f);
    let _ = writeln!(
        md,
        "\nConsumer cores are the cores the consumers use together; several replicas share a node. Brokers: the most of {REPLICATION_FACTOR:.0} (the replication factor), what their cores take, and what their links take in. Redis admissions: {ADMISSIONS_PER_REQUEST:.0} per request of {} events; `make bench` runs without Redis, so its round trips are not in these figures (the README's In production section gives one admission's cost, measured on this machine).\n",
        fmt(f.batch, 0)
    );
    md.push_str(HOW);
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(e2e: bool) -> Lines {
        let mut text = String::from(concat!(
            r#"{"measure":"ingest_throughput","connections":8,"batch":100,"events_per_sec":60000,"processes":{"eye-ingest":{"cores":0.5,"peak_rss_mib":30},"tansu":{"cores":0.1,"peak_rss_mib":100}}}"#,
            "\n",
            r#"{"measure":"ingest_throughput","connections":64,"batch":100,"events_per_sec":100000,"processes":{"eye-ingest":{"cores":0.5,"peak_rss_mib":60},"tansu":{"cores":0.1,"peak_rss_mib":400}}}"#,
            "\n",
            r#"{"measure":"ingest_overload","processes":{"eye-ingest":{"cores":0.8,"peak_rss_mib":190}}}"#,
            "\n",
            r#"{"measure":"raw_produce","mean_bytes":250,"messages":1000,"per_sec":500000}"#,
            "\n",
            r#"{"measure":"consumer_drain","per_sec":50000,"rows":3000000,"processes":{"eye-consumer":{"cores":0.25,"peak_rss_mib":120},"clickhouse-server":{"cores":1.0,"peak_rss_mib":900}}}"#,
            "\n",
        ));
        if e2e {
            // Sent 40,000/s, stored 30,000/s; predicted 0.2 + 0.04 + 0.15 + 0.6 = 0.99
            // cores, used 1.1: a margin of 0.9. The 80% step is not the one checked.
            text.push_str(concat!(
                r#"{"measure":"end_to_end","share_of_max":0.8,"events_per_sec":80000,"lag":{"slope_per_sec":70000},"processes":{"eye-ingest":{"cores":0.5},"tansu":{"cores":0.2},"eye-consumer":{"cores":0.1},"clickhouse-server":{"cores":1.5,"peak_rss_mib":2000}}}"#,
                "\n",
                r#"{"measure":"end_to_end","share_of_max":0.5,"events_per_sec":40000,"lag":{"slope_per_sec":10000},"processes":{"eye-ingest":{"cores":0.25},"tansu":{"cores":0.05},"eye-consumer":{"cores":0.15},"clickhouse-server":{"cores":0.65}}}"#,
                "\n",
            ));
        }
        super::super::parse(&text)
    }

    #[test]
    fn what_a_rate_needs() {
        // Per core: ingest 200,000 events/s, tansu 1,000,000 records/s, consumer 200,000
        // rows/s (one replica 50,000), ClickHouse 50,000 rows/s.
        let plain = figures(&fixture(false)).expect("figures");
        assert!(plain.margin.is_none());
        let checked = figures(&fixture(true)).expect("figures");
        let m = checked.margin.as_ref().expect("a margin");
        assert!((m.factor - 0.9).abs() < 1e-9, "{m:?}");
        // (figures, rate, need)
        let cases: &[(&Figures, f64, Need)] = &[
            // 100k: ingest 1 of 1.6M a node; consumers 2 of 50k; ClickHouse 1 of 400k;
            // brokers 3 (300k copies of 250 bytes: 75 MB/s in all, 25 each); 2 per
            // 100-event request.
            (
                &plain,
                100_000.0,
                Need {
                    ingest: 1,
                    consumers: 2,
                    consumer_cores: 0.5,
                    shards: 1,
                    brokers: 3,
                    broker_in_mb_s: 25.0,
                    admissions: 2_000.0,
                },
            ),
            // 10M: ingest 7 (6.25); consumers 200; ClickHouse 25; brokers by cores
            // 30M / 8M = 4, by link 7.5 GB/s / 1.25 = 6.
            (
                &plain,
                10_000_000.0,
                Need {
                    ingest: 7,
                    consumers: 200,
                    consumer_cores: 50.0,
                    shards: 25,
                    brokers: 6,
                    broker_in_mb_s: 1_250.0,
                    admissions: 200_000.0,
                },
            ),
            // With the margin 0.9: ingest 1.44M a node, a consumer 45k, ClickHouse 360k,
            // a broker 7.2M records/s.
            (
                &checked,
                1_000_000.0,
                Need {
                    ingest: 1,
                    consumers: 23,
                    consumer_cores: 1_000_000.0 / 180_000.0,
                    shards: 3,
                    brokers: 3,
                    broker_in_mb_s: 250.0,
                    admissions: 20_000.0,
                },
            ),
            (
                &checked,
                10_000_000.0,
                Need {
                    ingest: 7,
                    consumers: 223,
                    consumer_cores: 10_000_000.0 / 180_000.0,
                    shards: 28,
                    brokers: 6,
                    broker_in_mb_s: 1_250.0,
                    admissions: 200_000.0,
                },
            ),
        ];
        for (f, rate, want) in cases {
            let got = f.need(*rate);
            assert_eq!(
                (got.ingest, got.consumers, got.shards, got.brokers),
                (want.ingest, want.consumers, want.shards, want.brokers),
                "{rate}"
            );
            for (g, w) in [
                (got.consumer_cores, want.consumer_cores),
                (got.broker_in_mb_s, want.broker_in_mb_s),
                (got.admissions, want.admissions),
            ] {
                assert!((g - w).abs() < 1e-6, "{rate}: {got:?}");
            }
        }
    }

    #[test]
    fn renders_the_figures_and_the_table() {
        let lines = fixture(true);
        let md = section(&[("memory", &lines)]);
        for want in [
            "Sized from the memory run above",
            "| ingest replica | best sweep step (64 connections) | 100,000 events/s | 0.50 | 200,000 | 60 / 190 | 1,440,000 events/s |",
            "| ClickHouse shard (one server) | draining 3,000,000 pre-filled records | 50,000 rows/s | 1.00 | 50,000 | 900 / 2,000 | 360,000 rows/s |",
            "45,000 rows/s per replica (one batch at a time); its cores fit 32 replicas",
            "- **Margin 0.90.** At the end-to-end step at 50% of the best rate, ingest and the broker carried 40,000 events/s and the consumer and ClickHouse stored 30,000 rows/s",
            "| 1,000,000 | 1 | 23 | 5.6 | 3 × 2 = 6 | 3 | 250 | 20,000 |",
            "| 100,000 | 1 | 3 | 0.6 | 1 × 2 = 2 | 3 | 25 | 2,000 |",
            "### How each part grows",
        ] {
            assert!(md.contains(want), "missing {want:?} in\n{md}");
        }
    }

    #[test]
    fn the_run_with_the_best_ingest_rate_and_none_without_figures() {
        let best = fixture(true);
        let slower = super::super::parse(concat!(
            r#"{"measure":"ingest_throughput","connections":8,"batch":100,"events_per_sec":10000,"processes":{"eye-ingest":{"cores":0.1},"tansu":{"cores":0.9}}}"#,
            "\n",
            r#"{"measure":"consumer_drain","per_sec":9000,"rows":1000000,"processes":{"eye-consumer":{"cores":0.05},"clickhouse-server":{"cores":0.15}}}"#,
            "\n",
        ));
        let no_drain = super::super::parse(
            r#"{"measure":"ingest_throughput","connections":8,"batch":100,"events_per_sec":900000,"processes":{"eye-ingest":{"cores":0.1},"tansu":{"cores":0.1}}}"#,
        );
        let runs = [("sqlite", &slower), ("memory", &best), ("odd", &no_drain)];
        assert_eq!(chosen(&runs).map(|(n, _)| n), Some("memory"));
        let md = section(&runs);
        // The other run's broker figure is named next to the chosen one's.
        assert!(
            md.contains("(tansu per core: 11,111 with sqlite storage)"),
            "{md}"
        );
        let md = section(&[("odd", &no_drain)]);
        assert!(md.contains("No run measured every component"), "{md}");
        assert!(md.contains("### How each part grows"), "{md}");
    }
}
