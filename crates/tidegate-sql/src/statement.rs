//! The statement model and the splitting/parsing of one source text into statements.

use pg_query::NodeEnum;
use serde::Serialize;

use crate::catalog::TableOrigin;
use crate::facts::{ConstraintKind, LockLevel, Operation};
use crate::scope::RowScope;
use crate::source::{comment_text, skip_trivia, Comment, LineIndex, Span};
use crate::tree::{ColumnType, TableName};

/// DDL, DML and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    /// Changes the schema (CREATE, ALTER, DROP, index and maintenance commands).
    Ddl,
    /// Changes data (INSERT, UPDATE, DELETE, MERGE, COPY FROM).
    Dml,
    /// Reads (SELECT).
    Query,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT …
    TransactionControl,
    /// SET, RESET, SHOW.
    Session,
    /// Anything else (DO blocks, CALL, …).
    Other,
    /// The statement did not parse.
    Invalid,
}

/// Whether a statement runs inside a transaction block, and which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "id")]
pub enum TransactionState {
    /// Autocommit: the statement is its own transaction and releases its locks when it ends.
    None,
    /// Inside an explicit `BEGIN … COMMIT`; ids are unique within a migration.
    Explicit(u32),
    /// Inside the transaction the migration framework wraps around the file (id 0).
    Framework(u32),
}

impl TransactionState {
    pub fn in_transaction(self) -> bool {
        self != TransactionState::None
    }

    /// The transaction's id, when in one.
    pub fn id(self) -> Option<u32> {
        match self {
            TransactionState::None => None,
            TransactionState::Explicit(id) | TransactionState::Framework(id) => Some(id),
        }
    }
}

/// What a transaction-control statement did to the transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionEvent {
    Begin,
    /// BEGIN while a transaction is already open (PostgreSQL warns and ignores it).
    NestedBegin,
    Commit,
    Rollback,
    /// COMMIT/ROLLBACK with no transaction open (PostgreSQL warns).
    EndWithoutTransaction,
    /// COMMIT/ROLLBACK that ends the framework's own transaction early.
    EndsFrameworkTransaction,
}

/// What one statement does to one table: the operation, the facts-table answer for it on the target
/// PostgreSQL version, and where the table comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableEffect {
    pub table: TableName,
    pub operation: Operation,
    pub lock: LockLevel,
    pub rewrite: bool,
    pub scan: bool,
    pub origin: TableOrigin,
    /// The column the operation targets, if any (for `DROP CONSTRAINT` of a `CHECK (col IS NOT NULL)` helper: the
    /// column it proved not null).
    pub column: Option<String>,
    /// The constraint or index the operation targets, if any.
    pub object: Option<String>,
    /// Byte offset in the file of the part of the statement this effect comes from (a column or constraint
    /// definition), when the parser records one.
    pub offset: Option<usize>,
    /// For constraint operations: the constraint's kind, when known (for drops: as the catalog knew it).
    pub constraint_kind: Option<ConstraintKind>,
    /// For the target of an UPDATE, DELETE, MERGE or INSERT … SELECT, and for each table a query copies from
    /// (INSERT … SELECT, CREATE TABLE AS): how many of the table's rows the statement reaches. `None` for every
    /// other effect.
    pub rows: Option<RowScope>,
    /// For `ALTER COLUMN … TYPE`: the column's type before the statement, when the catalog knew it.
    pub previous_type: Option<ColumnType>,
}

/// One SQL statement of a migration, with everything tidegate knows about it.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// 0-based position in its migration.
    pub index: usize,
    /// The statement's text, without the leading comments and the terminating semicolon.
    pub text: String,
    pub span: Span,
    /// The parsed statement; `None` when it did not parse.
    #[serde(skip)]
    pub node: Option<Box<NodeEnum>>,
    /// The byte offset in the file that `location` fields inside `node` are relative to (PostgreSQL node
    /// locations count from the start of the parsed text). Use [`Statement::file_offset`].
    pub node_offset: usize,
    /// The parser's message when the statement did not parse.
    pub syntax_error: Option<String>,
    /// The comments between the previous statement and this one.
    pub leading_comments: Vec<Comment>,
    pub kind: StatementKind,
    /// The tables the statement touches and how (filled by analysis).
    pub effects: Vec<TableEffect>,
    pub transaction: TransactionState,
    pub transaction_event: Option<TransactionEvent>,
}

