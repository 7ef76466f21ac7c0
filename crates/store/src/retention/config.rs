//! `EYE_RETENTION_*`: the retention periods, parsed into [`RetentionConfig`].

use super::Cutoffs;
use eye_model::event::Category;
use eye_runtime::config::Group;
use serde::Deserialize;
use std::fmt;

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// The longest period accepted: 100 years. Longer is forever, which is the default.
pub const MAX_DAYS: u32 = 36_500;

/// A retention period in whole days, 1 to [`MAX_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Days(u32);

impl Days {
    pub fn parse(s: &str) -> Result<Self, RetentionError> {
        let bad = || RetentionError::Days(s.to_owned());
        let n: u32 = s.trim().parse().map_err(|_| bad())?;
        if (1..=MAX_DAYS).contains(&n) {
            Ok(Self(n))
        } else {
            Err(bad())
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The cutoff `days` before `now_us`: what is older has expired.
    pub fn cutoff(self, now_us: i64) -> i64 {
        now_us.saturating_sub(i64::from(self.0) * DAY_US)
    }
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What is wrong with a retention setting; each names the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error("{0:?} is not a number of days from 1 to {MAX_DAYS}")]
    Days(String),
    #[error("entry {0:?} is not `<category>=<days>`")]
    Entry(String),
    #[error("entry {entry:?}: {message}")]
    Category { entry: String, message: String },
    #[error("entry {entry:?}: {source}")]
    EntryDays {
        entry: String,
        source: Box<RetentionError>,
    },
    #[error("category {0:?} is given twice")]
    Duplicate(String),
}

/// `EYE_RETENTION_CATEGORY_DAYS`: `<category>=<days>` entries separated by commas, e.g.
/// `page_interaction=30,machine=90`; each category once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryDays(Vec<(Category, Days)>);

impl CategoryDays {
    pub fn parse(s: &str) -> Result<Self, RetentionError> {
        let mut out: Vec<(Category, Days)> = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (category, days) = entry
                .split_once('=')
                .ok_or_else(|| RetentionError::Entry(entry.to_owned()))?;
            let category = Category::parse(category.trim()).map_err(|(_, message)| {
                RetentionError::Category {
                    entry: entry.to_owned(),
                    message,
                }
            })?;
            let days = Days::parse(days).map_err(|e| RetentionError::EntryDays {
                entry: entry.to_owned(),
                source: Box::new(e),
            })?;
            if out.iter().any(|(c, _)| *c == category) {
                return Err(RetentionError::Duplicate(category.to_string()));
            }
            out.push((category, days));
        }
        out.sort();
        Ok(Self(out))
    }

    pub fn entries(&self) -> &[(Category, Days)] {
        &self.0
    }
}

/// `EYE_RETENTION_*`: how long events and the quarantine are kept. Nothing set: everything
/// is kept forever, and nothing is ever removed. Each field is parsed from its variable by
/// [`Group::read_families`], so that an error names the variable and the entry at fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RetentionConfig {
    /// Per category.
    #[serde(skip)]
    pub category_days: CategoryDays,
    /// Every category not in `category_days`; unset: forever.
    #[serde(skip)]
    pub default_days: Option<Days>,
    /// The quarantine (`rejected_events`), by arrival; unset: forever.
    #[serde(skip)]
    pub quarantine_days: Option<Days>,
}

impl Group for RetentionConfig {
    const PREFIX: &'static str = "EYE_RETENTION_";

    fn read_families(&mut self, vars: &[(String, String)]) -> Result<(), String> {
        let named = |k: &str, e: RetentionError| format!("{}{k}: {e}", Self::PREFIX);
        for (k, v) in vars {
            let days = || match v.trim() {
                "" => Ok(None),
                v => Days::parse(v).map(Some).map_err(|e| named(k, e)),
            };
            match k.as_str() {
                "CATEGORY_DAYS" => {
                    self.category_days = CategoryDays::parse(v).map_err(|e| named(k, e))?
                }
                "DEFAULT_DAYS" => self.default_days = days()?,
                "QUARANTINE_DAYS" => self.quarantine_days = days()?,
                _ => {}
            }
        }
        Ok(())
    }
}

impl RetentionConfig {
    /// Whether anything ever expires.
    pub fn is_configured(&self) -> bool {
        !self.category_days.0.is_empty()
            || self.default_days.is_some()
            || self.quarantine_days.is_some()
    }

    /// The cutoffs at `now_us`.
    pub fn cutoffs(&self, now_us: i64) -> Cutoffs {
        Cutoffs {
            categories: self
                .category_days
                .0
                .iter()
                .map(|(c, d)| (c.to_string(), d.cutoff(now_us)))
                .collect(),
            default: self.default_days.map(|d| d.cutoff(now_us)),
            quarantine: self.quarantine_days.map(|d| d.cutoff(now_us)),
        }
    }
}
