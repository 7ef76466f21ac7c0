//! The fault-injection suite, scaled down for `make test`: every scenario with 10,000
//! events at 2,000 events/s and a 10 s ClickHouse outage, then the negative control.
//! `make chaos` runs the full size (1,000,000 events per scenario, 30 s outage).
//!
//! Starts its own broker and ClickHouse (ports 19092, 18123, 19000; under .eye/chaos) and
//! the service binaries built beside this test (`cargo build --bins`; make test does it).

use eye_chaos::{Scenario, Size, Suite};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_is_stored_exactly_once_under_every_fault() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("checkout root");
    let suite = Suite::start(&root).expect("the suite's servers start");
    let size = Size {
        events: 10_000,
        rate: 2_000.0,
        connections: 8,
        outage: Duration::from_secs(10),
        poison: 100,
        drain_timeout: Duration::from_secs(120),
        scenario_timeout: Duration::from_secs(240),
    };
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    let runs = Scenario::ALL
        .iter()
        .map(|s| (*s, false))
        .chain([(Scenario::ConsumerAbortAfterInsert, true)]);
    for (scenario, control) in runs {
        match suite.run(scenario, &size, control).await {
            Ok(o) => outcomes.push(o),
            Err(e) => errors.push(format!("{}: {e:#}", scenario.name())),
        }
    }
    let stopped = suite.finish();
    println!("{}", eye_chaos::report::table(&outcomes));
    assert!(
        errors.is_empty(),
        "scenarios that could not run: {errors:#?}"
    );
    assert_eq!(outcomes.len(), Scenario::ALL.len() + 1);
    for o in &outcomes {
        assert!(o.passed(), "{}: {:?}", o.scenario.name(), o.verdict);
        // Every scenario really was under load and really was checked.
        assert!(
            o.verdict.acked >= 10_000,
            "{}: {:?}",
            o.scenario.name(),
            o.verdict
        );
    }
    let control = outcomes.last().expect("the control ran");
    assert!(control.negative_control && control.verdict.duplicated > 0);
    stopped.expect("the suite's servers stop");
}