impl Statement {
    /// The strongest lock this statement takes on `table`, if it touches it.
    pub fn lock_on(&self, table: &TableName) -> Option<LockLevel> {
        self.effects
            .iter()
            .filter(|effect| effect.table.key() == table.key())
            .map(|effect| effect.lock)
            .max()
    }

    /// The strongest lock per table, one entry per table in first-touched order.
    pub fn locks(&self) -> Vec<(&TableName, LockLevel)> {
        let mut locks: Vec<(&TableName, LockLevel)> = Vec::new();
        for effect in &self.effects {
            match locks
                .iter_mut()
                .find(|(table, _)| table.key() == effect.table.key())
            {
                Some((_, level)) => *level = (*level).max(effect.lock),
                None => locks.push((&effect.table, effect.lock)),
            }
        }
        locks
    }

    /// The byte offset in the file of a node `location` (`-1`, PostgreSQL's "unknown", gives `None`).
    pub fn file_offset(&self, location: i32) -> Option<usize> {
        usize::try_from(location)
            .ok()
            .map(|location| self.node_offset + location)
            .filter(|offset| self.span.bytes.contains(offset))
    }

    /// Whether the statement rewrites any table.
    pub fn rewrites(&self) -> bool {
        self.effects.iter().any(|effect| effect.rewrite)
    }

    /// For a data change (UPDATE, DELETE, MERGE, INSERT … SELECT): how many rows of its target it reaches.
    /// `None` for anything else, INSERT … VALUES and COPY included (they change exactly the rows they carry).
    pub fn row_scope(&self) -> Option<RowScope> {
        if self.kind != StatementKind::Dml {
            return None;
        }
        self.effects.first().and_then(|target| target.rows)
    }

    /// Whether this data change is bounded to one batch of its target's key (see [`RowScope::OneBatch`]).
    pub fn is_one_batch(&self) -> bool {
        self.row_scope().is_some_and(RowScope::is_one_batch)
    }
}

/// A source text split into statements, before analysis.
#[derive(Debug, Clone)]
pub struct ParsedSource {
    pub statements: Vec<Statement>,
    /// Comments after the last statement.
    pub trailing_comments: Vec<Comment>,
    pub line_index: LineIndex,
}

/// Splits `source` into statements and parses each with the PostgreSQL 18 parser.
///
/// A statement that does not parse becomes a [`Statement`] with `kind == Invalid` and its `syntax_error`
/// set; the statements around it are still parsed. Never panics.
pub fn parse_source(source: &str) -> ParsedSource {
    let mut statements = Vec::new();
    let (trailing_comments, line_index) =
        parse_each(source, ParseMode::WholeFile, &mut |statement| {
            statements.push(statement)
        });
    ParsedSource {
        statements,
        trailing_comments,
        line_index,
    }
}

/// How [`parse_each`] feeds the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseMode<'r> {
    /// One parser call for the whole file when it parses (fastest; all parse trees exist at once).
    WholeFile,
    /// Split first, then parse one statement at a time, so only one statement's parse tree exists while it
    /// is handed over (bounded memory for huge files).
    OneByOne,
    /// Like `OneByOne`, with the file already split by [`split_statements`] (a file read twice is split once).
    Split(&'r StatementRanges),
}

/// Where each statement of a source text is, as the PostgreSQL scanner splits it (see
/// [`split_statements`]). Splitting scans the whole text at once, which takes memory in proportion to it;
/// a caller that parses a huge file more than once splits it once and keeps this (16 bytes a statement).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatementRanges(Vec<std::ops::Range<usize>>);

/// Splits `source` into statement ranges the way [`crate::analyze_in_windows`] and
/// [`crate::analyze_sql_streaming`] do.
pub fn split_statements(source: &str) -> StatementRanges {
    let mut ranges = split_ranges(source);
    ranges.shrink_to_fit();
    StatementRanges(ranges)
}

