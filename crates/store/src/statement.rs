//! A SQL statement built fragment by fragment, each fragment added together with the
//! values its placeholders take.
//!
//! A [`Fragment`] is SQL text with exactly `N` placeholders (`?`), checked when the crate
//! is built (the `sql!` macro evaluates the count in a `const` block: an error in
//! `cargo build` and `cargo test`, though not in `cargo check`, which evaluates no such
//! block), and [`Statement::push`] takes it with an array of exactly `N` values. So the
//! text and its values cannot drift apart: there is no separate list of bindings to keep
//! in step. Text without values ([`Statement::new`], [`Statement::push_text`]) never holds
//! a placeholder: a `?` in it is written as the literal `??` the `clickhouse` crate
//! expects.
//!
//! Values are bound on the client side by the `clickhouse` crate, which escapes them
//! ([`clickhouse::query::Query::bind`]). Server-side query parameters would keep them out
//! of the text entirely, but ClickHouse 18.16, the server `make test` runs, has none.

use serde::{Serialize, Serializer};
use uuid::Uuid;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Written as an array literal, e.g. `[1,2]`.
    Ints(Vec<i64>),
    /// Written as an array literal, e.g. `['a','b']`.
    Texts(Vec<String>),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(v) => v.serialize(s),
            Self::Int(v) => v.serialize(s),
            Self::UInt(v) => v.serialize(s),
            Self::Float(v) => v.serialize(s),
            Self::Ints(v) => v.serialize(s),
            Self::Texts(v) => v.serialize(s),
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

/// A UUID is bound as its hyphenated text; the SQL converts it with `toUUID(?)`.
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Self::Text(v.to_string())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::UInt(v.into())
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Self::UInt(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl From<Vec<i64>> for Value {
    fn from(v: Vec<i64>) -> Self {
        Self::Ints(v)
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Self::Texts(v)
    }
}

impl From<Vec<&str>> for Value {
    fn from(v: Vec<&str>) -> Self {
        Self::Texts(v.into_iter().map(str::to_owned).collect())
    }
}

/// SQL text holding exactly `N` placeholders. Made by `sql!`, which checks
/// the count at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<const N: usize>(&'static str);

impl<const N: usize> Fragment<N> {
    /// Panics unless `text` holds exactly `N` placeholders; in a `const` block (as
    /// `sql!` calls it) that panic is a compile error.
    pub(crate) const fn new(text: &'static str) -> Self {
        assert!(
            placeholders(text) == N,
            "a SQL fragment must hold as many `?` as the values pushed with it"
        );
        Self(text)
    }

    pub const fn text(self) -> &'static str {
        self.0
    }
}

const fn placeholders(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'?' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// A [`Fragment`] whose placeholder count is checked at compile time against the number of
/// values it is pushed with: `statement.push(sql!(" AND name = ?"), [name.into()])`.
macro_rules! sql {
    ($text:expr) => {
        const { $crate::statement::Fragment::new($text) }
    };
}
pub(crate) use sql;

/// A statement's text, in the `clickhouse` crate's template syntax, and its values in
/// placeholder order.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Statement {
    text: String,
    values: Vec<Value>,
}

impl Statement {
    /// A statement that starts with `text`, which binds nothing.
    pub fn new(text: &str) -> Self {
        Self {
            text: String::new(),
            values: Vec::new(),
        }
        .push_text(text)
    }

    /// Appends text that binds nothing: a name checked by the caller, a fixed keyword.
    pub fn push_text(mut self, text: &str) -> Self {
        self.text.push_str(&text.replace('?', "??"));
        self
    }

    /// Appends a fragment and the values of its placeholders, in order.
    pub fn push<const N: usize>(mut self, fragment: Fragment<N>, values: [Value; N]) -> Self {
        self.text.push_str(fragment.text());
        self.values.extend(values);
        self
    }

    /// Appends another statement, its text and its values (a subquery).
    pub fn append(mut self, other: Statement) -> Self {
        self.text.push_str(&other.text);
        self.values.extend(other.values);
        self
    }

    /// The text, with one `?` per value (and `??` for a literal question mark).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// A query on `client` with every value bound in order.
    pub fn query(self, client: &clickhouse::Client) -> clickhouse::query::Query {
        self.values
            .into_iter()
            .fold(client.query(&self.text), |q, v| q.bind(v))
    }

    /// The statement as the server receives it, values written in as the `clickhouse`
    /// crate escapes them.
    pub fn render(&self) -> String {
        self.clone()
            .query(&clickhouse::Client::default())
            .sql_display()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_and_values_build_text_and_bindings_together() {
        let id = Uuid::from_u128(1);
        // (statement, text, values, rendered)
        let cases = [
            (Statement::new("SELECT 1"), "SELECT 1", vec![], "SELECT 1"),
            (
                Statement::new("SELECT x FROM t WHERE 1 = 1")
                    .push(sql!(" AND s = ?"), ["it's".into()])
                    .push(
                        sql!(" AND a >= ? AND b >= toDateTime(?)"),
                        [5i64.into(), 0i64.into()],
                    )
                    .push(sql!(" LIMIT ?"), [10u32.into()]),
                "SELECT x FROM t WHERE 1 = 1 AND s = ? AND a >= ? AND b >= toDateTime(?) LIMIT ?",
                vec![
                    Value::Text("it's".into()),
                    Value::Int(5),
                    Value::Int(0),
                    Value::UInt(10),
                ],
                r"SELECT x FROM t WHERE 1 = 1 AND s = 'it\'s' AND a >= 5 AND b >= toDateTime(0) LIMIT 10",
            ),
            (
                Statement::new("SELECT ").push(
                    sql!("?, ?, ?, ?"),
                    [
                        vec![1i64, -2].into(),
                        vec!["a", "b'"].into(),
                        id.into(),
                        1.5f64.into(),
                    ],
                ),
                "SELECT ?, ?, ?, ?",
                vec![
                    Value::Ints(vec![1, -2]),
                    Value::Texts(vec!["a".into(), "b'".into()]),
                    Value::Text("00000000-0000-0000-0000-000000000001".into()),
                    Value::Float(1.5),
                ],
                r"SELECT [1,-2], ['a','b\''], '00000000-0000-0000-0000-000000000001', 1.5",
            ),
            (
                // Text without values never becomes a placeholder.
                Statement::new("SELECT 'why?'").push_text(" -- and?"),
                "SELECT 'why??' -- and??",
                vec![],
                "SELECT 'why?' -- and?",
            ),
        ];
        for (statement, text, values, rendered) in cases {
            assert_eq!(statement.text(), text);
            assert_eq!(statement.values(), values.as_slice(), "{text}");
            assert_eq!(statement.render(), rendered);
        }
    }

    #[test]
    fn placeholders_are_counted() {
        for (text, n) in [("", 0), ("a = ?", 1), ("(? OR ?) AND ?", 3)] {
            assert_eq!(placeholders(text), n, "{text}");
        }
    }

    #[test]
    #[should_panic(expected = "as many `?`")]
    fn a_fragment_with_the_wrong_count_is_refused() {
        // Outside a const block the check runs at run time: this is what `sql!` turns into
        // a compile error.
        let text = std::hint::black_box(" AND a = ? AND b = ?");
        let _: Fragment<1> = Fragment::new(text);
    }
}
