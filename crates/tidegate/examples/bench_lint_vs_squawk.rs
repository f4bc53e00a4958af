//! `tidegate lint` beside squawk on the same files: a generated corpus shaped like real migration histories,
//! linted as file arguments (the way pre-commit and CI diff steps pass them) and as directories, and one huge
//! file for peak memory in every output format. Prints times, ratios and peak RSS; asserts nothing.
//!
//! ```text
//! cargo build --release -p tidegate
//! cargo run --release -p tidegate --example bench_lint_vs_squawk -- --runs 7 --squawk "$(pyenv which squawk)"
//! ```
//!
//! Options: `--runs N` (timed runs per measurement, median reported; default 7), `--squawk PATH` (leave out to
//! time tidegate alone), `--tidegate PATH` (default: target/release/tidegate), `--projects N` and
//! `--files N` (corpus shape; default 7 projects of 450 files), `--huge-statements N` (default 200,000; 0 skips
//! the memory part), `--memory-only` (only the huge file), `--keep DIR` (write the corpus there and keep it).
//! Peak RSS and CPU time (user + system) are read with `/usr/bin/time -v`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Options {
    runs: usize,
    squawk: Option<PathBuf>,
    tidegate: PathBuf,
    projects: usize,
    files: usize,
    huge_statements: usize,
    memory_only: bool,
    keep: Option<PathBuf>,
}

fn options() -> Options {
    let mut options = Options {
        runs: 7,
        squawk: None,
        tidegate: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/tidegate"),
        projects: 7,
        files: 450,
        huge_statements: 200_000,
        memory_only: false,
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{arg} needs a value");
                std::process::exit(2)
            })
        };
        let number = |text: String| -> usize {
            text.replace('_', "").parse().unwrap_or_else(|_| {
                eprintln!("not a number: {text}");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--runs" => options.runs = number(value()).max(1),
            "--squawk" => options.squawk = Some(PathBuf::from(value())),
            "--tidegate" => options.tidegate = PathBuf::from(value()),
            "--projects" => options.projects = number(value()).max(1),
            "--files" => options.files = number(value()).max(1),
            "--huge-statements" => options.huge_statements = number(value()),
            "--keep" => options.keep = Some(PathBuf::from(value())),
            "--memory-only" => options.memory_only = true,
            other => {
                eprintln!("unknown argument {other}; see the doc comment of this example");
                std::process::exit(2)
            }
        }
    }
    options
}

/// A small deterministic generator (xorshift), so every run lints the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const COLUMN_TYPES: &[&str] = &[
    "text",
    "varchar(255)",
    "integer",
    "bigint",
    "boolean NOT NULL DEFAULT false",
    "timestamp",
    "timestamptz NOT NULL DEFAULT now()",
    "jsonb",
    "numeric(12,2)",
    "uuid",
];

