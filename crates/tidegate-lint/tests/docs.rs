//! docs/rules/ is generated from the rules' doc comments; this test fails when it is stale.
//! Regenerate with `cargo run -p tidegate -- explain --all --markdown docs/rules`.

use std::path::Path;

use tidegate_lint::{registry, rules_index_markdown};

#[test]
fn docs_rules_match_the_rule_doc_comments() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules");
    let regenerate =
        "regenerate with `cargo run -p tidegate -- explain --all --markdown docs/rules`";
    let mut expected = vec![("README.md".to_string(), rules_index_markdown())];
    expected.extend(
        registry()
            .iter()
            .map(|rule| (format!("{}.md", rule.doc().id), rule.doc().markdown_page())),
    );
    for (name, content) in &expected {
        let actual = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|_| panic!("docs/rules/{name} is missing; {regenerate}"));
        assert!(
            actual == *content,
            "docs/rules/{name} is stale; {regenerate}"
        );
    }
    for entry in std::fs::read_dir(&dir).expect("docs/rules exists") {
        let name = entry
            .expect("directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            expected
                .iter()
                .any(|(expected_name, _)| *expected_name == name),
            "docs/rules/{name} belongs to no rule; delete it or {regenerate}"
        );
    }
}
