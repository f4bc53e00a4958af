//! Splitting a MySQL/MariaDB migration into statements and parsing each: sqlparser's tokenizer (MySQL dialect)
//! cuts the file at top-level semicolons and keeps the comments before each statement; a token pre-pass takes out
//! what sqlparser does not parse (`ALGORITHM=`, `LOCK=`, MariaDB's `NOCOPY`, `WAIT n`/`NOWAIT`, `ALTER ONLINE`,
//! table options such as `FORCE`, `ROW_FORMAT=`, `ENGINE=`, `CONVERT TO CHARACTER SET`, `RENAME INDEX`, `DROP
//! CHECK`, and partition clauses) and records it in the model; sqlparser parses the rest. A statement that does
//! not parse is kept as [`MyKind::Unparsed`] with the parser's message: never skipped.

use sqlparser::ast;
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use super::facts::Algorithm;
use crate::source::{Comment, Position, Span};

/// One statement of a MySQL-family migration.
#[derive(Debug, Clone)]
pub struct MyStatement {
    /// 0-based index in the file.
    pub index: usize,
    pub text: String,
    pub span: Span,
    /// The comments between the previous statement and this one (`-- tidegate:ignore` lives there).
    pub leading_comments: Vec<Comment>,
    pub kind: MyKind,
}

/// What a statement is, as far as the rules care.
#[derive(Debug, Clone)]
pub enum MyKind {
    /// ALTER TABLE, CREATE/DROP INDEX, RENAME TABLE, OPTIMIZE TABLE: everything the online-DDL tables cover.
    Alter(AlterTable),
    CreateTable(CreateTable),
    DropTable {
        tables: Vec<String>,
    },
    Truncate {
        tables: Vec<String>,
    },
    Update(DataChange),
    Delete(DataChange),
    /// `INSERT … SELECT`: a bulk copy into `table`.
    InsertSelect {
        table: String,
    },
    /// `INSERT … VALUES`: seed rows.
    InsertValues {
        table: String,
    },
    Set(Vec<Assignment>),
    Begin,
    Commit,
    Rollback,
    /// Parsed, but nothing the rules look at (CREATE VIEW, GRANT, SELECT, …).
    Other,
    /// Did not parse: `message` says why, at `position`.
    Unparsed {
        message: String,
        position: Position,
    },
}

/// `LOCK=` of an ALTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockClause {
    Default,
    None,
    Shared,
    Exclusive,
}

/// MariaDB's `WAIT n` / `NOWAIT` on a DDL statement: how long it waits for its metadata lock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WaitClause {
    Seconds(f64),
    NoWait,
}

/// An ALTER in the online-DDL sense.
#[derive(Debug, Clone)]
pub struct AlterTable {
    pub table: String,
    pub changes: Vec<Change>,
    /// `ALGORITHM=` as written (`None`: not written, or `DEFAULT`).
    pub algorithm: Option<Algorithm>,
    pub lock: Option<LockClause>,
    pub wait: Option<WaitClause>,
    /// `ALTER ONLINE TABLE` (MariaDB: `LOCK=NONE`).
    pub online: bool,
    /// Syntax only MariaDB accepts, as written (`NOCOPY`, `WAIT 5`, `ONLINE`), for the MySQL dialect's refusal.
    pub mariadb_only: Vec<String>,
    /// Which statement it was written as: where an `ALGORITHM=`/`LOCK=` clause may be added, and how.
    pub form: AlterForm,
}

/// The statement an [`AlterTable`] was written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterForm {
    /// `ALTER TABLE t clause, clause…`; `partitioned` when a `PARTITION BY`/`REMOVE PARTITIONING` tail ends it
    /// (an option written after that tail is a syntax error).
    AlterTable { partitioned: bool },
    /// `CREATE INDEX … ON t (…) [index options]`: options are separated by spaces, not commas.
    CreateIndex,
    /// `DROP INDEX i ON t [options]`.
    DropIndex,
    /// `RENAME TABLE a TO b`: takes no algorithm clause.
    RenameTable,
    /// `OPTIMIZE TABLE t`: takes no algorithm clause.
    Optimize,
}

/// One change of an ALTER, before the catalog tells what it does to the existing column.
#[derive(Debug, Clone)]
pub enum Change {
    AddColumn {
        column: ColumnDef,
        positioned: bool,
    },
    /// `MODIFY col …` (`old == new`) or `CHANGE old new …`.
    ModifyColumn {
        old: String,
        column: ColumnDef,
        positioned: bool,
    },
    DropColumn {
        column: String,
    },
    RenameColumn {
        old: String,
        new: String,
    },
    SetDefault {
        column: String,
    },
    DropDefault {
        column: String,
    },
    /// `ALTER COLUMN c SET NOT NULL` style changes sqlparser reads but MySQL does not have.
    OtherColumnChange {
        column: String,
    },
    AddIndex {
        kind: IndexKind,
    },
    DropIndex,
    RenameIndex,
    AddPrimaryKey {
        columns: Vec<String>,
    },
    DropPrimaryKey,
    AddForeignKey,
    DropForeignKey,
    AddCheck,
    DropConstraint,
    AutoIncrement,
    RowFormat,
    Rebuild,
    ConvertCharset,
    DefaultCharset,
    Comment,
    RenameTable {
        to: String,
    },
    AddPartition,
    DropPartition,
    TruncatePartition,
    Repartition,
    /// A table option tidegate has no fact for (`STATS_PERSISTENT=`, `ENCRYPTION=`, …).
    OtherTableOption {
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Plain,
    Unique,
    Fulltext,
    Spatial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generated {
    Stored,
    Virtual,
}

/// A column definition as the rules need it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    /// The type as sqlparser prints it (`INT`, `VARCHAR(20)`, `BIGINT UNSIGNED`).
    pub data_type: String,
    /// `VARCHAR(n)`'s n.
    pub varchar_length: Option<u64>,
    pub nullable: bool,
    pub has_default: bool,
    /// `AUTO_INCREMENT`: the server fills it, as a default would.
    pub auto_increment: bool,
    pub generated: Option<Generated>,
    pub primary_key: bool,
}

#[derive(Debug, Clone)]
pub struct CreateTable {
    pub table: String,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<String>,
}

/// An UPDATE or DELETE.
#[derive(Debug, Clone)]
pub struct DataChange {
    pub table: String,
    /// A multi-table form (`UPDATE a JOIN b …`, `DELETE a FROM a JOIN b …`).
    pub joined: bool,
    pub selection: Option<Box<ast::Expr>>,
    pub limited: bool,
    /// An UPDATE's assignment list as sqlparser prints it (`b = a * 2, c = NULL`); `None` for a DELETE.
    pub set: Option<String>,
}

/// One `SET name = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Lower case, without `@@session.` / `@@`.
    pub name: String,
    /// `SET GLOBAL` / `@@global.`: affects later sessions, not this one.
    pub global: bool,
    /// The value as written (`5`, `DEFAULT`, `'x'`).
    pub value: String,
}