/// One migration of a project's history, in the shapes real histories have (the golang-migrate fixture under
/// tests/fixtures/history is one): table creations with indexes and foreign keys, added columns, indexes,
/// constraints, renames, data fixes, seed rows, enum values, the odd transaction block.
fn migration(rng: &mut Rng, project: usize, index: usize, tables: &mut Vec<String>) -> String {
    let mut sql = String::new();
    let wrapped = rng.below(4) == 0;
    if wrapped {
        sql.push_str("BEGIN;\n\n");
    }
    let pick = |rng: &mut Rng, tables: &Vec<String>| tables[rng.below(tables.len())].clone();
    let kind = if tables.len() < 3 { 0 } else { rng.below(10) };
    match kind {
        0 | 1 => {
            let table = format!("p{project}_table_{index}");
            let _ = writeln!(sql, "CREATE TABLE {table} (\n    id bigserial PRIMARY KEY,");
            if let Some(parent) = tables.last() {
                let _ = writeln!(
                    sql,
                    "    {parent}_id bigint NOT NULL REFERENCES {parent} (id),"
                );
            }
            for column in 0..3 + rng.below(6) {
                let _ = writeln!(
                    sql,
                    "    column_{column} {},",
                    COLUMN_TYPES[rng.below(COLUMN_TYPES.len())]
                );
            }
            sql.push_str("    created_at timestamp NOT NULL DEFAULT now(),\n    updated_at timestamp\n);\n\n");
            let _ = writeln!(
                sql,
                "CREATE INDEX {table}_created_at_idx ON {table} (created_at);"
            );
            if rng.below(2) == 0 {
                let _ = writeln!(
                    sql,
                    "CREATE UNIQUE INDEX {table}_column_0_key ON {table} (column_0) WHERE column_0 IS NOT NULL;"
                );
            }
            tables.push(table);
        }
        2 => {
            let table = pick(rng, tables);
            let _ = writeln!(
                sql,
                "ALTER TABLE {table} ADD COLUMN extra_{index} {};",
                COLUMN_TYPES[rng.below(COLUMN_TYPES.len())]
            );
            let _ = writeln!(
                sql,
                "COMMENT ON COLUMN {table}.extra_{index} IS 'added in migration {index}';"
            );
        }
        3 => {
            let table = pick(rng, tables);
            let _ = writeln!(
                sql,
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {table}_updated_{index}_idx ON {table} (updated_at);"
            );
        }
        4 => {
            let table = pick(rng, tables);
            let _ = writeln!(
                sql,
                "CREATE INDEX {table}_pair_{index}_idx ON {table} (created_at, id);"
            );
        }
        5 => {
            let table = pick(rng, tables);
            let _ = writeln!(
                sql,
                "ALTER TABLE {table} ADD CONSTRAINT {table}_check_{index} CHECK (id > 0) NOT VALID;"
            );
            let _ = writeln!(
                sql,
                "ALTER TABLE {table} VALIDATE CONSTRAINT {table}_check_{index};"
            );
        }
        6 => {
            let table = pick(rng, tables);
            let _ = writeln!(
                sql,
                "UPDATE {table} SET updated_at = created_at WHERE updated_at IS NULL;"
            );
        }
        7 => {
            let table = pick(rng, tables);
            let _ = writeln!(
                sql,
                "INSERT INTO {table} (id, created_at) VALUES ({index}, now()), ({}, now());",
                index + 100_000
            );
        }
        8 => {
            let table = pick(rng, tables);
            let _ = writeln!(
                sql,
                "ALTER TABLE {table} ALTER COLUMN updated_at SET DEFAULT now();"
            );
            let _ = writeln!(
                sql,
                "ALTER TABLE {table} ALTER COLUMN created_at TYPE timestamptz;"
            );
        }
        _ => {
            let _ = writeln!(
                sql,
                "CREATE OR REPLACE FUNCTION p{project}_touch_{index}() RETURNS trigger AS $$\nBEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;"
            );
            let table = pick(rng, tables);
            let _ = writeln!(
                sql,
                "CREATE TRIGGER {table}_touch_{index} BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION p{project}_touch_{index}();"
            );
        }
    }
    if wrapped {
        sql.push_str("\nCOMMIT;\n");
    }
    sql
}

/// Writes `projects` directories of `files` plain-layout migrations each; returns the directories and files.
fn write_corpus(root: &Path, projects: usize, files: usize) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut dirs = Vec::new();
    let mut all = Vec::new();
    for project in 0..projects {
        let dir = root.join(format!("project-{project}"));
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        let mut tables = Vec::new();
        for index in 0..files {
            let path = dir.join(format!("{:06}_migration_{index}.sql", index + 1));
            std::fs::write(&path, migration(&mut rng, project, index, &mut tables))
                .expect("write a migration");
            all.push(path);
        }
        dirs.push(dir);
    }
    (dirs, all)
}

