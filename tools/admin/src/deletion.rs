//! `eye-admin delete` and `eye-admin deletion`: a privacy request from a shell. `delete`
//! asks the query service to delete a user's, session's or machine's data
//! (`DELETE /v1/users|sessions|machines/{id}`), then follows the deletion
//! (`GET /v1/deletions/{id}`) with a spinner until it is done or failed, and prints the rows
//! each table lost; `deletion` shows one deletion, or follows it with `--wait`.

use anyhow::{bail, Context};
use eye_model::api::{DeletionAccepted, DeletionView};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often a followed deletion is read again.
const POLL: Duration = Duration::from_millis(500);

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every session the user started, and every identity row naming it.
    User,
    Session,
    /// Every session the machine ran.
    Machine,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Self::User => "users",
            Self::Session => "sessions",
            Self::Machine => "machines",
        }
    }
}

/// Where the query service is, and who asks.
#[derive(clap::Args)]
pub struct QueryTarget {
    /// The query service's base URL.
    #[arg(long, env = "EYE_QUERY_URL", default_value = "http://127.0.0.1:8081")]
    query_url: String,
    /// An API key of a client with the `delete` (or `admin`) scope.
    #[arg(long, env = "EYE_API_KEY", hide_env_values = true)]
    api_key: String,
}

/// How a deletion is followed and shown.
#[derive(clap::Args)]
pub struct Follow {
    /// Stop following after this many seconds; the deletion itself goes on.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Print the deletion as JSON (GET /v1/deletions/{id}'s answer) instead of a table.
    #[arg(long)]
    json: bool,
    /// No spinner (it is drawn only on a terminal anyway).
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    target: QueryTarget,
    /// Whose data: user, session or machine.
    #[arg(value_enum)]
    kind: Kind,
    /// The user's, session's or machine's id.
    id: String,
    /// Print the deletion's id and return at once, without following it.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    follow: Follow,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    target: QueryTarget,
    /// The id `eye-admin delete` (or the DELETE request) answered.
    deletion_id: Uuid,
    /// Follow it until it is done or failed.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    follow: Follow,
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn new(t: QueryTarget) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: t.query_url.trim_end_matches('/').to_owned(),
            key: t.api_key.trim().to_owned(),
        }
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        what: &str,
        res: reqwest::Response,
    ) -> anyhow::Result<T> {
        let status = res.status();
        let body = res.text().await.with_context(|| what.to_owned())?;
        if !status.is_success() {
            bail!("{what}: {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: the answer {body}"))
    }

    async fn request(&self, kind: Kind, id: &str) -> anyhow::Result<DeletionAccepted> {
        let url = subject_url(&self.base, kind, id)?;
        let what = format!("DELETE {url}");
        let res = self
            .http
            .delete(url)
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| what.clone())?;
        Self::answer(&what, res).await
    }

    async fn show(&self, id: Uuid) -> anyhow::Result<DeletionView> {
        let url = format!("{}/v1/deletions/{id}", self.base);
        let what = format!("GET {url}");
        let res = self
            .http
            .get(&url)
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| what.clone())?;
        Self::answer(&what, res).await
    }

    /// Reads the deletion until it has ended or `follow.timeout_s` has passed.
    async fn follow(&self, id: Uuid, follow: &Follow) -> anyhow::Result<DeletionView> {
        let bar = crate::progress::spinner(follow.quiet);
        let deadline = Instant::now() + Duration::from_secs(follow.timeout_s);
        let view = loop {
            let view = self.show(id).await?;
            bar.set_message(format!("deletion {id}: {}", view.status));
            if view.ended() || Instant::now() >= deadline {
                break view;
            }
            tokio::time::sleep(POLL).await;
        };
        bar.finish_and_clear();
        Ok(view)
    }
}

/// The subject's URL, its id one path segment whatever it holds (`/`, `?`, spaces).
fn subject_url(base: &str, kind: Kind, id: &str) -> anyhow::Result<reqwest::Url> {
    let mut url =
        reqwest::Url::parse(base).with_context(|| format!("the query service's URL {base}"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("the query service's URL {base} cannot take a path"))?
        .pop_if_empty()
        .extend(["v1", kind.path(), id]);
    Ok(url)
}

pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let api = Api::new(args.target);
    let accepted = api.request(args.kind, &args.id).await?;
    if args.no_wait {
        if args.follow.json {
            println!("{}", serde_json::to_string(&accepted)?);
        } else {
            println!(
                "deletion {} {}: follow it with `eye-admin deletion {} --wait`",
                accepted.deletion_id, accepted.status, accepted.deletion_id
            );
        }
        return Ok(());
    }
    let view = api.follow(accepted.deletion_id, &args.follow).await?;
    report(&view, &args.follow, true)
}