/// Splits and parses `source`, handing each statement to `visit` in order; returns the comments after the
/// last statement and the line index.
pub(crate) fn parse_each(
    source: &str,
    mode: ParseMode<'_>,
    visit: &mut dyn FnMut(Statement),
) -> (Vec<Comment>, LineIndex) {
    let line_index = LineIndex::new(source);
    let whole_file = match mode {
        ParseMode::WholeFile => guarded_parse(source).ok(),
        ParseMode::OneByOne | ParseMode::Split(_) => None,
    };
    let split;
    let ranges: &[std::ops::Range<usize>] = match mode {
        ParseMode::Split(StatementRanges(ranges)) => ranges,
        _ if whole_file.is_some() => &[],
        _ => {
            split = split_ranges(source);
            &split
        }
    };
    let pieces: Box<dyn Iterator<Item = Piece>> = match whole_file {
        Some(result) => Box::new(result.protobuf.stmts.into_iter().map(|raw| {
            let start = usize::try_from(raw.stmt_location).unwrap_or(0);
            let end = match usize::try_from(raw.stmt_len) {
                Ok(0) | Err(_) => source.len(),
                Ok(len) => start + len,
            };
            Piece::Parsed(Box::new((
                start.min(source.len())..end.min(source.len()),
                raw.stmt.and_then(|node| node.node),
                None,
                0,
            )))
        })),
        None => Box::new(ranges.iter().cloned().map(Piece::Unparsed)),
    };
    let mut last_end = 0;
    let mut index = 0;
    for piece in pieces {
        let (range, node, syntax_error, node_offset) = match piece {
            Piece::Parsed(raw) => *raw,
            Piece::Unparsed(range) => parse_piece(source, range),
        };
        // Leading comments are collected from the end of the previous statement: the parser's statement
        // location may already point past them.
        let (start, comment_ranges) = skip_separators(source, last_end.min(range.start));
        let start = start.max(skip_trivia(source, range.start).0);
        let end = start.max(trim_end(source, range.end));
        last_end = last_end.max(range.end);
        if start >= end {
            continue;
        }
        let leading_comments = comments(source, &line_index, comment_ranges);
        let kind = if node.is_none() {
            StatementKind::Invalid
        } else {
            StatementKind::Other
        };
        visit(Statement {
            index,
            text: source[start..end].to_string(),
            span: line_index.span(source, start..end),
            node: node.map(Box::new),
            node_offset,
            syntax_error,
            leading_comments,
            kind,
            effects: Vec::new(),
            transaction: TransactionState::None,
            transaction_event: None,
        });
        index += 1;
    }
    let (_, trailing) = skip_separators(source, last_end.min(source.len()));
    (comments(source, &line_index, trailing), line_index)
}

enum Piece {
    Parsed(Box<RawStatement>),
    Unparsed(std::ops::Range<usize>),
}

/// Skips whitespace, comments and statement-terminating semicolons.
fn skip_separators(source: &str, mut offset: usize) -> (usize, Vec<std::ops::Range<usize>>) {
    let mut comments = Vec::new();
    loop {
        let (next, mut found) = skip_trivia(source, offset);
        comments.append(&mut found);
        if source.as_bytes().get(next) == Some(&b';') {
            offset = next + 1;
        } else {
            return (next, comments);
        }
    }
}

fn comments(
    source: &str,
    line_index: &LineIndex,
    ranges: Vec<std::ops::Range<usize>>,
) -> Vec<Comment> {
    ranges
        .into_iter()
        .map(|range| Comment {
            text: comment_text(source, range.clone()),
            line: line_index.position(source, range.start).line,
            bytes: range,
        })
        .collect()
}

fn trim_end(source: &str, end: usize) -> usize {
    let end = end.min(source.len());
    let mut end = end;
    while end > 0 && !source.is_char_boundary(end) {
        end -= 1;
    }
    source[..end].trim_end().len()
}

/// `pg_query::parse`, with a panic inside the crate's post-processing turned into a parse error: a linter must
/// survive any input.
fn guarded_parse(text: &str) -> Result<pg_query::ParseResult, String> {
    if text.contains('\0') {
        return Err("the text contains a NUL byte, which PostgreSQL does not accept".to_string());
    }
    match std::panic::catch_unwind(|| pg_query::parse(text, 0)) {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the parser failed on this statement".to_string()),
    }
}