/// A parsed migration: its statements and the comments after the last one.
#[derive(Debug, Clone, Default)]
pub struct MyParsed {
    pub statements: Vec<MyStatement>,
    pub trailing_comments: Vec<Comment>,
}

/// Parses a MySQL/MariaDB migration.
pub fn parse_mysql(sql: &str) -> MyParsed {
    let dialect = MySqlDialect {};
    let line_starts = line_starts(sql);
    let tokens = match Tokenizer::new(&dialect, sql).tokenize_with_location() {
        Ok(tokens) => tokens,
        Err(error) => {
            // The file cannot even be cut into tokens (an unterminated quote): one unparsed statement from the
            // first non-blank character to the end, so the error is reported, not passed.
            let start = sql.len() - sql.trim_start().len();
            let end = sql.trim_end().len().max(start);
            let span = span_of(sql, &line_starts, start, end);
            return MyParsed {
                statements: vec![MyStatement {
                    index: 0,
                    text: sql[start..end].to_string(),
                    kind: MyKind::Unparsed {
                        message: error.message.clone(),
                        position: Position {
                            line: error.location.line as usize,
                            column: error.location.column as usize,
                        },
                    },
                    span,
                    leading_comments: Vec::new(),
                }],
                trailing_comments: Vec::new(),
            };
        }
    };
    let mut parsed = MyParsed::default();
    let mut comments = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let mut depth = 0usize;
    let finish =
        |current: &mut Vec<TokenWithSpan>, comments: &mut Vec<Comment>, parsed: &mut MyParsed| {
            if current.is_empty() {
                return;
            }
            let tokens = std::mem::take(current);
            let start = offset_of(sql, &line_starts, &tokens[0].span.start);
            let end = offset_of(sql, &line_starts, &tokens[tokens.len() - 1].span.end);
            let span = span_of(sql, &line_starts, start, end);
            let index = parsed.statements.len();
            parsed.statements.push(MyStatement {
                index,
                text: sql[start..end].to_string(),
                span,
                leading_comments: std::mem::take(comments),
                kind: parse_tokens(tokens),
            });
        };
    for token in tokens {
        match &token.token {
            Token::Whitespace(Whitespace::SingleLineComment { comment, .. }) => {
                if current.is_empty() {
                    comments.push(comment_of(sql, &line_starts, &token, comment));
                }
            }
            Token::Whitespace(Whitespace::MultiLineComment(comment)) => {
                if current.is_empty() {
                    comments.push(comment_of(sql, &line_starts, &token, comment));
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            Token::SemiColon if depth == 0 => finish(&mut current, &mut comments, &mut parsed),
            other => {
                match other {
                    Token::LParen => depth += 1,
                    Token::RParen => depth = depth.saturating_sub(1),
                    _ => {}
                }
                current.push(token);
            }
        }
    }
    finish(&mut current, &mut comments, &mut parsed);
    parsed.trailing_comments = comments;
    parsed
}

fn comment_of(sql: &str, line_starts: &[usize], token: &TokenWithSpan, text: &str) -> Comment {
    let start = offset_of(sql, line_starts, &token.span.start);
    let end = offset_of(sql, line_starts, &token.span.end);
    Comment {
        text: text.trim().to_string(),
        line: token.span.start.line as usize,
        bytes: start..end,
    }
}

fn line_starts(sql: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(at, _)| at + 1))
        .collect()
}

/// The byte offset of a tokenizer location (1-based line, 1-based column in characters).
fn offset_of(sql: &str, line_starts: &[usize], location: &sqlparser::tokenizer::Location) -> usize {
    let Some(&line_start) = line_starts.get((location.line as usize).saturating_sub(1)) else {
        return sql.len();
    };
    let column = (location.column as usize).saturating_sub(1);
    sql[line_start..]
        .char_indices()
        .nth(column)
        .map_or(sql.len(), |(at, _)| line_start + at)
}

fn position_of(sql: &str, line_starts: &[usize], offset: usize) -> Position {
    let line = line_starts.partition_point(|&start| start <= offset);
    let start = line_starts[line - 1];
    Position {
        line,
        column: sql[start..offset].chars().count() + 1,
    }
}

fn span_of(sql: &str, line_starts: &[usize], start: usize, end: usize) -> Span {
    let last = sql[..end]
        .char_indices()
        .next_back()
        .map_or(start, |(at, _)| at.max(start));
    Span {
        start: position_of(sql, line_starts, start),
        end: position_of(sql, line_starts, last),
        bytes: start..end,
    }
}