pub async fn show(args: ShowArgs) -> anyhow::Result<()> {
    let api = Api::new(args.target);
    let view = if args.wait {
        api.follow(args.deletion_id, &args.follow).await?
    } else {
        api.show(args.deletion_id).await?
    };
    report(&view, &args.follow, args.wait)
}

/// Prints the deletion; fails when it failed, or when it was `followed` and has not ended.
fn report(view: &DeletionView, follow: &Follow, followed: bool) -> anyhow::Result<()> {
    if follow.json {
        println!("{}", serde_json::to_string(view)?);
    } else {
        print!("{}", table(view));
    }
    match view.status.as_str() {
        "failed" => bail!(
            "deletion {} failed: {}; it is taken up again when the query service restarts, \
             or ask again",
            view.deletion_id,
            view.error.as_deref().unwrap_or("no reason recorded")
        ),
        _ if followed && !view.ended() => bail!(
            "deletion {} still {} after {} s; it goes on: follow it with \
             `eye-admin deletion {} --wait`",
            view.deletion_id,
            view.status,
            follow.timeout_s,
            view.deletion_id
        ),
        _ => Ok(()),
    }
}

fn table(v: &DeletionView) -> String {
    let mut out = format!(
        "deletion {} of {} {}: {}\nrequested by {} at {}{}\n",
        v.deletion_id,
        v.subject.kind,
        v.subject.id,
        v.status,
        v.requested_by,
        v.requested_at,
        v.finished_at
            .as_deref()
            .map(|t| format!(", ended at {t}"))
            .unwrap_or_default()
    );
    if !v.counts.is_empty() {
        out.push_str(&format!("{:<24} {:>12}\n", "table", "rows deleted"));
        for (table, n) in &v.counts {
            out.push_str(&format!("{table:<24} {n:>12}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str, counts: &[(&str, u64)]) -> DeletionView {
        DeletionView {
            deletion_id: Uuid::from_u128(7),
            subject: eye_model::api::SubjectView {
                kind: "user".into(),
                id: "u-42".into(),
            },
            status: status.into(),
            requested_by: "ops".into(),
            requested_at: "2026-12-07T10:00:00.000000Z".into(),
            finished_at: (status == "done").then(|| "2026-12-07T10:00:06.000000Z".into()),
            counts: counts.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
            error: (status == "failed").then(|| "delete: ClickHouse error code 241".into()),
        }
    }

    #[test]
    fn tables_show_the_subject_and_each_table_once_ended() {
        let done = table(&view("done", &[("events", 11), ("sessions", 2)]));
        assert_eq!(
            done,
            "deletion 00000000-0000-0000-0000-000000000007 of user u-42: done\n\
             requested by ops at 2026-12-07T10:00:00.000000Z, ended at 2026-12-07T10:00:06.000000Z\n\
             table                    rows deleted\n\
             events                             11\n\
             sessions                            2\n"
        );
        let pending = table(&view("pending", &[]));
        assert!(pending.ends_with("pending\nrequested by ops at 2026-12-07T10:00:00.000000Z\n"));
    }

    #[test]
    fn a_failed_deletion_fails_the_command_with_its_reason() {
        let follow = Follow {
            timeout_s: 1,
            json: true,
            quiet: true,
        };
        let err = report(&view("failed", &[]), &follow, false).expect_err("failed");
        assert!(
            err.to_string().contains("ClickHouse error code 241"),
            "{err}"
        );
        assert!(report(&view("done", &[("events", 1)]), &follow, true).is_ok());
        // Shown once, a running deletion is an answer; followed, it is a timeout.
        assert!(report(&view("running", &[]), &follow, false).is_ok());
        let err = report(&view("running", &[]), &follow, true).expect_err("timeout");
        assert!(err.to_string().contains("still running after 1 s"), "{err}");
    }

    #[test]
    fn subject_ids_are_one_path_segment() {
        let cases = [
            (
                "http://q:8081",
                Kind::User,
                "u-42",
                "http://q:8081/v1/users/u-42",
            ),
            (
                "http://q:8081/",
                Kind::Session,
                "a/b?c d",
                "http://q:8081/v1/sessions/a%2Fb%3Fc%20d",
            ),
            (
                "https://q.example/eye",
                Kind::Machine,
                "m",
                "https://q.example/eye/v1/machines/m",
            ),
        ];
        for (base, kind, id, want) in cases {
            assert_eq!(
                subject_url(base, kind, id).expect("url").as_str(),
                want,
                "{id}"
            );
        }
    }

    #[test]
    fn subjects_name_their_routes() {
        let cases = [
            (Kind::User, "users"),
            (Kind::Session, "sessions"),
            (Kind::Machine, "machines"),
        ];
        for (kind, path) in cases {
            assert_eq!(kind.path(), path);
        }
    }
}