/// (byte range, parsed node, syntax error, the byte offset the node's `location` fields are relative to).
type RawStatement = (
    std::ops::Range<usize>,
    Option<NodeEnum>,
    Option<String>,
    usize,
);

/// The byte ranges of the statements of `source`, split with the PostgreSQL scanner (used when the file as a
/// whole does not parse, or to parse one statement at a time). Text the splitter skips (it drops statements
/// made only of invalid tokens) becomes a range of its own, so it is reported too.
fn split_ranges(source: &str) -> Vec<std::ops::Range<usize>> {
    let pieces = if source.contains('\0') {
        Vec::new()
    } else {
        scanner_pieces(source, SCAN_CHUNK_BYTES)
    };
    let mut ranges = Vec::new();
    let mut covered = 0;
    for piece in pieces
        .into_iter()
        .chain(std::iter::once(source.len()..source.len()))
    {
        if piece.start > covered {
            // A gap the splitter skipped: keep any non-trivia text in it, split at semicolons.
            ranges.extend(non_trivia_pieces(source, covered..piece.start));
        }
        if !piece.is_empty() {
            ranges.push(piece.clone());
        }
        covered = covered.max(piece.end);
    }
    ranges
}

/// How much text one scanner call sees. The scanner keeps every identifier and literal it has read until it
/// returns, so scanning a 10 MB file at once took about 30 MB, and the C allocator kept most of it after.
const SCAN_CHUNK_BYTES: usize = 256 * 1024;

/// The statement ranges the PostgreSQL scanner finds in `source`, scanning at most about `chunk_bytes` at a
/// time. A chunk's last statement may be cut short by the chunk's end, so it is dropped and scanned again at
/// the start of the next chunk; every earlier statement ended at a `;` token, which the scanner reads the same
/// way whatever follows. A chunk that does not scan (cut inside a quoted string or a comment, or holding one
/// statement longer than itself) is retried twice as long. Where the rest of the text does not scan at all,
/// the ranges end early and the caller splits the rest itself.
fn scanner_pieces(source: &str, chunk_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chunk = chunk_bytes;
    while start < source.len() {
        let end = crate::source::floor_char_boundary(
            source,
            start.saturating_add(chunk).min(source.len()),
        );
        let is_last = end == source.len();
        match scan_pieces(&source[start..end], start) {
            Some(mut found) if is_last => {
                pieces.append(&mut found);
                break;
            }
            Some(mut found) if found.len() >= 2 => {
                found.pop();
                start = found.last().map_or(start, |piece| piece.end);
                pieces.append(&mut found);
                chunk = chunk_bytes;
            }
            None if is_last => break,
            _ => chunk = chunk.saturating_mul(2),
        }
    }
    pieces
}

/// One scanner call over `text`, which starts at byte `offset` of the file; `None` when it does not scan.
fn scan_pieces(text: &str, offset: usize) -> Option<Vec<std::ops::Range<usize>>> {
    let slices = std::panic::catch_unwind(|| pg_query::split_with_scanner(text))
        .ok()?
        .ok()?;
    Some(
        slices
            .into_iter()
            .map(|slice| {
                let start = offset + (slice.as_ptr() as usize - text.as_ptr() as usize);
                start..start + slice.len()
            })
            .collect(),
    )
}

/// Parses one statement's range on its own; node locations are then relative to the statement's first token.
fn parse_piece(source: &str, range: std::ops::Range<usize>) -> RawStatement {
    let (start, _) = skip_trivia(source, range.start);
    let start = start.min(range.end);
    let text = &source[start..range.end];
    match guarded_parse(text) {
        Ok(result) => {
            let node = result
                .protobuf
                .stmts
                .into_iter()
                .next()
                .and_then(|raw| raw.stmt)
                .and_then(|node| node.node);
            let error = node.is_none().then(|| "empty statement".to_string());
            (range, node, error, start)
        }
        Err(message) => (range, None, Some(message), start),
    }
}

