//! What the lint tests share: the ```sql sections of a rule's documentation, as the doc-example snapshot test and
//! the windowed-equality test both read them.

use tidegate_lint::{Dialect, RuleDoc};

/// One section's SQL and how it runs.
pub struct Section {
    pub sql: String,
    pub framework_transaction: bool,
    pub pg_version: u32,
    /// `postgres` unless the fence says `mysql` or `mariadb` (optionally `=VERSION`).
    pub dialect: Dialect,
    pub db_version: Option<String>,
}

/// The ```sql blocks under `## <heading>`, up to the next `## ` heading; `None` when there are none.
pub fn section(doc: &RuleDoc, heading: &str) -> Option<Section> {
    let documentation = doc.documentation();
    let mut in_section = false;
    // Inside a fenced block: `Some(true)` for SQL, `Some(false)` for any other (a console session).
    let mut in_block: Option<bool> = None;
    let mut found = None::<Section>;
    for line in documentation.lines() {
        let fence = line.trim_start().strip_prefix("```");
        if let Some(is_sql) = in_block {
            if fence.is_some() {
                in_block = None;
            } else if let (true, true, Some(section)) = (is_sql, in_section, found.as_mut()) {
                section.sql.push_str(line);
                section.sql.push('\n');
            }
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            in_section = title.trim() == heading;
            continue;
        }
        let Some(info) = fence else {
            continue;
        };
        let mut words = info.split_whitespace();
        let is_sql = words.next() == Some("sql");
        in_block = Some(is_sql);
        if !in_section || !is_sql {
            continue;
        }
        let section = found.get_or_insert_with(|| Section {
            sql: String::new(),
            framework_transaction: false,
            pg_version: 17,
            dialect: Dialect::Postgres,
            db_version: None,
        });
        for option in words {
            match option {
                "framework-transaction" => section.framework_transaction = true,
                other if other.starts_with("mysql") || other.starts_with("mariadb") => {
                    let (name, version) = other
                        .split_once('=')
                        .map_or((other, None), |(n, v)| (n, Some(v)));
                    section.dialect = Dialect::from_name(name).expect("mysql or mariadb");
                    section.db_version = version.map(str::to_string);
                }
                other => {
                    section.pg_version = other
                        .strip_prefix("pg=")
                        .and_then(|version| version.parse().ok())
                        .unwrap_or_else(|| panic!("{}: unknown sql fence option `{other}`", doc.id))
                }
            }
        }
    }
    found
}
