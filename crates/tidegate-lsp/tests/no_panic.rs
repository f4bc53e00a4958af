//! Random edits sent through `didChange`, the way an editor sends them (ranges anywhere, past line ends, inside
//! surrogate pairs, reversed; whole-text replacements), never panic the server; the text it keeps is the text
//! a UTF-16 model of the same edits gives; and every diagnostic it publishes lies inside the document.

use lsp_server::{Message, Notification};
use lsp_types::{InitializeParams, Uri};
use proptest::prelude::*;
use serde_json::{json, Value};
use tidegate_lsp::Server;

/// Pieces that stress both the SQL scanner and the position arithmetic.
const FRAGMENTS: &[&str] = &[
    "ALTER TABLE orders ADD COLUMN c timestamp",
    "CREATE INDEX i ON orders (c)",
    "UPDATE orders SET c = now()",
    "BEGIN;",
    "COMMIT;",
    ";",
    " ",
    "\n",
    "\r\n",
    "\r",
    "'",
    "$$",
    "--",
    "/*",
    "*/",
    "é",
    "🦀",
    "-- tidegate:ignore unbatched-update because",
    "",
];

#[derive(Debug, Clone)]
enum Edit {
    Range {
        start: (u32, u32),
        end: (u32, u32),
        text: String,
    },
    Whole(String),
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|parts| parts.concat())
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        8 => ((0u32..8, 0u32..48), (0u32..8, 0u32..48), text())
            .prop_map(|(start, end, text)| Edit::Range { start, end, text }),
        1 => text().prop_map(Edit::Whole),
    ]
}

/// The reference: the document as UTF-16 code units, edited per the LSP specification's rules for
/// out-of-range positions.
struct Utf16Model {
    units: Vec<u16>,
}

impl Utf16Model {
    fn new(text: &str) -> Self {
        Self {
            units: text.encode_utf16().collect(),
        }
    }

    /// (start, end) in units of every line's content, terminators excluded.
    fn lines(&self) -> Vec<(usize, usize)> {
        let (cr, lf) = (u16::from(b'\r'), u16::from(b'\n'));
        let mut lines = Vec::new();
        let mut start = 0;
        let mut index = 0;
        while index < self.units.len() {
            let unit = self.units[index];
            if unit == lf || unit == cr {
                lines.push((start, index));
                if unit == cr && self.units.get(index + 1) == Some(&lf) {
                    index += 1;
                }
                start = index + 1;
            }
            index += 1;
        }
        lines.push((start, self.units.len()));
        lines
    }

    fn index(&self, (line, character): (u32, u32)) -> usize {
        let lines = self.lines();
        let Some(&(start, end)) = lines.get(line as usize) else {
            return self.units.len();
        };
        let index = (start + character as usize).min(end);
        // Inside a surrogate pair: the start of its character.
        if index > start && index < end && (0xDC00..0xE000).contains(&self.units[index]) {
            index - 1
        } else {
            index
        }
    }

    fn apply(&mut self, edit: &Edit) {
        match edit {
            Edit::Whole(text) => self.units = text.encode_utf16().collect(),
            Edit::Range { start, end, text } => {
                let (a, b) = (self.index(*start), self.index(*end));
                let (a, b) = (a.min(b), a.max(b));
                self.units.splice(a..b, text.encode_utf16());
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf16(&self.units).expect("edits never split a surrogate pair")
    }
}

fn notification(method: &str, params: Value) -> Message {
    Notification::new(method.to_string(), params).into()
}

fn change(uri: &str, version: i32, edit: &Edit) -> Message {
    let change = match edit {
        Edit::Whole(text) => json!({ "text": text }),
        Edit::Range { start, end, text } => json!({
            "range": {
                "start": { "line": start.0, "character": start.1 },
                "end": { "line": end.0, "character": end.1 },
            },
            "text": text,
        }),
    };
    notification(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [change] }),
    )
}

/// Every published range is ordered and inside the document the model holds.
fn assert_inside(published: &[Message], model: &Utf16Model, version: i32) {
    let lines = model.lines();
    let mut seen = false;
    for message in published {
        let Message::Notification(notification) = message else {
            continue;
        };
        seen = true;
        assert_eq!(notification.params["version"], version);
        for diagnostic in notification.params["diagnostics"]
            .as_array()
            .expect("diagnostics")
        {
            let point = |key: &str| {
                let position = &diagnostic["range"][key];
                (
                    position["line"].as_u64().expect("line") as usize,
                    position["character"].as_u64().expect("character") as usize,
                )
            };
            let (start, end) = (point("start"), point("end"));
            assert!(start <= end, "{diagnostic:#}");
            for (line, character) in [start, end] {
                let (line_start, line_end) = *lines
                    .get(line)
                    .unwrap_or_else(|| panic!("line {line} past the end: {diagnostic:#}"));
                assert!(
                    character <= line_end - line_start,
                    "column {character} past line {line}'s end: {diagnostic:#}"
                );
            }
        }
    }
    assert!(seen, "diagnostics were published for the change");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_did_change_edits_never_panic(initial in text(), edits in prop::collection::vec(edit(), 1..16)) {
        let uri = "untitled:edited.sql";
        let mut server = Server::new(&InitializeParams::default());
        let mut outgoing = Vec::new();
        server.handle(
            notification(
                "textDocument/didOpen",
                json!({ "textDocument": { "uri": uri, "languageId": "sql", "version": 0, "text": initial } }),
            ),
            &mut outgoing,
        );
        server.publish(&mut outgoing);
        let mut model = Utf16Model::new(&initial);
        assert_inside(&outgoing, &model, 0);
        let parsed_uri: Uri = uri.parse().expect("uri");
        for (index, edit) in edits.iter().enumerate() {
            let version = index as i32 + 1;
            outgoing.clear();
            server.handle(change(uri, version, edit), &mut outgoing);
            server.publish(&mut outgoing);
            model.apply(edit);
            let expected = model.text();
            prop_assert_eq!(server.document_text(&parsed_uri), Some(expected.as_str()));
            assert_inside(&outgoing, &model, version);
        }
    }
}
