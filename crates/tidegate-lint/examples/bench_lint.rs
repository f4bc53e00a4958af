//! Lint throughput benchmark: generates a large corpus of realistic migrations, lints it in parallel and prints
//! statements per second and peak memory.
//!
//! ```text
//! cargo run --release -p tidegate-lint --example bench_lint -- [STATEMENTS] [--write DIR]
//! ```
//!
//! The corpus is split into independent migration directories (one per "service"); directories are linted in
//! parallel with rayon, the files of one directory in order (each file is judged against the catalog replayed
//! from the files before it, as `tidegate lint` does). `--write DIR` also writes the corpus to disk so the real
//! binary can be timed on it (`/usr/bin/time -v tidegate lint DIR/service-000`).

use std::fmt::Write as _;
use std::time::Instant;

use rayon::prelude::*;
use tidegate_lint::{Config, Session};

const STATEMENTS_PER_FILE: usize = 50;
const FILES_PER_DIRECTORY: usize = 100;

/// One migration file: a mix of what real migrations contain (table creation, indexes, columns, constraints,
/// data fixes, settings, comments), about 1 in 3 statements hazardous.
fn migration(directory: usize, file: usize) -> String {
    let mut sql = String::with_capacity(STATEMENTS_PER_FILE * 90);
    let table = format!("t{directory}_{file}");
    let previous = format!("t{directory}_{}", file.saturating_sub(1));
    let _ = writeln!(sql, "-- migration {file} of service {directory}");
    let _ = writeln!(sql, "SET lock_timeout = '2s';");
    let _ = writeln!(
        sql,
        "CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id bigint NOT NULL, status text NOT NULL DEFAULT 'new', amount numeric(12,2), created_at timestamptz NOT NULL DEFAULT now());"
    );
    let mut written = 2;
    let mut n: usize = 0;
    while written < STATEMENTS_PER_FILE {
        let statement = match n % 12 {
            0 => format!("CREATE INDEX CONCURRENTLY {table}_status_{n} ON {previous} (status);"),
            1 => format!("ALTER TABLE {previous} ADD COLUMN note_{n} text;"),
            2 => format!("ALTER TABLE {previous} ADD COLUMN flag_{n} boolean NOT NULL DEFAULT false;"),
            3 => format!("UPDATE {previous} SET status = 'done' WHERE id >= {n}000 AND id < {n}500;"),
            4 => format!("INSERT INTO {table} (account_id, status, amount) VALUES ({n}, 'new', {n}.50), ({n}, 'paid', 10);"),
            5 => format!("ALTER TABLE {previous} ADD CONSTRAINT {previous}_amount_{n} CHECK (amount >= 0) NOT VALID;"),
            6 => format!("CREATE INDEX {table}_account_{n} ON {previous} (account_id, created_at);"),
            7 => format!("UPDATE {previous} SET amount = 0 WHERE status = 'void';"),
            8 => format!("ALTER TABLE {previous} ALTER COLUMN note_{} TYPE varchar(200);", n.saturating_sub(7)),
            9 => format!("-- tidegate:ignore drop-column retired in release {n}\nALTER TABLE {previous} DROP COLUMN IF EXISTS old_{n};"),
            10 => format!("SELECT count(*) FROM {previous} WHERE created_at > now() - interval '1 day';"),
            _ => format!("ALTER TABLE {previous} VALIDATE CONSTRAINT {previous}_amount_{};", n.saturating_sub(6)),
        };
        sql.push_str(&statement);
        sql.push('\n');
        written += 1;
        n += 1;
    }
    sql
}

/// User + system CPU time of the whole process (all threads), from /proc/self/stat (clock ticks at the
/// Linux USER_HZ of 100).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 of the line.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn peak_memory_kib() -> Option<u64> {
    read_status_kib("VmHWM:")
}

fn current_memory_kib() -> Option<u64> {
    read_status_kib("VmRSS:")
}

