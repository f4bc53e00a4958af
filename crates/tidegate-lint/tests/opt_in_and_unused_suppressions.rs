//! Opt-in rules run only when the configuration turns them on, and `unused-suppression` does not report a
//! suppression of a rule the configuration turns off (another environment's configuration may turn it on).

use tidegate_lint::{Config, RuleId, RuleSetting, Session};

fn rules_fired(config: &Config, sql: &str) -> Vec<RuleId> {
    let mut session = Session::new(config, None);
    session
        .lint("001.sql", sql, false)
        .findings
        .iter()
        .map(|finding| finding.rule)
        .collect()
}

#[test]
fn opt_in_rules_run_only_when_turned_on() {
    let sql = "ALTER TABLE orders ADD COLUMN note text;\n";
    assert!(!rules_fired(&Config::default(), sql).contains(&RuleId::AddColumn));
    for setting in [
        RuleSetting::On,
        RuleSetting::Severity(tidegate_lint::Severity::Info),
    ] {
        let mut config = Config::default();
        config.rules.insert(RuleId::AddColumn, setting);
        assert!(
            rules_fired(&config, sql).contains(&RuleId::AddColumn),
            "{setting:?}"
        );
    }
}

#[test]
fn a_suppression_of_a_rule_turned_off_is_not_unused() {
    let sql = "-- tidegate:ignore drop-column release 41 stopped reading it\nSELECT 1;\n";
    assert!(rules_fired(&Config::default(), sql).contains(&RuleId::UnusedSuppression));
    let mut config = Config::default();
    config.rules.insert(RuleId::DropColumn, RuleSetting::Off);
    assert!(!rules_fired(&config, sql).contains(&RuleId::UnusedSuppression));
    // An opt-in rule left off is off too.
    let sql = "-- tidegate:ignore add-column positional inserts are gone\nSELECT 1;\n";
    assert!(!rules_fired(&Config::default(), sql).contains(&RuleId::UnusedSuppression));
}

#[test]
fn a_used_suppression_is_quiet_and_silences_its_finding() {
    let sql = "-- tidegate:ignore drop-column release 41 stopped reading it\nALTER TABLE orders DROP COLUMN legacy;\n";
    let fired = rules_fired(&Config::default(), sql);
    assert!(!fired.contains(&RuleId::UnusedSuppression), "{fired:?}");
    assert!(!fired.contains(&RuleId::DropColumn), "{fired:?}");
}
