//! An open document's text and the two position systems that meet in it: LSP's (0-based lines ended by `\n`,
//! `\r\n` or `\r`; columns in UTF-16 code units) and tidegate's findings (1-based lines ended by `\n`; 1-based
//! columns counted in characters, the end column inclusive).
//!
//! Every conversion clamps instead of failing: a client may send a position past the end of a line or of the
//! document, or inside a surrogate pair, and the LSP specification says such positions fall back to the
//! nearest valid one. Nothing here panics on any position or edit.

use lsp_types::{Position, Range, TextDocumentContentChangeEvent};
use tidegate_lint::Finding;

/// The text of one open document, kept in step with the editor through `didChange` edits.
#[derive(Debug, Clone)]
pub struct Document {
    text: String,
    version: i32,
    /// Byte offsets where each LSP line starts (after `\n`, `\r\n` or a lone `\r`).
    line_starts: Vec<usize>,
}

impl Document {
    pub fn new(text: String, version: i32) -> Self {
        let line_starts = lsp_line_starts(&text);
        Self {
            text,
            version,
            line_starts,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    /// Applies one `didChange` content change: a range edit, or the whole text when the change has no range.
    pub fn apply(&mut self, change: &TextDocumentContentChangeEvent) {
        match change.range {
            None => self.text.clone_from(&change.text),
            Some(range) => {
                let start = self.offset(range.start);
                let end = self.offset(range.end);
                // A reversed range is a client bug; editing the span between the two ends is the kind reading.
                let (start, end) = if start <= end {
                    (start, end)
                } else {
                    (end, start)
                };
                self.text.replace_range(start..end, &change.text);
            }
        }
        self.line_starts = lsp_line_starts(&self.text);
    }

    pub fn set_version(&mut self, version: i32) {
        self.version = version;
    }

    /// The byte offset of an LSP position. A character past the end of its line means the end of the line, a
    /// line past the last means the end of the text, and a position inside a surrogate pair means the start
    /// of that character.
    pub fn offset(&self, position: Position) -> usize {
        let Some(&line_start) = self.line_starts.get(position.line as usize) else {
            return self.text.len();
        };
        let line_end = self.line_content_end(position.line as usize);
        let mut units = 0u32;
        for (index, character) in self.text[line_start..line_end].char_indices() {
            let width = character.len_utf16() as u32;
            if units + width > position.character {
                return line_start + index;
            }
            units += width;
        }
        line_end
    }

    /// The LSP position of a byte offset (clamped to the text, and down to a character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        // An offset between a `\r` and its `\n` is the end of the line, not a column past it.
        let offset = offset.min(self.line_content_end(line));
        let character = self.text[self.line_starts[line]..offset]
            .chars()
            .map(|character| character.len_utf16() as u32)
            .sum();
        Position {
            line: line as u32,
            character,
        }
    }

    /// Where line `line`'s text ends, before its terminator.
    fn line_content_end(&self, line: usize) -> usize {
        let end = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        let content = &self.text[self.line_starts[line]..end];
        let trimmed = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .or_else(|| content.strip_suffix('\r'))
            .unwrap_or(content);
        self.line_starts[line] + trimmed.len()
    }
}

/// Converts findings' positions of one text to LSP ranges. Findings count lines by `\n` only (as PostgreSQL's
/// scanner does), so the conversion goes through byte offsets rather than mapping line numbers across.
pub struct FindingPositions<'a> {
    document: &'a Document,
    /// Byte offsets where each `\n`-terminated line starts.
    newline_starts: Vec<usize>,
}

impl<'a> FindingPositions<'a> {
    pub fn new(document: &'a Document) -> Self {
        let mut newline_starts = vec![0];
        newline_starts.extend(
            document
                .text
                .match_indices('\n')
                .map(|(offset, _)| offset + 1),
        );
        Self {
            document,
            newline_starts,
        }
    }

    pub fn range(&self, finding: &Finding) -> Range {
        let start = self.offset(finding.line, finding.column.saturating_sub(1));
        // The end column is inclusive: the range ends after that character.
        let end = self.offset(finding.end_line, finding.end_column).max(start);
        Range {
            start: self.document.position(start),
            end: self.document.position(end),
        }
    }

