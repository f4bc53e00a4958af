//! The rules, one file each. Every file holds the rule's documentation (its doc comment, in the fixed shape
//! What it does / Why is this bad? / Lock taken / PostgreSQL versions / Example / Use instead) and its check.
//! [`ALL`] is the registry: adding a rule means adding its file and one line here.

pub mod add_column_default_rewrite;
pub mod add_column_serial;
pub mod add_column_stored_generated;
pub mod add_required_column;
pub mod alter_column_type_rewrite;
pub mod alter_domain_add_constraint;
pub mod attach_partition_without_check;
pub mod check_constraint_without_not_valid;
pub mod concurrent_index_if_not_exists;
pub mod concurrently_in_transaction;
pub mod create_index_non_concurrently;
pub mod detach_partition_non_concurrently;
pub mod disable_triggers;
pub mod drop_column;
pub mod drop_database;
pub mod drop_index_non_concurrently;
pub mod drop_primary_key;
pub mod drop_table;
pub mod enum_add_value_in_transaction;
pub mod exclusion_constraint;
pub mod foreign_key_without_not_valid;
pub mod identifier_too_long;
pub mod invalid_suppression;
pub mod missing_lock_timeout;
pub mod missing_statement_timeout;
pub mod multiple_tables_locked;
pub mod prefer_bigint_over_int;
pub mod prefer_identity_over_serial;
pub mod prefer_jsonb_over_json;
pub mod prefer_text_over_char;
pub mod prefer_text_over_varchar;
pub mod prefer_timestamptz;
pub mod primary_key_without_index;
pub mod refresh_matview_non_concurrently;
pub mod reindex_non_concurrently;
pub mod rename_column;
pub mod rename_table;
pub mod schema_change_with_backfill;
pub mod set_not_null_scan;
pub mod syntax_error;
pub mod table_rewrite_command;
pub mod transaction_nesting;
pub mod truncate_cascade;
pub mod unbatched_delete;
pub mod unbatched_insert_select;
pub mod unbatched_update;
pub mod unique_constraint_without_index;
pub mod validate_in_same_transaction;

use crate::registry::Rule;

/// Every rule, grouped as in the documentation: syntax, data changes, indexes, constraints, rewrites, locks
/// and transactions, breaking changes, schema advice, suppressions.
pub static ALL: &[&dyn Rule] = &[
    &syntax_error::SyntaxError,
    &schema_change_with_backfill::SchemaChangeWithBackfill,
    &unbatched_update::UnbatchedUpdate,
    &unbatched_delete::UnbatchedDelete,
    &unbatched_insert_select::UnbatchedInsertSelect,
    &create_index_non_concurrently::CreateIndexNonConcurrently,
    &drop_index_non_concurrently::DropIndexNonConcurrently,
    &reindex_non_concurrently::ReindexNonConcurrently,
    &concurrently_in_transaction::ConcurrentlyInTransaction,
    &concurrent_index_if_not_exists::ConcurrentIndexIfNotExists,
    &check_constraint_without_not_valid::CheckConstraintWithoutNotValid,
    &foreign_key_without_not_valid::ForeignKeyWithoutNotValid,
    &validate_in_same_transaction::ValidateInSameTransaction,
    &unique_constraint_without_index::UniqueConstraintWithoutIndex,
    &primary_key_without_index::PrimaryKeyWithoutIndex,
    &exclusion_constraint::ExclusionConstraint,
    &alter_domain_add_constraint::AlterDomainAddConstraint,
    &set_not_null_scan::SetNotNullScan,
    &add_required_column::AddRequiredColumn,
    &drop_primary_key::DropPrimaryKey,
    &add_column_default_rewrite::AddColumnDefaultRewrite,
    &add_column_stored_generated::AddColumnStoredGenerated,
    &add_column_serial::AddColumnSerial,
    &alter_column_type_rewrite::AlterColumnTypeRewrite,
    &table_rewrite_command::TableRewriteCommand,
    &refresh_matview_non_concurrently::RefreshMatviewNonConcurrently,
    &missing_lock_timeout::MissingLockTimeout,
    &missing_statement_timeout::MissingStatementTimeout,
    &multiple_tables_locked::MultipleTablesLocked,
    &enum_add_value_in_transaction::EnumAddValueInTransaction,
    &transaction_nesting::TransactionNesting,
    &disable_triggers::DisableTriggers,
    &attach_partition_without_check::AttachPartitionWithoutCheck,
    &detach_partition_non_concurrently::DetachPartitionNonConcurrently,
    &truncate_cascade::TruncateCascade,
    &drop_column::DropColumn,
    &drop_table::DropTable,
    &drop_database::DropDatabase,
    &rename_column::RenameColumn,
    &rename_table::RenameTable,
    &prefer_bigint_over_int::PreferBigintOverInt,
    &prefer_identity_over_serial::PreferIdentityOverSerial,
    &prefer_text_over_varchar::PreferTextOverVarchar,
    &prefer_text_over_char::PreferTextOverChar,
    &prefer_timestamptz::PreferTimestamptz,
    &prefer_jsonb_over_json::PreferJsonbOverJson,
    &identifier_too_long::IdentifierTooLong,
    &invalid_suppression::InvalidSuppression,
];
