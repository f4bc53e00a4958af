//! Positions in a source file: byte offsets turned into 1-based line and column numbers, and the comments
//! that sit between statements (where directives such as `-- tidegate:ignore` live).
//!
//! The only "lexing" done here is skipping whitespace and comments between statements; statements themselves are
//! always split and parsed by `pg_query`.

use serde::Serialize;

/// A 1-based line and column. Columns count Unicode scalar values, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Where a statement sits in its file: start and end positions (the end is inclusive: the position of the
/// statement's last character) and the byte range of its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    pub start: Position,
    pub end: Position,
    pub bytes: std::ops::Range<usize>,
}

/// Maps byte offsets of one source text to positions.
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(source: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(offset, _)| offset + 1));
        Self { line_starts }
    }

    /// The position of the character starting at `offset` (clamped to the text).
    pub fn position(&self, source: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(source, offset.min(source.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line.saturating_sub(1)];
        let column = source[line_start..offset].chars().count() + 1;
        Position {
            line: line.max(1),
            column,
        }
    }

    /// The span of the bytes `range` (non-empty ranges end on their last character).
    pub fn span(&self, source: &str, range: std::ops::Range<usize>) -> Span {
        let start = self.position(source, range.start);
        let last_char = source[..range.end.min(source.len())]
            .char_indices()
            .next_back()
            .map(|(offset, _)| offset)
            .filter(|&offset| offset >= range.start)
            .unwrap_or(range.start);
        let end = self.position(source, last_char);
        Span {
            start,
            end,
            bytes: range,
        }
    }

    /// The text of 1-based line `line`, without its line terminator.
    pub fn line_text<'a>(&self, source: &'a str, line: usize) -> &'a str {
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self.line_starts.get(line).copied().unwrap_or(source.len());
        source[start..end].trim_end_matches(['\n', '\r'])
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }
}

pub(crate) fn floor_char_boundary(source: &str, mut offset: usize) -> usize {
    while offset > 0 && !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// A comment found between statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    /// The comment's text without `--` or `/* */`, trimmed.
    pub text: String,
    /// 1-based line of the comment's start.
    pub line: usize,
    pub bytes: std::ops::Range<usize>,
}

/// Skips whitespace and comments starting at `offset`; returns the offset of the first other character and
/// the comments passed over. Block comments nest, as in PostgreSQL.
pub fn skip_trivia(source: &str, mut offset: usize) -> (usize, Vec<std::ops::Range<usize>>) {
    let bytes = source.as_bytes();
    let mut comments = Vec::new();
    loop {
        while offset < bytes.len() && bytes[offset].is_ascii_whitespace() {
            offset += 1;
        }
        if bytes[offset..].starts_with(b"--") {
            let end = source[offset..]
                .find('\n')
                .map_or(source.len(), |newline| offset + newline);
            comments.push(offset..end);
            offset = end;
        } else if bytes[offset..].starts_with(b"/*") {
            let start = offset;
            let mut depth = 0usize;
            while offset < bytes.len() {
                if bytes[offset..].starts_with(b"/*") {
                    depth += 1;
                    offset += 2;
                } else if bytes[offset..].starts_with(b"*/") {
                    depth -= 1;
                    offset += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    offset += 1;
                }
            }
            comments.push(start..offset.min(bytes.len()));
        } else {
            return (offset.min(bytes.len()), comments);
        }
    }
}

/// The text of a comment without its delimiters.
pub fn comment_text(source: &str, range: std::ops::Range<usize>) -> String {
    let raw = &source[range];
    let inner = if let Some(rest) = raw.strip_prefix("--") {
        rest
    } else {
        raw.strip_prefix("/*")
            .map(|rest| rest.strip_suffix("*/").unwrap_or(rest))
            .unwrap_or(raw)
    };
    inner.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let source = "ab\nçd;\n";
        let index = LineIndex::new(source);
        assert_eq!(index.position(source, 0), Position { line: 1, column: 1 });
        assert_eq!(index.position(source, 3), Position { line: 2, column: 1 });
        // 'd' comes after the two-byte 'ç'
        assert_eq!(index.position(source, 5), Position { line: 2, column: 2 });
        assert_eq!(index.line_text(source, 2), "çd;");
    }

    #[test]
    fn trivia_skips_nested_block_comments_and_line_comments() {
        let source = "  -- one\n/* a /* b */ c */\nSELECT 1";
        let (offset, comments) = skip_trivia(source, 0);
        assert_eq!(&source[offset..], "SELECT 1");
        assert_eq!(comments.len(), 2);
        assert_eq!(comment_text(source, comments[0].clone()), "one");
    }

    #[test]
    fn unterminated_block_comment_does_not_panic() {
        let source = "/* /* never closed";
        let (offset, comments) = skip_trivia(source, 0);
        assert_eq!(offset, source.len());
        assert_eq!(comments.len(), 1);
    }
}
