//! `GET /v1/pipeline`: what the explorer's pipeline view shows, read from ingest's and the
//! consumer's own `/metrics` by this service, so that a browser restricted to this origin
//! (and a person without access to the other services) can see them.

use serde::Serialize;
use std::time::Duration;

/// One service's figures, or why there are none.
#[derive(Debug, Serialize, PartialEq)]
pub struct Scraped<T> {
    pub url: String,
    pub up: bool,
    pub error: Option<String>,
    #[serde(flatten)]
    pub figures: Option<T>,
}

/// Ingest's event outcomes since it started, summed over adapters.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct IngestFigures {
    pub events: EventOutcomes,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct EventOutcomes {
    pub produced: f64,
    pub quarantined: f64,
    pub failed: f64,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ConsumerFigures {
    /// Summed over the partitions the consumer holds.
    pub lag_messages: f64,
    pub rows_inserted_total: f64,
    pub quarantined_total: f64,
    /// From ingest's receipt to ClickHouse's confirmation; a reader takes differences of
    /// two readings for the recent mean.
    pub freshness_seconds: SumCount,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct SumCount {
    pub sum: f64,
    pub count: f64,
}

#[derive(Debug, Serialize)]
pub struct Pipeline {
    pub observed_at: String,
    pub ingest: Option<Scraped<IngestFigures>>,
    pub consumer: Option<Scraped<ConsumerFigures>>,
}

/// Reads both services at once; an empty URL is a service not configured (`null`).
pub async fn read(
    client: &reqwest::Client,
    ingest_url: &str,
    consumer_url: &str,
    timeout: Duration,
) -> Pipeline {
    let (ingest, consumer) = futures::join!(
        scrape(client, ingest_url, timeout, ingest_figures),
        scrape(client, consumer_url, timeout, consumer_figures),
    );
    Pipeline {
        observed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ingest,
        consumer,
    }
}

async fn scrape<T>(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    figures: fn(&prometheus_parse::Scrape) -> T,
) -> Option<Scraped<T>> {
    if url.is_empty() {
        return None;
    }
    let text = async {
        let response = client.get(url).timeout(timeout).send().await?;
        response.error_for_status()?.text().await
    }
    .await;
    let parsed = text.map_err(|e| e.to_string()).and_then(|text| {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .map_err(|e| format!("not Prometheus text: {e}"))
    });
    Some(match parsed {
        Ok(scrape) => Scraped {
            url: url.to_owned(),
            up: true,
            error: None,
            figures: Some(figures(&scrape)),
        },
        Err(error) => Scraped {
            url: url.to_owned(),
            up: false,
            error: Some(error),
            figures: None,
        },
    })
}

fn ingest_figures(scrape: &prometheus_parse::Scrape) -> IngestFigures {
    let mut events = EventOutcomes::default();
    for sample in samples(scrape, "eye_ingest_events_total") {
        let slot = match sample.labels.get("outcome") {
            Some("produced") => &mut events.produced,
            Some("quarantined") => &mut events.quarantined,
            Some("failed") => &mut events.failed,
            _ => continue,
        };
        *slot += scalar(sample);
    }
    IngestFigures { events }
}

fn consumer_figures(scrape: &prometheus_parse::Scrape) -> ConsumerFigures {
    // A histogram's `_sum` and `_count` lines reach the parser as plain samples of their own.
    // A fold from +0.0: `Sum` for floats starts at -0.0, which would show as `-0.0`.
    let total = |name| samples(scrape, name).map(scalar).fold(0.0, |a, b| a + b);
    ConsumerFigures {
        lag_messages: total("eye_consumer_lag_messages"),
        rows_inserted_total: total("eye_consumer_rows_inserted_total"),
        quarantined_total: total("eye_consumer_quarantined_total"),
        freshness_seconds: SumCount {
            sum: total("eye_consumer_freshness_seconds_sum"),
            count: total("eye_consumer_freshness_seconds_count"),
        },
    }
}

fn samples<'a>(
    scrape: &'a prometheus_parse::Scrape,
    metric: &'a str,
) -> impl Iterator<Item = &'a prometheus_parse::Sample> {
    scrape.samples.iter().filter(move |s| s.metric == metric)
}

fn scalar(sample: &prometheus_parse::Sample) -> f64 {
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
    }

    #[test]
    fn ingest_outcomes_are_summed_over_adapters() {
        let scrape = parse(
            "# TYPE eye_ingest_events_total counter\n\
             eye_ingest_events_total{adapter=\"v1\",outcome=\"produced\"} 10\n\
             eye_ingest_events_total{adapter=\"segment\",outcome=\"produced\"} 5\n\
             eye_ingest_events_total{adapter=\"v1\",outcome=\"quarantined\"} 2\n\
             eye_ingest_events_total{adapter=\"v1\",outcome=\"failed\"} 1\n\
             eye_http_requests_total{route=\"/v1/events\"} 99\n",
        );
        assert_eq!(
            ingest_figures(&scrape).events,
            EventOutcomes {
                produced: 15.0,
                quarantined: 2.0,
                failed: 1.0
            }
        );
    }

    #[test]
    fn consumer_lag_is_summed_and_freshness_read_from_the_histogram() {
        let scrape = parse(
            "# TYPE eye_consumer_lag_messages gauge\n\
             eye_consumer_lag_messages{partition=\"0\"} 3\n\
             eye_consumer_lag_messages{partition=\"1\"} 4\n\
             # TYPE eye_consumer_rows_inserted_total counter\n\
             eye_consumer_rows_inserted_total 120\n\
             # TYPE eye_consumer_freshness_seconds histogram\n\
             eye_consumer_freshness_seconds_bucket{le=\"0.5\"} 100\n\
             eye_consumer_freshness_seconds_bucket{le=\"+Inf\"} 120\n\
             eye_consumer_freshness_seconds_sum 30.5\n\
             eye_consumer_freshness_seconds_count 120\n",
        );
        let figures = consumer_figures(&scrape);
        assert!(
            figures.quarantined_total.is_sign_positive(),
            "an unreported counter is 0, not -0"
        );
        assert_eq!(
            figures,
            ConsumerFigures {
                lag_messages: 7.0,
                rows_inserted_total: 120.0,
                quarantined_total: 0.0,
                freshness_seconds: SumCount {
                    sum: 30.5,
                    count: 120.0
                },
            }
        );
    }

    #[tokio::test]
    async fn a_service_that_does_not_answer_is_down_with_the_reason() {
        let client = reqwest::Client::new();
        // Nothing listens on port 9 of loopback.
        let pipeline = read(
            &client,
            "http://127.0.0.1:9/metrics",
            "",
            Duration::from_millis(500),
        )
        .await;
        let ingest = pipeline.ingest.expect("configured");
        assert!(!ingest.up);
        assert!(ingest.error.is_some());
        assert!(ingest.figures.is_none());
        assert!(pipeline.consumer.is_none(), "not configured");
    }
}
