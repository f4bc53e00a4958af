//! The source's WAL- and cost-relevant settings, taken by the scratch server that measures, and what still
//! differs. Pure: [`plan`] decides what to set from the source's `pg_settings`, [`compare`] what the scratch
//! server ended up with; the rehearsal does the I/O (reading the source inside its read-only transaction, the
//! start options, `ALTER SYSTEM` on the scratch server).
//!
//! Why these: `full_page_writes` and `wal_compression` decide how much WAL an UPDATE writes (every first change
//! of a page after a checkpoint logs the whole page; `checkpoint_timeout` and `max_wal_size` decide how often
//! that happens), `wal_level` what a rewrite or COPY logs, `shared_buffers` whether a table is read from memory
//! (scaled by `--scale` like the data, so the copy fits in it as the source's tables fit in theirs), and
//! `autovacuum` whether a vacuum competes with the migration. Table options (`fillfactor`, …) are re-created with
//! each table.
//!
//! A setting that needs a restart (context `postmaster`) is a start option of the scratch server; the others are
//! set with `ALTER SYSTEM` and a reload once it runs, so a value this server rejects (a compression method its
//! build lacks, a setting its version does not know) is its own error, reported, instead of a server that does
//! not start.

use serde::Serialize;
use tidegate_db::observe::ServerSetting;

/// The settings taken from the source.
pub const TAKEN: [&str; 7] = [
    "full_page_writes",
    "wal_level",
    "wal_compression",
    "shared_buffers",
    "autovacuum",
    "checkpoint_timeout",
    "max_wal_size",
];

/// Settings compared but not taken: the scratch server runs without fsync (it is thrown away, and loading the
/// copy would otherwise wait on the disk), which makes commits and checkpoints cheaper than on the source.
pub const COMPARED_ONLY: [&str; 1] = ["fsync"];

/// Every setting read from the source.
pub fn names() -> Vec<&'static str> {
    TAKEN.iter().chain(COMPARED_ONLY.iter()).copied().collect()
}

/// The smallest shared_buffers a scaled scratch server gets: below it PostgreSQL spends its time evicting.
pub const SHARED_BUFFERS_FLOOR_BYTES: u64 = 16 * 1024 * 1024;

/// What the scratch server is started with and set to.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsPlan {
    /// `shared_buffers`, in kB as PostgreSQL writes it (`65536kB`).
    pub shared_buffers: String,
    pub shared_buffers_bytes: u64,
    /// Why shared_buffers is not the source's: scaled, floored or capped.
    pub shared_buffers_reason: String,
    /// Start options: settings that need a restart.
    pub at_start: Vec<(String, String)>,
    /// Set with `ALTER SYSTEM` and a reload once the server runs.
    pub after_start: Vec<(String, String)>,
}

/// Decides the scratch server's settings from the source's, for a copy at `scale`; `source_shared_buffers_bytes`
/// is the source's shared_buffers, `memory_cap_bytes` the most this machine should give the scratch server.
pub fn plan(
    source: &[ServerSetting],
    source_shared_buffers_bytes: u64,
    scale: f64,
    memory_cap_bytes: Option<u64>,
) -> SettingsPlan {
    let scaled = (source_shared_buffers_bytes as f64 * scale).round() as u64;
    let (bytes, reason) = if scaled < SHARED_BUFFERS_FLOOR_BYTES {
        (
            SHARED_BUFFERS_FLOOR_BYTES,
            format!(
                "the source's × --scale {scale} is {}; raised to the floor of {}",
                kb(scaled),
                kb(SHARED_BUFFERS_FLOOR_BYTES)
            ),
        )
    } else if let Some(cap) = memory_cap_bytes.filter(|cap| scaled > *cap) {
        (
            cap.max(SHARED_BUFFERS_FLOOR_BYTES),
            format!(
                "the source's × --scale {scale} is {}, more than a quarter of this machine's memory; capped at {}",
                kb(scaled),
                kb(cap)
            ),
        )
    } else {
        (scaled, format!("the source's × --scale {scale}"))
    };
    // shared_buffers is counted in 8 kB pages.
    let bytes = bytes.div_ceil(8192) * 8192;
    let mut at_start = Vec::new();
    let mut after_start = Vec::new();
    for setting in source {
        if !TAKEN.contains(&setting.name.as_str()) || setting.name == "shared_buffers" {
            continue;
        }
        let pair = (setting.name.clone(), setting.value.clone());
        if setting.context == "postmaster" {
            at_start.push(pair);
        } else {
            after_start.push(pair);
        }
        // wal_level = minimal refuses to start with WAL senders configured.
        if setting.name == "wal_level" && setting.value == "minimal" {
            at_start.push(("max_wal_senders".into(), "0".into()));
        }
    }
    SettingsPlan {
        shared_buffers: kb(bytes),
        shared_buffers_bytes: bytes,
        shared_buffers_reason: reason,
        at_start,
        after_start,
    }
}