    /// The byte offset after `characters` characters of 1-based line `line` (clamped to the line).
    fn offset(&self, line: usize, characters: usize) -> usize {
        let text = &self.document.text;
        let Some(&start) = self.newline_starts.get(line.saturating_sub(1)) else {
            return text.len();
        };
        let end = self
            .newline_starts
            .get(line)
            .map_or(text.len(), |next| next - 1);
        let content = text[start..end].trim_end_matches('\r');
        content
            .char_indices()
            .nth(characters)
            .map_or(start + content.len(), |(index, _)| start + index)
    }
}

fn lsp_line_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = vec![0];
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\n' => starts.push(index + 1),
            b'\r' if bytes.get(index + 1) == Some(&b'\n') => {
                starts.push(index + 2);
                index += 1;
            }
            b'\r' => starts.push(index + 1),
            _ => {}
        }
        index += 1;
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    fn edit(document: &mut Document, start: Position, end: Position, text: &str) {
        document.apply(&TextDocumentContentChangeEvent {
            range: Some(Range { start, end }),
            range_length: None,
            text: text.to_string(),
        });
    }

    #[test]
    fn columns_count_utf16_code_units() {
        // 'é' is one UTF-16 unit (two bytes), '🦀' two units (four bytes).
        let document = Document::new("é🦀x\nsecond".to_string(), 1);
        assert_eq!(document.offset(position(0, 1)), 2);
        assert_eq!(document.offset(position(0, 3)), 6);
        assert_eq!(document.position(6), position(0, 3));
        assert_eq!(document.offset(position(1, 2)), 10);
    }

    #[test]
    fn a_position_inside_a_surrogate_pair_is_the_start_of_its_character() {
        let document = Document::new("a🦀b".to_string(), 1);
        assert_eq!(document.offset(position(0, 2)), 1);
    }

    #[test]
    fn positions_past_a_line_or_the_text_are_clamped() {
        let document = Document::new("ab\r\ncd".to_string(), 1);
        assert_eq!(document.offset(position(0, 99)), 2);
        assert_eq!(document.offset(position(7, 0)), 6);
        // Between '\r' and '\n' is still the end of line 0.
        assert_eq!(document.position(3), position(0, 2));
    }

    #[test]
    fn every_line_terminator_the_specification_names_ends_a_line() {
        let document = Document::new("a\rb\r\nc\nd".to_string(), 1);
        assert_eq!(
            document.line_starts,
            vec![0, 2, 5, 7],
            "lines after \\r, \\r\\n and \\n"
        );
        assert_eq!(document.offset(position(3, 0)), 7);
    }

    #[test]
    fn incremental_edits_insert_replace_and_delete() {
        let mut document = Document::new("SELECT 1;\nSELECT 2;\n".to_string(), 1);
        edit(&mut document, position(1, 7), position(1, 8), "🦀");
        assert_eq!(document.text(), "SELECT 1;\nSELECT 🦀;\n");
        edit(&mut document, position(1, 9), position(1, 9), " + 3");
        assert_eq!(document.text(), "SELECT 1;\nSELECT 🦀 + 3;\n");
        edit(&mut document, position(0, 0), position(1, 0), "");
        assert_eq!(document.text(), "SELECT 🦀 + 3;\n");
        // A reversed range edits the same span.
        edit(&mut document, position(0, 9), position(0, 7), "x");
        assert_eq!(document.text(), "SELECT x + 3;\n");
    }

    #[test]
    fn finding_columns_become_utf16_ranges() {
        let document = Document::new("-- ü\n/* 🦀 */ ALTER TABLE t;\n".to_string(), 1);
        let finding = Finding {
            rule: tidegate_lint::RuleId::SyntaxError,
            statement: None,
            table: None,
            small_table: false,
            severity: tidegate_lint::Severity::Error,
            path: String::new(),
            // "ALTER" is character 9 of line 2 (1-based) and ';' character 22.
            line: 2,
            column: 9,
            end_line: 2,
            end_column: 22,
            message: String::new(),
            help: None,
            lock: None,
            snippet: Vec::new(),
        };
        let range = FindingPositions::new(&document).range(&finding);
        // The crab is two UTF-16 units, so every column after it is one more than its character count.
        assert_eq!(range.start, position(1, 9));
        assert_eq!(range.end, position(1, 23));
    }
}