/// The upper-case text of an unquoted word.
fn word(token: &TokenWithSpan) -> Option<String> {
    match &token.token {
        Token::Word(word) if word.quote_style.is_none() => Some(word.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn is_word(token: Option<&TokenWithSpan>, expected: &str) -> bool {
    token.and_then(word).is_some_and(|word| word == expected)
}

fn unparsed(message: impl Into<String>, token: Option<&TokenWithSpan>) -> MyKind {
    MyKind::Unparsed {
        message: message.into(),
        position: token.map_or(Position { line: 1, column: 1 }, |token| Position {
            line: token.span.start.line as usize,
            column: token.span.start.column as usize,
        }),
    }
}

/// Splits tokens at top-level commas.
fn split_commas(tokens: &[TokenWithSpan]) -> Vec<&[TokenWithSpan]> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (at, token) in tokens.iter().enumerate() {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                parts.push(&tokens[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts
}

/// The options the pre-pass takes out of a DDL statement.
#[derive(Default)]
struct Options {
    algorithm: Option<Algorithm>,
    lock: Option<LockClause>,
    wait: Option<WaitClause>,
    online: bool,
    mariadb_only: Vec<String>,
}

impl Options {
    /// Reads `ALGORITHM [=] x` or `LOCK [=] x` at the start of `tokens`; returns how many tokens it used, or an
    /// error for an unknown value.
    fn read_option(&mut self, tokens: &[TokenWithSpan]) -> Result<usize, MyKind> {
        let Some(name) = tokens.first().and_then(word) else {
            return Ok(0);
        };
        if name != "ALGORITHM" && name != "LOCK" {
            return Ok(0);
        }
        let mut at = 1;
        if matches!(tokens.get(at).map(|token| &token.token), Some(Token::Eq)) {
            at += 1;
        }
        let Some(value) = tokens.get(at).and_then(word) else {
            return Err(unparsed(
                format!("{name} needs a value"),
                tokens.get(at).or(tokens.first()),
            ));
        };
        if name == "ALGORITHM" {
            self.algorithm = match value.as_str() {
                "DEFAULT" => None,
                other => match Algorithm::from_name(other) {
                    Some(algorithm) => {
                        if algorithm == Algorithm::Nocopy {
                            self.mariadb_only.push("ALGORITHM=NOCOPY".into());
                        }
                        Some(algorithm)
                    }
                    None => {
                        return Err(unparsed(
                            format!("unknown ALGORITHM `{other}`: expected DEFAULT, INSTANT, NOCOPY, INPLACE or COPY"),
                            tokens.get(at),
                        ))
                    }
                },
            };
        } else {
            self.lock = Some(match value.as_str() {
                "DEFAULT" => LockClause::Default,
                "NONE" => LockClause::None,
                "SHARED" => LockClause::Shared,
                "EXCLUSIVE" => LockClause::Exclusive,
                other => {
                    return Err(unparsed(
                        format!(
                            "unknown LOCK `{other}`: expected DEFAULT, NONE, SHARED or EXCLUSIVE"
                        ),
                        tokens.get(at),
                    ))
                }
            });
        }
        Ok(at + 1)
    }

    /// Reads `WAIT n` or `NOWAIT` at the start of `tokens`; returns how many tokens it used.
    fn read_wait(&mut self, tokens: &[TokenWithSpan]) -> Result<usize, MyKind> {
        match tokens.first().and_then(word).as_deref() {
            Some("NOWAIT") => {
                self.wait = Some(WaitClause::NoWait);
                self.mariadb_only.push("NOWAIT".into());
                Ok(1)
            }
            Some("WAIT") => match tokens.get(1).map(|token| &token.token) {
                Some(Token::Number(number, _)) => {
                    let seconds = number.parse().map_err(|_| {
                        unparsed(
                            format!("WAIT needs a number of seconds, not `{number}`"),
                            tokens.get(1),
                        )
                    })?;
                    self.wait = Some(WaitClause::Seconds(seconds));
                    self.mariadb_only.push(format!("WAIT {number}"));
                    Ok(2)
                }
                _ => Err(unparsed(
                    "WAIT needs a number of seconds",
                    tokens.get(1).or(tokens.first()),
                )),
            },
            _ => Ok(0),
        }
    }
}

fn name_of(object: &ast::ObjectName) -> String {
    object
        .0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.clone(),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Parses one statement's tokens (no whitespace, comments or the final semicolon).
fn parse_tokens(tokens: Vec<TokenWithSpan>) -> MyKind {
    let first = tokens.first().and_then(word);
    match first.as_deref() {
        Some("ALTER") => parse_alter(&tokens),
        Some("CREATE") if is_create_index(&tokens) => parse_create_index(&tokens),
        Some("DROP") if is_word(tokens.get(1), "INDEX") => parse_drop_index(&tokens),
        Some("OPTIMIZE") => parse_optimize(&tokens),
        _ => parse_plain(tokens),
    }
}

/// sqlparser on tokens the pre-pass left; the statement must end where the tokens do.
fn sqlparser_statement(tokens: Vec<TokenWithSpan>) -> Result<ast::Statement, MyKind> {
    let last = tokens.last().cloned();
    let dialect = MySqlDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let statement = parser.parse_statement().map_err(|error| {
        unparsed(strip_position(&error.to_string()), last.as_ref()).with_error_position(&error)
    })?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(unparsed(
            format!("unexpected `{}` after the statement", next.token),
            Some(&next),
        ));
    }
    Ok(statement)
}

trait WithErrorPosition {
    fn with_error_position(self, error: &sqlparser::parser::ParserError) -> Self;
}

impl WithErrorPosition for MyKind {
    /// sqlparser's messages end in `at Line: L, Column: C`; that position is more exact than the last token.
    fn with_error_position(self, error: &sqlparser::parser::ParserError) -> Self {
        let text = error.to_string();
        let position = text.rsplit_once(" at Line: ").and_then(|(_, at)| {
            let (line, column) = at.split_once(", Column: ")?;
            Some(Position {
                line: line.trim().parse().ok()?,
                column: column.trim().parse().ok()?,
            })
        });
        match (self, position) {
            (MyKind::Unparsed { message, .. }, Some(position)) => {
                MyKind::Unparsed { message, position }
            }
            (kind, _) => kind,
        }
    }
}

fn strip_position(message: &str) -> String {
    let message = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(message);
    message
        .rsplit_once(" at Line: ")
        .map_or(message, |(text, _)| text)
        .to_string()
}

fn parse_plain(tokens: Vec<TokenWithSpan>) -> MyKind {
    let statement = match sqlparser_statement(tokens) {
        Ok(statement) => statement,
        Err(kind) => return kind,
    };
    match statement {
        ast::Statement::CreateTable(create) => MyKind::CreateTable(create_table(&create)),
        ast::Statement::Drop {
            object_type: ast::ObjectType::Table,
            names,
            ..
        } => MyKind::DropTable {
            tables: names.iter().map(name_of).collect(),
        },
        ast::Statement::Truncate(truncate) => MyKind::Truncate {
            tables: truncate
                .table_names
                .iter()
                .map(|target| name_of(&target.name))
                .collect(),
        },
        ast::Statement::RenameTable(renames) => match renames.first() {
            Some(rename) => MyKind::Alter(AlterTable {
                table: name_of(&rename.old_name),
                changes: renames
                    .iter()
                    .map(|rename| Change::RenameTable {
                        to: name_of(&rename.new_name),
                    })
                    .collect(),
                algorithm: None,
                lock: None,
                wait: None,
                online: false,
                mariadb_only: Vec::new(),
                form: AlterForm::RenameTable,
            }),
            None => MyKind::Other,
        },
        ast::Statement::Update(update) => {
            let joined = !update.table.joins.is_empty() || update.from.is_some();
            MyKind::Update(DataChange {
                table: relation_name(&update.table.relation),
                joined,
                selection: update.selection.map(Box::new),
                limited: update.limit.is_some(),
                set: Some(
                    update
                        .assignments
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            })
        }
        ast::Statement::Delete(delete) => {
            let from = match &delete.from {
                ast::FromTable::WithFromKeyword(from) | ast::FromTable::WithoutKeyword(from) => {
                    from
                }
            };
            let joined = delete.tables.len() > 1
                || delete.using.is_some()
                || from.len() > 1
                || from.iter().any(|table| !table.joins.is_empty());
            let table = delete
                .tables
                .first()
                .map(name_of)
                .or_else(|| from.first().map(|table| relation_name(&table.relation)))
                .unwrap_or_default();
            MyKind::Delete(DataChange {
                table,
                joined,
                selection: delete.selection.map(Box::new),
                limited: delete.limit.is_some(),
                set: None,
            })
        }
        ast::Statement::Insert(insert) => {
            let table = match &insert.table {
                ast::TableObject::TableName(name) => name_of(name),
                other => other.to_string(),
            };
            let values = insert
                .source
                .as_ref()
                .is_none_or(|query| matches!(*query.body, ast::SetExpr::Values(_)));
            if values {
                MyKind::InsertValues { table }
            } else {
                MyKind::InsertSelect { table }
            }
        }
        ast::Statement::Set(set) => MyKind::Set(assignments(&set)),
        ast::Statement::StartTransaction { .. } => MyKind::Begin,
        ast::Statement::Commit { .. } => MyKind::Commit,
        ast::Statement::Rollback { .. } => MyKind::Rollback,
        _ => MyKind::Other,
    }
}

fn relation_name(relation: &ast::TableFactor) -> String {
    match relation {
        ast::TableFactor::Table { name, .. } => name_of(name),
        other => other.to_string(),
    }
}

fn assignments(set: &ast::Set) -> Vec<Assignment> {
    let one = |scope: Option<&ast::ContextModifier>, name: &ast::ObjectName, value: String| {
        let mut name = name_of(name).to_ascii_lowercase();
        let mut global = matches!(scope, Some(ast::ContextModifier::Global));
        for (prefix, is_global) in [
            ("@@global.", true),
            ("@@session.", false),
            ("@@local.", false),
            ("@@", false),
        ] {
            if let Some(rest) = name.strip_prefix(prefix) {
                global |= is_global;
                name = rest.to_string();
                break;
            }
        }
        Assignment {
            name,
            global,
            value,
        }
    };
    match set {
        ast::Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => vec![one(
            scope.as_ref(),
            variable,
            values
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        )],
        ast::Set::MultipleAssignments { assignments } => assignments
            .iter()
            .map(|assignment| {
                one(
                    assignment.scope.as_ref(),
                    &assignment.name,
                    assignment.value.to_string(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn column_def(column: &ast::ColumnDef) -> ColumnDef {
    let mut def = ColumnDef {
        name: column.name.value.clone(),
        data_type: column.data_type.to_string().to_ascii_uppercase(),
        varchar_length: match &column.data_type {
            ast::DataType::Varchar(Some(ast::CharacterLength::IntegerLength {
                length, ..
            }))
            | ast::DataType::CharVarying(Some(ast::CharacterLength::IntegerLength {
                length,
                ..
            })) => Some(*length),
            _ => None,
        },
        nullable: true,
        has_default: false,
        auto_increment: false,
        generated: None,
        primary_key: false,
    };
    read_column_options(&mut def, column.options.iter().map(|option| &option.option));
    def
}

fn read_column_options<'o>(
    def: &mut ColumnDef,
    options: impl Iterator<Item = &'o ast::ColumnOption>,
) {
    for option in options {
        match option {
            ast::ColumnOption::NotNull => def.nullable = false,
            ast::ColumnOption::Null => def.nullable = true,
            ast::ColumnOption::Default(_) => def.has_default = true,
            ast::ColumnOption::DialectSpecific(tokens)
                if tokens.iter().any(|token| {
                    matches!(token, sqlparser::tokenizer::Token::Word(word) if word.keyword == sqlparser::keywords::Keyword::AUTO_INCREMENT)
                }) =>
            {
                def.auto_increment = true
            }
            ast::ColumnOption::PrimaryKey(_) => {
                def.primary_key = true;
                def.nullable = false;
            }
            ast::ColumnOption::Generated {
                generated_as,
                generation_expr: Some(_),
                ..
            } => {
                def.generated = Some(match generated_as {
                    ast::GeneratedAs::ExpStored => Generated::Stored,
                    _ => Generated::Virtual,
                });
            }
            _ => {}
        }
    }
}

fn create_table(create: &ast::CreateTable) -> CreateTable {
    let columns: Vec<ColumnDef> = create.columns.iter().map(column_def).collect();
    let mut primary_key: Vec<String> = columns
        .iter()
        .filter(|column| column.primary_key)
        .map(|column| column.name.clone())
        .collect();
    for constraint in &create.constraints {
        if let ast::TableConstraint::PrimaryKey(key) = constraint {
            primary_key = key
                .columns
                .iter()
                .map(|column| column.column.expr.to_string())
                .collect();
        }
    }
    let mut columns = columns;
    for column in &mut columns {
        if primary_key.contains(&column.name) {
            column.nullable = false;
        }
    }
    CreateTable {
        table: name_of(&create.name),
        columns,
        primary_key,
    }
}

/// `ALTER [ONLINE|OFFLINE] [IGNORE] TABLE [IF EXISTS] name [WAIT n|NOWAIT] clause, clause…`
fn parse_alter(tokens: &[TokenWithSpan]) -> MyKind {
    let mut options = Options::default();
    let mut at = 1;
    loop {
        match tokens.get(at).and_then(word).as_deref() {
            Some("ONLINE") => {
                options.online = true;
                options.mariadb_only.push("ALTER ONLINE".into());
            }
            Some("OFFLINE") | Some("IGNORE") => {}
            _ => break,
        }
        at += 1;
    }
    if !is_word(tokens.get(at), "TABLE") {
        // ALTER DATABASE / VIEW / USER / EVENT …: not a table's online DDL.
        return match parse_plain(tokens.to_vec()) {
            MyKind::Unparsed { message, position } => MyKind::Unparsed { message, position },
            _ => MyKind::Other,
        };
    }
    at += 1;
    let name_start = at;
    if is_word(tokens.get(at), "IF") && is_word(tokens.get(at + 1), "EXISTS") {
        at += 2;
    }
    let table_start = at;
    // name or schema.name
    at += 1;
    while matches!(
        tokens.get(at).map(|token| &token.token),
        Some(Token::Period)
    ) {
        at += 2;
    }
    if tokens.len() < at {
        return unparsed("ALTER TABLE needs a table name", tokens.last());
    }
    let table = match table_name(&tokens[table_start..at]) {
        Ok(table) => table,
        Err(kind) => return kind,
    };
    let head = &tokens[..at];
    match options.read_wait(&tokens[at..]) {
        Ok(used) => at += used,
        Err(kind) => return kind,
    }
    let rest = &tokens[at..];
    let mut changes = Vec::new();
    let mut kept: Vec<&[TokenWithSpan]> = Vec::new();
    let (clauses, partition_tail) = partition_tail(rest);
    if let Some(tail) = partition_tail {
        changes.push(partition_change(tail));
    }
    for clause in split_commas(clauses) {
        if clause.is_empty() {
            if clauses.is_empty() {
                continue;
            }
            return unparsed(
                "an empty ALTER TABLE clause (two commas in a row?)",
                tokens.last(),
            );
        }
        match classify_clause(clause, &mut options, &mut changes) {
            Ok(true) => {}
            Ok(false) => kept.push(clause),
            Err(kind) => return kind,
        }
    }
    let _ = name_start;
    if !kept.is_empty() {
        let mut rebuilt: Vec<TokenWithSpan> = head.to_vec();
        for (n, clause) in kept.iter().enumerate() {
            if n > 0 {
                rebuilt.push(TokenWithSpan::wrap(Token::Comma));
            }
            rebuilt.extend(expand_add_column_list(clause));
        }
        match sqlparser_statement(rebuilt) {
            Ok(ast::Statement::AlterTable(alter)) => {
                for operation in &alter.operations {
                    match alter_change(operation) {
                        Ok(Some(change)) => changes.push(change),
                        Ok(None) => {}
                        Err(message) => return unparsed(message, tokens.first()),
                    }
                }
            }
            Ok(_) => return unparsed("not an ALTER TABLE", tokens.first()),
            Err(kind) => return kind,
        }
    }
    if changes.is_empty() && options.algorithm.is_none() && options.lock.is_none() {
        return unparsed("ALTER TABLE with nothing to do", tokens.last());
    }
    MyKind::Alter(AlterTable {
        table,
        changes,
        algorithm: options.algorithm,
        lock: options.lock,
        wait: options.wait,
        online: options.online,
        mariadb_only: options.mariadb_only,
        form: AlterForm::AlterTable {
            partitioned: partition_tail.is_some(),
        },
    })
}

fn table_name(tokens: &[TokenWithSpan]) -> Result<String, MyKind> {
    let dialect = MySqlDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens.to_vec());
    parser
        .parse_object_name(false)
        .map(|name| name_of(&name))
        .map_err(|error| unparsed(strip_position(&error.to_string()), tokens.first()))
}

/// `PARTITION BY …` or `REMOVE PARTITIONING` at the top level ends the ALTER's clause list.
fn partition_tail(tokens: &[TokenWithSpan]) -> (&[TokenWithSpan], Option<&[TokenWithSpan]>) {
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate() {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ if depth == 0 => {
                let starts = (is_word(Some(token), "PARTITION")
                    && is_word(tokens.get(at + 1), "BY"))
                    || (is_word(Some(token), "REMOVE")
                        && is_word(tokens.get(at + 1), "PARTITIONING"));
                if starts {
                    let mut clauses = &tokens[..at];
                    if let Some((last, before)) = clauses.split_last() {
                        if last.token == Token::Comma {
                            clauses = before;
                        }
                    }
                    return (clauses, Some(&tokens[at..]));
                }
            }
            _ => {}
        }
    }
    (tokens, None)
}

fn partition_change(tokens: &[TokenWithSpan]) -> Change {
    let first = tokens.first().and_then(word);
    let second = tokens.get(1).and_then(word);
    match (first.as_deref(), second.as_deref()) {
        (Some("ADD"), Some("PARTITION")) => Change::AddPartition,
        (Some("DROP"), Some("PARTITION")) => Change::DropPartition,
        (Some("TRUNCATE"), Some("PARTITION")) => Change::TruncatePartition,
        _ => Change::Repartition,
    }
}

const TABLE_OPTIONS: &[&str] = &[
    "ENGINE",
    "ROW_FORMAT",
    "KEY_BLOCK_SIZE",
    "AUTO_INCREMENT",
    "CHARACTER",
    "CHARSET",
    "COLLATE",
    "COMMENT",
    "STATS_PERSISTENT",
    "STATS_AUTO_RECALC",
    "STATS_SAMPLE_PAGES",
    "PACK_KEYS",
    "CHECKSUM",
    "DELAY_KEY_WRITE",
    "ENCRYPTION",
    "ENCRYPTED",
    "ENCRYPTION_KEY_ID",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "AVG_ROW_LENGTH",
    "MAX_ROWS",
    "MIN_ROWS",
    "TRANSACTIONAL",
];

/// Handles a clause sqlparser does not parse; `Ok(false)` leaves it to sqlparser.
fn classify_clause(
    clause: &[TokenWithSpan],
    options: &mut Options,
    changes: &mut Vec<Change>,
) -> Result<bool, MyKind> {
    let first = clause.first().and_then(word);
    let second = clause.get(1).and_then(word);
    match (first.as_deref(), second.as_deref()) {
        (Some("ALGORITHM") | Some("LOCK"), _) => {
            let used = options.read_option(clause)?;
            if used != clause.len() {
                return Err(unparsed(
                    "unexpected text after the option",
                    clause.get(used),
                ));
            }
            Ok(true)
        }
        (Some("FORCE"), None) => {
            changes.push(Change::Rebuild);
            Ok(true)
        }
        (Some("CONVERT"), Some("TO")) => {
            changes.push(Change::ConvertCharset);
            Ok(true)
        }
        (Some("RENAME"), Some("INDEX") | Some("KEY")) => {
            if clause.len() != 5 || !is_word(clause.get(3), "TO") {
                return Err(unparsed("expected RENAME INDEX old TO new", clause.first()));
            }
            changes.push(Change::RenameIndex);
            Ok(true)
        }
        (Some("DROP"), Some("CHECK")) => {
            changes.push(Change::DropConstraint);
            Ok(true)
        }
        (
            Some(
                "ADD" | "DROP" | "TRUNCATE" | "COALESCE" | "REORGANIZE" | "EXCHANGE" | "ANALYZE"
                | "CHECK" | "OPTIMIZE" | "REBUILD" | "REPAIR" | "DISCARD" | "IMPORT",
            ),
            Some("PARTITION"),
        ) => {
            changes.push(partition_change(clause));
            Ok(true)
        }
        (Some("DEFAULT"), Some("CHARACTER" | "CHARSET" | "COLLATE")) => {
            table_options(&clause[1..], changes)?;
            Ok(true)
        }
        (Some(name), _) if TABLE_OPTIONS.contains(&name) => {
            table_options(clause, changes)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// `NAME [=] value NAME [=] value …` (table options may follow each other without commas).
fn table_options(tokens: &[TokenWithSpan], changes: &mut Vec<Change>) -> Result<(), MyKind> {
    let mut at = 0;
    while at < tokens.len() {
        if is_word(tokens.get(at), "DEFAULT") {
            at += 1;
        }
        let Some(name) = tokens.get(at).and_then(word) else {
            return Err(unparsed("expected a table option", tokens.get(at)));
        };
        if !TABLE_OPTIONS.contains(&name.as_str()) {
            return Err(unparsed(
                format!("unknown table option `{name}`"),
                tokens.get(at),
            ));
        }
        at += 1;
        if name == "CHARACTER" {
            if !is_word(tokens.get(at), "SET") {
                return Err(unparsed("expected CHARACTER SET", tokens.get(at)));
            }
            at += 1;
        }
        if matches!(tokens.get(at).map(|token| &token.token), Some(Token::Eq)) {
            at += 1;
        }
        let Some(value) = tokens.get(at) else {
            return Err(unparsed(format!("{name} needs a value"), tokens.last()));
        };
        at += 1;
        changes.push(match name.as_str() {
            "ROW_FORMAT" | "KEY_BLOCK_SIZE" => Change::RowFormat,
            // Naming the engine the table already has rebuilds it; another engine copies it (no fact is kept
            // for that: tidegate assumes InnoDB throughout).
            "ENGINE" => Change::Rebuild,
            "AUTO_INCREMENT" => Change::AutoIncrement,
            "CHARACTER" | "CHARSET" | "COLLATE" => Change::DefaultCharset,
            "COMMENT" => Change::Comment,
            _ => Change::OtherTableOption {
                name: format!("{name}={}", value.token),
            },
        });
    }
    Ok(())
}

/// `ADD [COLUMN] (a INT, b INT)` as `ADD COLUMN a INT, ADD COLUMN b INT`, which sqlparser reads.
fn expand_add_column_list(clause: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut at = 1;
    if !is_word(clause.first(), "ADD") {
        return clause.to_vec();
    }
    if is_word(clause.get(at), "COLUMN") {
        at += 1;
    }
    let (Some(open), Some(close)) = (clause.get(at), clause.last()) else {
        return clause.to_vec();
    };
    if open.token != Token::LParen || close.token != Token::RParen || at + 1 >= clause.len() - 1 {
        return clause.to_vec();
    }
    let inner = &clause[at + 1..clause.len() - 1];
    let mut out = Vec::new();
    for (n, column) in split_commas(inner).into_iter().enumerate() {
        if n > 0 {
            out.push(TokenWithSpan::wrap(Token::Comma));
        }
        out.push(clause[0].clone());
        out.push(TokenWithSpan::wrap(Token::make_keyword("COLUMN")));
        out.extend_from_slice(column);
    }
    out
}

fn alter_change(operation: &ast::AlterTableOperation) -> Result<Option<Change>, String> {
    use ast::AlterTableOperation as O;
    Ok(Some(match operation {
        O::AddColumn {
            column_def: column,
            column_position,
            ..
        } => Change::AddColumn {
            column: column_def(column),
            positioned: column_position.is_some(),
        },
        O::ModifyColumn {
            col_name,
            data_type,
            options,
            column_position,
        } => {
            let mut column = column_def(&ast::ColumnDef {
                name: col_name.clone(),
                data_type: data_type.clone(),
                options: Vec::new(),
            });
            read_column_options(&mut column, options.iter());
            Change::ModifyColumn {
                old: col_name.value.clone(),
                column,
                positioned: column_position.is_some(),
            }
        }
        O::ChangeColumn {
            old_name,
            new_name,
            data_type,
            options,
            column_position,
        } => {
            let mut column = column_def(&ast::ColumnDef {
                name: new_name.clone(),
                data_type: data_type.clone(),
                options: Vec::new(),
            });
            read_column_options(&mut column, options.iter());
            Change::ModifyColumn {
                old: old_name.value.clone(),
                column,
                positioned: column_position.is_some(),
            }
        }
        O::DropColumn { column_names, .. } => match column_names.as_slice() {
            [one] => Change::DropColumn {
                column: one.value.clone(),
            },
            _ => return Err("DROP COLUMN names one column per clause in MySQL".into()),
        },
        O::RenameColumn {
            old_column_name,
            new_column_name,
        } => Change::RenameColumn {
            old: old_column_name.value.clone(),
            new: new_column_name.value.clone(),
        },
        O::AlterColumn { column_name, op } => match op {
            ast::AlterColumnOperation::SetDefault { .. } => Change::SetDefault {
                column: column_name.value.clone(),
            },
            ast::AlterColumnOperation::DropDefault => Change::DropDefault {
                column: column_name.value.clone(),
            },
            _ => Change::OtherColumnChange {
                column: column_name.value.clone(),
            },
        },
        O::AddConstraint { constraint, .. } => match constraint {
            ast::TableConstraint::Index(_) => Change::AddIndex {
                kind: IndexKind::Plain,
            },
            ast::TableConstraint::Unique(_) => Change::AddIndex {
                kind: IndexKind::Unique,
            },
            ast::TableConstraint::FulltextOrSpatial(index) => Change::AddIndex {
                kind: if index.fulltext {
                    IndexKind::Fulltext
                } else {
                    IndexKind::Spatial
                },
            },
            ast::TableConstraint::PrimaryKey(key) => Change::AddPrimaryKey {
                columns: key
                    .columns
                    .iter()
                    .map(|column| column.column.expr.to_string())
                    .collect(),
            },
            ast::TableConstraint::ForeignKey(_) => Change::AddForeignKey,
            ast::TableConstraint::Check(_) => Change::AddCheck,
            other => return Err(format!("unsupported constraint in ALTER TABLE: {other}")),
        },
        O::DropIndex { .. } => Change::DropIndex,
        O::DropPrimaryKey { .. } => Change::DropPrimaryKey,
        O::DropForeignKey { .. } => Change::DropForeignKey,
        O::DropConstraint { .. } => Change::DropConstraint,
        O::RenameTable { table_name } => Change::RenameTable {
            to: match table_name {
                ast::RenameTableNameKind::As(name) | ast::RenameTableNameKind::To(name) => {
                    name_of(name)
                }
            },
        },
        O::AutoIncrement { .. } => Change::AutoIncrement,
        O::Algorithm { .. } | O::Lock { .. } => return Ok(None),
        other => return Err(format!("`{other}` is not MySQL ALTER TABLE syntax")),
    }))
}

/// `CREATE [OR REPLACE] [ONLINE|OFFLINE] [UNIQUE|FULLTEXT|SPATIAL] INDEX`.
fn is_create_index(tokens: &[TokenWithSpan]) -> bool {
    tokens[1..]
        .iter()
        .map_while(word)
        .take_while(|word| {
            matches!(
                word.as_str(),
                "OR" | "REPLACE"
                    | "ONLINE"
                    | "OFFLINE"
                    | "UNIQUE"
                    | "FULLTEXT"
                    | "SPATIAL"
                    | "INDEX"
            )
        })
        .any(|word| word == "INDEX")
}

/// Takes `ALGORITHM=`/`LOCK=`/`WAIT`/`NOWAIT` out of a CREATE/DROP INDEX wherever they stand at the top level.
fn strip_index_options(
    tokens: &[TokenWithSpan],
    options: &mut Options,
) -> Result<Vec<TokenWithSpan>, MyKind> {
    let mut kept = Vec::new();
    let mut depth = 0usize;
    let mut at = 0;
    while at < tokens.len() {
        match tokens[at].token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && at > 0 {
            let used = options.read_option(&tokens[at..])?;
            let used = if used == 0 {
                options.read_wait(&tokens[at..])?
            } else {
                used
            };
            if used > 0 {
                at += used;
                continue;
            }
        }
        kept.push(tokens[at].clone());
        at += 1;
    }
    Ok(kept)
}

fn parse_create_index(tokens: &[TokenWithSpan]) -> MyKind {
    let mut options = Options::default();
    let mut kind = IndexKind::Plain;
    let mut kept = Vec::new();
    let mut in_head = true;
    for (at, token) in tokens.iter().enumerate() {
        if in_head && at > 0 {
            match word(token).as_deref() {
                Some("ONLINE") => {
                    options.online = true;
                    options.mariadb_only.push("CREATE ONLINE INDEX".into());
                    continue;
                }
                Some("OFFLINE") => continue,
                Some("FULLTEXT") => {
                    kind = IndexKind::Fulltext;
                    continue;
                }
                Some("SPATIAL") => {
                    kind = IndexKind::Spatial;
                    continue;
                }
                Some("UNIQUE") => kind = IndexKind::Unique,
                Some("INDEX") => in_head = false,
                _ => {}
            }
        }
        kept.push(token.clone());
    }
    let kept = match strip_index_options(&kept, &mut options) {
        Ok(kept) => kept,
        Err(kind) => return kind,
    };
    match sqlparser_statement(kept) {
        Ok(ast::Statement::CreateIndex(index)) => MyKind::Alter(AlterTable {
            table: name_of(&index.table_name),
            changes: vec![Change::AddIndex { kind }],
            algorithm: options.algorithm,
            lock: options.lock,
            wait: options.wait,
            online: options.online,
            mariadb_only: options.mariadb_only,
            form: AlterForm::CreateIndex,
        }),
        Ok(_) => unparsed("not a CREATE INDEX", tokens.first()),
        Err(kind) => kind,
    }
}

fn parse_drop_index(tokens: &[TokenWithSpan]) -> MyKind {
    let mut options = Options::default();
    let kept = match strip_index_options(tokens, &mut options) {
        Ok(kept) => kept,
        Err(kind) => return kind,
    };
    match sqlparser_statement(kept) {
        Ok(ast::Statement::Drop {
            table: Some(table), ..
        }) => MyKind::Alter(AlterTable {
            table: name_of(&table),
            changes: vec![Change::DropIndex],
            algorithm: options.algorithm,
            lock: options.lock,
            wait: options.wait,
            online: options.online,
            mariadb_only: options.mariadb_only,
            form: AlterForm::DropIndex,
        }),
        Ok(_) => unparsed("MySQL's DROP INDEX needs `ON table`", tokens.last()),
        Err(kind) => kind,
    }
}

/// `OPTIMIZE [NO_WRITE_TO_BINLOG|LOCAL] TABLE t`: InnoDB maps it to a rebuild (`ALTER TABLE … FORCE`).
fn parse_optimize(tokens: &[TokenWithSpan]) -> MyKind {
    let mut at = 1;
    while matches!(
        tokens.get(at).and_then(word).as_deref(),
        Some("NO_WRITE_TO_BINLOG" | "LOCAL")
    ) {
        at += 1;
    }
    if !is_word(tokens.get(at), "TABLE") || tokens.len() <= at + 1 {
        return unparsed("expected OPTIMIZE TABLE name", tokens.get(at));
    }
    match table_name(&tokens[at + 1..]) {
        Ok(table) => MyKind::Alter(AlterTable {
            table,
            changes: vec![Change::Rebuild],
            algorithm: None,
            lock: None,
            wait: None,
            online: false,
            mariadb_only: Vec::new(),
            form: AlterForm::Optimize,
        }),
        Err(kind) => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(sql: &str) -> MyKind {
        let parsed = parse_mysql(sql);
        assert_eq!(parsed.statements.len(), 1, "{sql}");
        parsed.statements.into_iter().next().unwrap().kind
    }

    fn alter(sql: &str) -> AlterTable {
        match kind(sql) {
            MyKind::Alter(alter) => alter,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn the_pre_pass_takes_out_what_sqlparser_does_not_read() {
        let a = alter("ALTER TABLE orders ADD COLUMN note TEXT, ALGORITHM=NOCOPY, LOCK=NONE");
        assert_eq!(a.algorithm, Some(Algorithm::Nocopy));
        assert_eq!(a.lock, Some(LockClause::None));
        assert_eq!(a.mariadb_only, vec!["ALGORITHM=NOCOPY".to_string()]);
        assert!(matches!(&a.changes[..], [Change::AddColumn { .. }]));

        let a = alter("ALTER ONLINE TABLE shop.orders WAIT 2 FORCE");
        assert!(a.online);
        assert_eq!(a.table, "shop.orders");
        assert_eq!(a.wait, Some(WaitClause::Seconds(2.0)));
        assert!(matches!(&a.changes[..], [Change::Rebuild]));

        let a = alter("ALTER TABLE t NOWAIT ROW_FORMAT=DYNAMIC KEY_BLOCK_SIZE=8, RENAME INDEX a TO b, DROP CHECK ck");
        assert_eq!(a.wait, Some(WaitClause::NoWait));
        assert!(matches!(
            &a.changes[..],
            [
                Change::RowFormat,
                Change::RowFormat,
                Change::RenameIndex,
                Change::DropConstraint
            ]
        ));

        let a = alter(
            "ALTER TABLE t ADD COLUMN (a INT, b INT NOT NULL), CONVERT TO CHARACTER SET utf8mb4",
        );
        assert_eq!(a.changes.len(), 3, "{:?}", a.changes);

        let a = alter("ALTER TABLE t ADD PARTITION (PARTITION p3 VALUES LESS THAN (30))");
        assert!(matches!(&a.changes[..], [Change::AddPartition]));
        let a = alter("ALTER TABLE t ENGINE=InnoDB PARTITION BY HASH (id) PARTITIONS 4");
        assert!(matches!(
            &a.changes[..],
            [Change::Repartition, Change::Rebuild]
        ));

        let a = alter("CREATE UNIQUE INDEX u ON t (a) ALGORITHM=INPLACE LOCK=NONE");
        assert!(matches!(
            &a.changes[..],
            [Change::AddIndex {
                kind: IndexKind::Unique
            }]
        ));
        assert_eq!(a.algorithm, Some(Algorithm::Inplace));
        let a = alter("CREATE FULLTEXT INDEX f ON t (body)");
        assert!(matches!(
            &a.changes[..],
            [Change::AddIndex {
                kind: IndexKind::Fulltext
            }]
        ));
        let a = alter("DROP INDEX i ON t ALGORITHM=INSTANT");
        assert!(matches!(&a.changes[..], [Change::DropIndex]));
    }

    #[test]
    fn statements_comments_and_positions() {
        let parsed = parse_mysql(
            "-- tidegate:ignore unbatched-update because\nUPDATE t SET a = 1 LIMIT 10;\n# hash comment\nSET SESSION lock_wait_timeout = 5;\n/* end */",
        );
        assert_eq!(parsed.statements.len(), 2);
        let update = &parsed.statements[0];
        assert_eq!(
            update.leading_comments[0].text,
            "tidegate:ignore unbatched-update because"
        );
        assert_eq!(update.span.start, Position { line: 2, column: 1 });
        assert_eq!(update.text, "UPDATE t SET a = 1 LIMIT 10");
        assert!(
            matches!(&update.kind, MyKind::Update(change) if change.limited && change.table == "t")
        );
        assert_eq!(
            parsed.statements[1].leading_comments[0].text,
            "hash comment"
        );
        match &parsed.statements[1].kind {
            MyKind::Set(assignments) => assert_eq!(
                assignments,
                &vec![Assignment {
                    name: "lock_wait_timeout".into(),
                    global: false,
                    value: "5".into()
                }]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(parsed.trailing_comments[0].text, "end");
    }

    #[test]
    fn what_does_not_parse_is_kept_with_its_reason() {
        let parsed = parse_mysql("ALTER TABLE t ADD COLUMN;\nALTER TABLE t ALGORITHM=FAST, ADD INDEX (a);\nSELEC 1;\nSELECT 'unterminated");
        assert_eq!(
            parsed.statements.len(),
            1,
            "an untokenizable file is one unparsed statement"
        );
        let parsed = parse_mysql(
            "ALTER TABLE t ADD COLUMN;\nALTER TABLE t ALGORITHM=FAST, ADD INDEX (a);\nSELEC 1;",
        );
        assert_eq!(parsed.statements.len(), 3);
        for statement in &parsed.statements {
            assert!(
                matches!(statement.kind, MyKind::Unparsed { .. }),
                "{statement:?}"
            );
        }
        match &parsed.statements[1].kind {
            MyKind::Unparsed { message, position } => {
                assert!(message.contains("unknown ALGORITHM `FAST`"), "{message}");
                assert_eq!(position.line, 2);
            }
            _ => unreachable!(),
        }
    }
}