fn non_trivia_pieces(source: &str, range: std::ops::Range<usize>) -> Vec<std::ops::Range<usize>> {
    let mut pieces = Vec::new();
    let mut offset = range.start;
    while offset < range.end {
        let (start, _) = skip_trivia(source, offset);
        if start >= range.end {
            break;
        }
        if source.as_bytes()[start] == b';' {
            offset = start + 1;
            continue;
        }
        let end = source[start..range.end]
            .find(';')
            .map_or(range.end, |semicolon| start + semicolon);
        pieces.push(start..end);
        offset = end + 1;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parses_and_keeps_going_after_a_syntax_error() {
        let source = "-- first\nCREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN;\n\nSELECT 1;\n";
        let parsed = parse_source(source);
        assert_eq!(parsed.statements.len(), 3);
        let first = &parsed.statements[0];
        assert_eq!(first.text, "CREATE TABLE a (id int)");
        assert_eq!((first.span.start.line, first.span.start.column), (2, 1));
        assert_eq!(first.leading_comments[0].text, "first");
        let broken = &parsed.statements[1];
        assert_eq!(broken.kind, StatementKind::Invalid);
        assert_eq!(broken.span.start.line, 3);
        assert!(broken.syntax_error.is_some());
        assert!(parsed.statements[2].node.is_some());
        assert_eq!(parsed.statements[2].span.start.line, 5);
    }

    #[test]
    fn statements_made_only_of_garbage_are_reported() {
        let parsed = parse_source("asdf;\nSELECT 1;\n");
        assert_eq!(parsed.statements.len(), 2);
        assert_eq!(parsed.statements[0].text, "asdf");
        assert!(parsed.statements[0].syntax_error.is_some());
        assert!(parsed.statements[1].node.is_some());
    }

    #[test]
    fn scanning_in_chunks_finds_the_statements_one_scan_finds() {
        let sources = [
            "CREATE TABLE a (id int, s text DEFAULT 'x;y');\nSELECT $$ ; $$, $tag$ a;b $tag$;\n",
            "/* a ; /* nested ; */ still */ SELECT 1; -- trailing ; comment\nSELECT 'é;ü' AS \"q;uoted\";\n;;\nSELECT 2",
            "SELECT 1;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; SELECT 2; $body$;\nSELECT E'\\';';",
            "   -- only a comment\n",
        ];
        for source in sources {
            let whole = scanner_pieces(source, usize::MAX);
            for chunk in 1..=source.len() + 1 {
                assert_eq!(
                    scanner_pieces(source, chunk),
                    whole,
                    "chunks of {chunk} bytes over {source:?}"
                );
            }
        }
    }

    #[test]
    fn where_the_text_stops_scanning_the_statements_before_it_are_still_found() {
        let source = "SELECT 1; SELECT 2; SELECT 'never closed; SELECT 3;";
        for chunk in 1..=source.len() {
            let pieces = scanner_pieces(source, chunk);
            assert!(pieces.len() <= 2, "{pieces:?}");
            assert!(pieces.iter().all(|piece| piece.end <= 18), "{pieces:?}");
        }
        let texts: Vec<&str> = split_ranges(source)
            .into_iter()
            .map(|range| source[range].trim())
            .collect();
        assert_eq!(
            texts,
            ["SELECT 1", "SELECT 2", "SELECT 'never closed", "SELECT 3"]
        );
    }

    #[test]
    fn a_huge_file_is_split_as_a_small_one_would_be() {
        let mut source = String::new();
        for index in 0..20_000 {
            source.push_str(&format!(
                "ALTER TABLE t{index} ADD COLUMN c text DEFAULT 'a;{index}'; -- ; {index}\n"
            ));
        }
        assert!(source.len() > 2 * SCAN_CHUNK_BYTES);
        let ranges = split_ranges(&source);
        assert_eq!(ranges.len(), 20_000);
        assert_eq!(ranges, scanner_pieces(&source, usize::MAX));
    }

    #[test]
    fn nul_bytes_and_empty_input_do_not_panic() {
        assert!(parse_source("").statements.is_empty());
        let parsed = parse_source("SELECT 1;\0;");
        assert!(parsed.statements.iter().any(|s| s.syntax_error.is_some()));
    }
}