/// The huge file of the memory measurement: CREATE TABLE, ADD COLUMN, CREATE INDEX, UPDATE … WHERE, ALTER
/// COLUMN TYPE in turn. The four after CREATE TABLE touch a table the file does not create (as after a
/// squashed baseline), so they are findings: 160,002 on 200,000 statements.
fn write_huge(path: &Path, statements: usize) {
    let mut sql = String::with_capacity(statements * 48);
    for index in 0..statements {
        let table = format!("t{}", index / 5);
        let _ = match index % 5 {
            0 => writeln!(
                sql,
                "CREATE TABLE new_{table} (id bigint PRIMARY KEY, name text);"
            ),
            1 => writeln!(sql, "ALTER TABLE {table} ADD COLUMN c{index} int;"),
            2 => writeln!(sql, "CREATE INDEX {table}_name ON {table} (name);"),
            3 => writeln!(sql, "UPDATE {table} SET name = 'x' WHERE id > 10;"),
            _ => writeln!(
                sql,
                "ALTER TABLE {table} ALTER COLUMN c{} TYPE bigint;",
                index - 3
            ),
        };
    }
    std::fs::write(path, sql).expect("write the huge file");
}

/// One run: wall-clock time, and user + system CPU time of the process (from `/usr/bin/time`).
fn run_once(program: &Path, args: &[String]) -> (Duration, f64) {
    let start = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "TIDEGATE-BENCH-CPU %U %S"])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|error| panic!("cannot run /usr/bin/time {}: {error}", program.display()));
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Exit 1 is "findings"; anything else means the run did not lint.
    if !stderr.contains("exited with non-zero status 1") && !output.status.success() {
        eprintln!(
            "warning: {} exited with {}: {}",
            program.display(),
            output.status,
            stderr.lines().next().unwrap_or("")
        );
    }
    let cpu = stderr
        .lines()
        .find_map(|line| line.strip_prefix("TIDEGATE-BENCH-CPU "))
        .map(|times| {
            times
                .split_whitespace()
                .filter_map(|time| time.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(f64::NAN);
    (elapsed, cpu)
}

fn median(mut times: Vec<(Duration, f64)>) -> (f64, f64) {
    let middle = times.len() / 2;
    times.sort_by_key(|(wall, _)| *wall);
    let wall = times[middle].0.as_secs_f64();
    let mut cpu: Vec<f64> = times.iter().map(|(_, cpu)| *cpu).collect();
    cpu.sort_by(f64::total_cmp);
    (wall, cpu[middle])
}

/// Times both tools alternately (so a noisy neighbour hurts both alike) and prints the medians and the ratio.
fn compare(
    label: &str,
    runs: usize,
    tidegate: (&Path, Vec<String>),
    squawk: Option<(&Path, Vec<String>)>,
) {
    // One warm-up each: the page cache holds the corpus for every timed run alike.
    run_once(tidegate.0, &tidegate.1);
    if let Some((program, args)) = &squawk {
        run_once(program, args);
    }
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..runs {
        ours.push(run_once(tidegate.0, &tidegate.1));
        if let Some((program, args)) = &squawk {
            theirs.push(run_once(program, args));
        }
    }
    let (wall, cpu) = median(ours);
    if theirs.is_empty() {
        println!("{label:<30} tidegate {wall:>7.3} s (CPU {cpu:.2} s)");
    } else {
        let (their_wall, their_cpu) = median(theirs);
        println!(
            "{label:<30} tidegate {wall:>7.3} s (CPU {cpu:.2} s)   squawk {their_wall:>7.3} s (CPU {their_cpu:.2} s)   tidegate/squawk: wall {:.2}×, CPU {:.2}×",
            wall / their_wall,
            cpu / their_cpu
        );
    }
}

/// Peak RSS in MiB and CPU seconds (user + system) of one run, from `/usr/bin/time -v`.
fn peak_rss_mib(program: &Path, args: &[String]) -> Option<(f64, f64)> {
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let field = |name: &str| -> Option<f64> {
        stderr
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))?
            .trim()
            .parse()
            .ok()
    };
    let kib = field("Maximum resident set size (kbytes): ")?;
    let cpu = field("User time (seconds): ")? + field("System time (seconds): ")?;
    Some((kib / 1024.0, cpu))
}

fn strings(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect()
}

