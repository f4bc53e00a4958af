//! Findings as LSP diagnostics: the rule id is the code, the help is related information (or a line of the
//! message for clients that do not show related information), the lock is a line of the message.

use lsp_types::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString,
    Position, Range, Uri,
};
use tidegate_lint::{Finding, Severity};

use crate::text::FindingPositions;

/// What every diagnostic this server publishes says it came from.
pub const SOURCE: &str = "tidegate";

pub fn from_finding(
    finding: &Finding,
    positions: &FindingPositions<'_>,
    uri: &Uri,
    related_information: bool,
) -> Diagnostic {
    let range = positions.range(finding);
    let mut message = finding.message.clone();
    if let Some(lock) = &finding.lock {
        message.push_str("\nlock: ");
        message.push_str(lock);
    }
    let related = match &finding.help {
        Some(help) if related_information => Some(vec![DiagnosticRelatedInformation {
            location: Location {
                uri: uri.clone(),
                range,
            },
            message: format!("help: {help}"),
        }]),
        Some(help) => {
            message.push_str("\nhelp: ");
            message.push_str(help);
            None
        }
        None => None,
    };
    Diagnostic {
        range,
        severity: Some(severity(finding.severity)),
        code: Some(NumberOrString::String(finding.rule.as_str().to_string())),
        code_description: None,
        source: Some(SOURCE.to_string()),
        message,
        related_information: related,
        tags: None,
        data: None,
    }
}

/// Something that kept the file from being linted in full context (a broken `tidegate.toml`, an unreadable
/// earlier migration), shown on the first line.
pub fn problem(message: &str) -> Diagnostic {
    let start = Position {
        line: 0,
        character: 0,
    };
    Diagnostic {
        range: Range { start, end: start },
        severity: Some(DiagnosticSeverity::WARNING),
        code: None,
        code_description: None,
        source: Some(SOURCE.to_string()),
        message: message.to_string(),
        related_information: None,
        tags: None,
        data: None,
    }
}

fn severity(severity: Severity) -> DiagnosticSeverity {
    match severity {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Info => DiagnosticSeverity::INFORMATION,
    }
}