fn kb(bytes: u64) -> String {
    format!("{}kB", bytes / 1024)
}

/// How a setting on the scratch server relates to the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingStatus {
    /// The same value as the source's.
    Taken,
    /// Deliberately different: shared_buffers scaled with the data.
    Scaled,
    /// Different: tidegate does not take it (fsync), or the scratch server kept its own.
    Differs,
    /// Different because the scratch server refused the source's value or does not have the setting.
    Refused,
}

impl SettingStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Taken => "taken",
            Self::Scaled => "scaled",
            Self::Differs => "differs",
            Self::Refused => "refused",
        }
    }
}

/// One setting, source beside scratch server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingComparison {
    pub name: String,
    pub source: String,
    /// `None` when the scratch server does not know the setting.
    pub scratch: Option<String>,
    pub status: SettingStatus,
    /// Why it is not the same.
    pub reason: Option<String>,
}

/// The settings of a rehearsal: each one read from the source, beside the scratch server's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct SettingsReport {
    pub settings: Vec<SettingComparison>,
    /// Table options (`fillfactor=90`, …) re-created with each table, `(table, options)`.
    pub table_options: Vec<(String, String)>,
}

impl SettingsReport {
    /// The settings that are not the source's.
    pub fn differing(&self) -> impl Iterator<Item = &SettingComparison> {
        self.settings
            .iter()
            .filter(|setting| setting.status != SettingStatus::Taken)
    }

    /// The settings that differ other than by design (not shared_buffers scaled with the data).
    pub fn unexpected(&self) -> impl Iterator<Item = &SettingComparison> {
        self.settings.iter().filter(|setting| {
            matches!(
                setting.status,
                SettingStatus::Differs | SettingStatus::Refused
            )
        })
    }
}

