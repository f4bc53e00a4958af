//! `tidegate explain`: prints a lint rule's documentation (the same text as docs/rules/), and writes
//! docs/rules/ from it.

use std::path::PathBuf;
use std::process::ExitCode;

use tidegate_lint::{find_rule, registry, suggest_rule};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The rule id, e.g. create-index-non-concurrently (`tidegate lint --rules` lists them)
    #[arg(required_unless_present_any = ["all", "stats_format"])]
    pub rule: Option<String>,

    /// Every rule
    #[arg(long)]
    pub all: bool,

    /// With --all: write one Markdown page per rule into DIR (how docs/rules/ is generated)
    #[arg(long, value_name = "DIR", requires = "all")]
    pub markdown: Option<PathBuf>,

    /// Describe the JSON format of `tidegate lint --stats FILE`
    #[arg(long)]
    pub stats_format: bool,
}

const STATS_FORMAT: &str = r#"tidegate lint --stats FILE reads table sizes as JSON (written by `tidegate plan --write-stats`, or by hand):

{
  "version": 1,
  "tables": {
    "public.orders": { "rows": 48000000, "bytes": 21474836480 },
    "public.feature_flags": { "rows": 12 }
  }
}

Keys are schema.table (an unqualified key means public). "rows" is required (pg_class.reltuples is fine),
"bytes" is optional. A size-sensitive hazard on a table with fewer rows than lint.small_table_rows
(tidegate.toml, default 10000) is reported as info instead of its usual severity.
"#;

pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    if args.stats_format {
        print!("{STATS_FORMAT}");
        return Ok(super::exit_clean());
    }
    if args.all {
        if let Some(dir) = &args.markdown {
            std::fs::create_dir_all(dir)
                .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
            for rule in registry() {
                let doc = rule.doc();
                let path = dir.join(format!("{}.md", doc.id));
                std::fs::write(&path, doc.markdown_page())
                    .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
            }
            let index = dir.join("README.md");
            std::fs::write(&index, tidegate_lint::rules_index_markdown())
                .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", index.display()))?;
            eprintln!(
                "wrote {} rule pages and README.md to {}",
                registry().len(),
                dir.display()
            );
        } else {
            for rule in registry() {
                print!("{}\n\n", page(rule.doc()));
            }
        }
        return Ok(super::exit_clean());
    }
    let id = args.rule.unwrap_or_default();
    match find_rule(&id) {
        Some(rule) => {
            print!("{}", page(rule.doc()));
            Ok(super::exit_clean())
        }
        None => {
            let suggestions = suggest_rule(&id);
            if suggestions.is_empty() {
                eprintln!("error: unknown rule `{id}`; `tidegate lint --rules` lists the rules");
            } else {
                eprintln!(
                    "error: unknown rule `{id}`; did you mean `{}`? (`tidegate lint --rules` lists the rules)",
                    suggestions.join("`, `")
                );
            }
            Ok(super::exit_usage())
        }
    }
}

fn page(doc: &tidegate_lint::RuleDoc) -> String {
    format!(
        "{} (default severity: {})\n{}\n\n{}",
        doc.id,
        doc.default_setting(),
        doc.summary,
        doc.documentation()
    )
}