fn main() {
    let options = options();
    if !options.tidegate.is_file() {
        eprintln!(
            "{} is missing: build it first with `cargo build --release -p tidegate`, or pass --tidegate PATH",
            options.tidegate.display()
        );
        std::process::exit(2);
    }
    let temporary = tempfile::tempdir().expect("a temporary directory");
    let root = options
        .keep
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    if options.memory_only {
        huge_file(&options, &root);
        return;
    }
    let (dirs, files) = write_corpus(&root, options.projects, options.files);
    let statements: usize = files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|sql| tidegate_sql::parse_source(&sql).statements.len())
                .unwrap_or(0)
        })
        .sum();
    println!(
        "corpus: {} projects, {} files, {statements} statements ({}); {} timed runs each, medians",
        options.projects,
        files.len(),
        root.display(),
        options.runs
    );
    let tidegate = options.tidegate.as_path();
    let squawk = options.squawk.as_deref();
    let with_format = |format: &str, paths: &[PathBuf]| {
        let mut args = vec!["lint".to_string(), format!("--format={format}")];
        args.extend(strings(paths));
        args
    };
    let squawk_args = |paths: &[PathBuf]| {
        let mut args = vec!["--reporter=json".to_string()];
        args.extend(strings(paths));
        args
    };
    compare(
        "file arguments (json)",
        options.runs,
        (tidegate, with_format("json", &files)),
        squawk.map(|squawk| (squawk, squawk_args(&files))),
    );
    // squawk takes no directory, only files and glob patterns (which it expands itself): one pattern per
    // directory is its way of being given a directory.
    let patterns: Vec<PathBuf> = dirs.iter().map(|dir| dir.join("*.sql")).collect();
    compare(
        "directories (json)",
        options.runs,
        (tidegate, with_format("json", &dirs)),
        squawk.map(|squawk| (squawk, squawk_args(&patterns))),
    );
    // One pre-commit-sized change: the last three files of one project.
    let last_three: Vec<PathBuf> = files[options.files.saturating_sub(3)..options.files].to_vec();
    compare(
        "3 files of one project (json)",
        options.runs,
        (tidegate, with_format("json", &last_three)),
        squawk.map(|squawk| (squawk, squawk_args(&last_three))),
    );

    huge_file(&options, &root);
}

/// The memory part: one huge file, every format, beside squawk.
fn huge_file(options: &Options, root: &Path) {
    let with_format = |format: &str, paths: &[PathBuf]| {
        let mut args = vec!["lint".to_string(), format!("--format={format}")];
        args.extend(strings(paths));
        args
    };
    let tidegate = options.tidegate.as_path();
    let squawk = options.squawk.as_deref();
    if options.huge_statements > 0 {
        let huge = root.join("huge.sql");
        write_huge(&huge, options.huge_statements);
        println!(
            "\nhuge file: {} statements, {:.1} MB",
            options.huge_statements,
            std::fs::metadata(&huge).map_or(0.0, |m| m.len() as f64 / 1e6)
        );
        for format in tidegate_lint::render::Format::NAMES {
            let args = with_format(format, std::slice::from_ref(&huge));
            let start = Instant::now();
            let (rss, cpu) = peak_rss_mib(tidegate, &args).unwrap_or((f64::NAN, f64::NAN));
            println!(
                "tidegate --format {format:<9} peak RSS {rss:>7.1} MiB   CPU {cpu:>6.2} s   wall {:>6.2} s",
                start.elapsed().as_secs_f64()
            );
        }
        if let Some(squawk) = squawk {
            // Its tty reporter did not finish within ten minutes on this file: json only.
            let args = vec!["--reporter=json".to_string(), huge.display().to_string()];
            let start = Instant::now();
            let (rss, cpu) = peak_rss_mib(squawk, &args).unwrap_or((f64::NAN, f64::NAN));
            println!(
                "squawk --reporter json    peak RSS {rss:>7.1} MiB   CPU {cpu:>6.2} s   wall {:>6.2} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
}