/// Compares the source's settings with the scratch server's (`scratch`, read back once it runs); `rejected`
/// holds the settings the scratch server refused, with its error; `shared_buffers_bytes` are both sides'.
pub fn compare(
    source: &[ServerSetting],
    scratch: &[ServerSetting],
    rejected: &[(String, String)],
    plan: &SettingsPlan,
    shared_buffers_bytes: (u64, u64),
) -> Vec<SettingComparison> {
    source
        .iter()
        .map(|setting| {
            let theirs = scratch.iter().find(|s| s.name == setting.name);
            let scratch_value = theirs.map(|s| s.value.clone());
            let refused = rejected
                .iter()
                .find(|(name, _)| *name == setting.name)
                .map(|(_, error)| error.clone());
            let (status, reason) = if setting.name == "shared_buffers" {
                if shared_buffers_bytes.0 == shared_buffers_bytes.1 {
                    (SettingStatus::Taken, None)
                } else if shared_buffers_bytes.1 == plan.shared_buffers_bytes {
                    (SettingStatus::Scaled, Some(plan.shared_buffers_reason.clone()))
                } else {
                    (
                        SettingStatus::Differs,
                        Some(format!(
                            "asked for {}, the scratch server has {}",
                            plan.shared_buffers,
                            scratch_value.as_deref().unwrap_or("none")
                        )),
                    )
                }
            } else if scratch_value.as_deref() == Some(setting.value.as_str()) {
                (SettingStatus::Taken, None)
            } else if let Some(error) = refused {
                (
                    SettingStatus::Refused,
                    Some(format!("the scratch server refused it: {error}")),
                )
            } else if theirs.is_none() {
                (
                    SettingStatus::Refused,
                    Some("the scratch server's version does not have this setting".into()),
                )
            } else if COMPARED_ONLY.contains(&setting.name.as_str()) {
                (
                    SettingStatus::Differs,
                    Some(
                        "not taken: the scratch server runs without fsync, so commits and checkpoints cost less \
                         than on the source"
                            .into(),
                    ),
                )
            } else {
                (
                    SettingStatus::Differs,
                    Some(format!(
                        "set to the source's {}, the scratch server kept its own (context {})",
                        setting.value,
                        theirs.map_or("?", |s| s.context.as_str())
                    )),
                )
            };
            SettingComparison {
                name: setting.name.clone(),
                source: setting.value.clone(),
                scratch: scratch_value,
                status,
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &str, value: &str, context: &str) -> ServerSetting {
        ServerSetting {
            name: name.into(),
            value: value.into(),
            context: context.into(),
        }
    }

    fn source() -> Vec<ServerSetting> {
        vec![
            setting("autovacuum", "on", "sighup"),
            setting("fsync", "on", "sighup"),
            setting("full_page_writes", "off", "sighup"),
            setting("shared_buffers", "1GB", "postmaster"),
            setting("wal_compression", "lz4", "superuser"),
            setting("wal_level", "minimal", "postmaster"),
        ]
    }

    #[test]
    fn restart_settings_are_start_options_and_the_rest_are_set_once_the_server_runs() {
        let plan = plan(&source(), 1 << 30, 0.25, None);
        assert_eq!(plan.shared_buffers, "262144kB");
        assert_eq!(
            plan.at_start,
            [
                ("wal_level".to_string(), "minimal".to_string()),
                ("max_wal_senders".to_string(), "0".to_string())
            ]
        );
        let later: Vec<&str> = plan.after_start.iter().map(|(n, _)| n.as_str()).collect();
        // fsync is compared, never taken.
        assert_eq!(later, ["autovacuum", "full_page_writes", "wal_compression"]);
    }

    #[test]
    fn shared_buffers_scales_with_the_data_within_a_floor_and_a_cap() {
        let floored = plan(&source(), 128 << 20, 0.01, None);
        assert_eq!(floored.shared_buffers_bytes, SHARED_BUFFERS_FLOOR_BYTES);
        assert!(
            floored.shared_buffers_reason.contains("floor"),
            "{}",
            floored.shared_buffers_reason
        );
        let capped = plan(&source(), 64 << 30, 1.0, Some(4 << 30));
        assert_eq!(capped.shared_buffers, "4194304kB");
        assert!(capped.shared_buffers_reason.contains("capped"));
        // A size that is not a whole number of pages is rounded up to one.
        assert_eq!(
            plan(&source(), 100_000_000, 0.5, None).shared_buffers_bytes % 8192,
            0
        );
    }

    #[test]
    fn a_setting_the_scratch_server_refused_or_lacks_is_named_with_why() {
        let source = source();
        let plan = plan(&source, 1 << 30, 0.25, None);
        let scratch = vec![
            setting("autovacuum", "on", "sighup"),
            setting("fsync", "off", "sighup"),
            setting("full_page_writes", "off", "sighup"),
            setting("shared_buffers", "256MB", "postmaster"),
            setting("wal_compression", "off", "superuser"),
        ];
        let rejected = vec![(
            "wal_compression".to_string(),
            "invalid value for parameter \"wal_compression\": \"lz4\"".to_string(),
        )];
        let rows = compare(&source, &scratch, &rejected, &plan, (1 << 30, 256 << 20));
        let status = |name: &str| rows.iter().find(|r| r.name == name).unwrap();
        assert_eq!(status("autovacuum").status, SettingStatus::Taken);
        assert_eq!(status("full_page_writes").status, SettingStatus::Taken);
        assert_eq!(status("shared_buffers").status, SettingStatus::Scaled);
        let compression = status("wal_compression");
        assert_eq!(compression.status, SettingStatus::Refused);
        assert!(compression
            .reason
            .as_deref()
            .unwrap()
            .contains("refused it: invalid value"));
        assert_eq!(status("fsync").status, SettingStatus::Differs);
        assert!(status("fsync")
            .reason
            .as_deref()
            .unwrap()
            .contains("without fsync"));
        let level = status("wal_level");
        assert_eq!(level.status, SettingStatus::Refused);
        assert_eq!(level.scratch, None);
        assert!(level.reason.as_deref().unwrap().contains("does not have"));
        let report = SettingsReport {
            settings: rows.clone(),
            table_options: vec![],
        };
        let differing: Vec<&str> = report.differing().map(|s| s.name.as_str()).collect();
        assert_eq!(
            differing,
            ["fsync", "shared_buffers", "wal_compression", "wal_level"]
        );
        let unexpected: Vec<&str> = report.unexpected().map(|s| s.name.as_str()).collect();
        assert_eq!(unexpected, ["fsync", "wal_compression", "wal_level"]);
    }
}