fn read_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|line| line.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut target_statements = 200_000usize;
    let mut write_dir: Option<std::path::PathBuf> = None;
    let mut phases = false;
    while let Some(arg) = args.next() {
        if arg == "--phases" {
            phases = true;
        } else if arg == "--write" {
            write_dir = args.next().map(Into::into);
        } else if let Ok(number) = arg.parse() {
            target_statements = number;
        } else {
            eprintln!("usage: bench_lint [STATEMENTS] [--write DIR] [--phases]");
            std::process::exit(2);
        }
    }
    let statements_per_directory = STATEMENTS_PER_FILE * FILES_PER_DIRECTORY;
    let directories = target_statements.div_ceil(statements_per_directory).max(1);

    let generation = Instant::now();
    let corpus: Vec<Vec<String>> = (0..directories)
        .into_par_iter()
        .map(|directory| {
            (0..FILES_PER_DIRECTORY)
                .map(|file| migration(directory, file))
                .collect()
        })
        .collect();
    let corpus_bytes: usize = corpus.iter().flatten().map(String::len).sum();
    let files = directories * FILES_PER_DIRECTORY;
    eprintln!(
        "generated {files} files in {directories} directories ({:.1} MB) in {:.2?}",
        corpus_bytes as f64 / 1e6,
        generation.elapsed()
    );
    if let Some(dir) = &write_dir {
        for (directory, migrations) in corpus.iter().enumerate() {
            let path = dir.join(format!("service-{directory:03}"));
            std::fs::create_dir_all(&path).expect("create corpus directory");
            for (file, sql) in migrations.iter().enumerate() {
                std::fs::write(path.join(format!("{file:04}_migration.sql")), sql)
                    .expect("write corpus file");
            }
        }
        eprintln!("wrote the corpus to {}", dir.display());
    }

    if phases {
        let started = Instant::now();
        let statements: usize = corpus
            .par_iter()
            .map(|m| {
                m.iter()
                    .map(|sql| tidegate_sql::parse_source(sql).statements.len())
                    .sum::<usize>()
            })
            .sum();
        let e = started.elapsed();
        println!(
            "phase parse only:      {:.0} statements/s",
            statements as f64 / e.as_secs_f64()
        );
        let started = Instant::now();
        let statements: usize = corpus
            .par_iter()
            .map(|m| {
                let mut c = tidegate_sql::Catalog::new();
                m.iter()
                    .map(|sql| {
                        tidegate_sql::analyze_sql(sql, Default::default(), &mut c)
                            .statements()
                            .len()
                    })
                    .sum::<usize>()
            })
            .sum();
        let e = started.elapsed();
        println!(
            "phase parse+analyze:   {:.0} statements/s",
            statements as f64 / e.as_secs_f64()
        );
    }
    let rss_before = current_memory_kib().unwrap_or(0);
    let config = Config::default();
    let threads = rayon::current_num_threads();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let (statements, findings) = corpus
        .par_iter()
        .map(|migrations| {
            let mut session = Session::new(&config, None);
            let mut statements = 0;
            let mut findings = 0;
            for (file, sql) in migrations.iter().enumerate() {
                let report = session.lint(&format!("{file:04}_migration.sql"), sql, false);
                statements += report.statements;
                findings += report.findings.len();
            }
            (statements, findings)
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let elapsed = started.elapsed();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let peak = peak_memory_kib().unwrap_or(0);

    let per_second = statements as f64 / elapsed.as_secs_f64();
    println!("statements:            {statements} in {files} files, {findings} findings");
    println!("threads:               {threads}");
    println!("wall time:             {:.3} s", elapsed.as_secs_f64());
    println!(
        "throughput:            {per_second:.0} statements/s ({:.0} statements/s per thread)",
        per_second / threads as f64
    );
    if let Some(cpu) = cpu {
        println!(
            "cpu time:              {cpu:.3} s user+system: {:.0} statements per CPU-second (per core, independent of other load on the machine)",
            statements as f64 / cpu
        );
    }
    println!(
        "peak memory (VmHWM):   {:.1} MiB (corpus text: {:.1} MiB)",
        peak as f64 / 1024.0,
        corpus_bytes as f64 / 1_048_576.0
    );
    println!(
        "memory per statement:  {:.0} bytes of peak RSS overall, {:.0} bytes above the RSS before linting",
        peak as f64 * 1024.0 / statements as f64,
        peak.saturating_sub(rss_before) as f64 * 1024.0 / statements as f64
    );
}
