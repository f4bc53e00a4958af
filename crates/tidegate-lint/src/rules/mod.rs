//! The rules, one file each. Every file holds the rule's documentation (its doc comment, in the fixed shape
//! What it does / Why is this bad? / Lock taken / PostgreSQL versions / Example / Use instead) and its check.
//! [`ALL`] is the registry: adding a rule means adding its file and one line here.

pub mod add_column;
pub mod add_column_default_rewrite;
pub mod add_column_serial;
pub mod add_column_stored_generated;
pub mod add_enum_value;
pub mod add_required_column;
pub mod alter_column_type_rewrite;
pub mod alter_database_settings;
pub mod alter_domain_add_constraint;
pub mod alter_extension;
pub mod alter_identity;
pub mod alter_policy;
pub mod alter_role_settings;
pub mod alter_sequence_values;
pub mod alter_system;
pub mod attach_partition_without_check;
pub mod check_constraint_without_not_valid;
pub mod concurrent_index_if_not_exists;
pub mod concurrently_in_transaction;
pub mod create_domain_with_constraint;
pub mod create_index_non_concurrently;
pub mod create_policy;
pub mod detach_inheritance;
pub mod detach_partition_non_concurrently;
pub mod disable_triggers;
pub mod drop_column;
pub mod drop_constraint;
pub mod drop_database;
pub mod drop_domain;
pub mod drop_extension;
pub mod drop_function;
pub mod drop_generated_expression;
pub mod drop_index_non_concurrently;
pub mod drop_not_null;
pub mod drop_policy;
pub mod drop_primary_key;
pub mod drop_schema;
pub mod drop_sequence;
pub mod drop_table;
pub mod drop_trigger;
pub mod drop_type;
pub mod drop_view;
pub mod enum_add_value_in_transaction;
pub mod enum_value_ordering;
pub mod exclusion_constraint;
pub mod foreign_key_without_not_valid;
pub mod identifier_too_long;
pub mod invalid_suppression;
pub mod lock_table;
pub mod missing_lock_timeout;
pub mod missing_statement_timeout;
pub mod multiple_tables_locked;
pub mod mysql_algorithm_unspecified;
pub mod mysql_alter_copy;
pub mod mysql_alter_rebuild;
pub mod new_write_restriction;
pub mod prefer_bigint_over_int;
pub mod prefer_bigint_over_smallint;
pub mod prefer_identity_over_serial;
pub mod prefer_jsonb_over_json;
pub mod prefer_text_over_char;
pub mod prefer_text_over_varchar;
pub mod prefer_timestamptz;
pub mod primary_key_without_index;
pub mod refresh_matview_non_concurrently;
pub mod reindex_non_concurrently;
pub mod rename_column;
pub mod rename_object;
pub mod rename_table;
pub mod replica_identity;
pub mod require_schema_qualified;
pub mod revoke_privileges;
pub mod robust_statements;
pub mod row_level_security;
pub mod schema_change_with_backfill;
pub mod set_default;
pub mod set_not_null_scan;
pub mod set_schema;
pub mod syntax_error;
pub mod table_rewrite_command;
pub mod transaction_nesting;
pub mod truncate_cascade;
pub mod unbatched_delete;
pub mod unbatched_insert_select;
pub mod unbatched_update;
pub mod unique_constraint_without_index;
pub mod unused_suppression;
pub mod validate_in_same_transaction;

use crate::registry::Rule;

/// Every rule, grouped as in the documentation: syntax, data changes, indexes, constraints, rewrites, locks
/// and transactions, breaking changes (drops, renames, changes that alter what running code reads, writes or may
/// do), schema advice, suppressions.
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
    &create_domain_with_constraint::CreateDomainWithConstraint,
    &set_not_null_scan::SetNotNullScan,
    &add_required_column::AddRequiredColumn,
    &drop_primary_key::DropPrimaryKey,
    &add_column_default_rewrite::AddColumnDefaultRewrite,
    &add_column_stored_generated::AddColumnStoredGenerated,
    &add_column_serial::AddColumnSerial,
    &alter_column_type_rewrite::AlterColumnTypeRewrite,
    &table_rewrite_command::TableRewriteCommand,
    &refresh_matview_non_concurrently::RefreshMatviewNonConcurrently,
    &mysql_alter_copy::MysqlAlterCopy,
    &mysql_alter_rebuild::MysqlAlterRebuild,
    &mysql_algorithm_unspecified::MysqlAlgorithmUnspecified,
    &missing_lock_timeout::MissingLockTimeout,
    &missing_statement_timeout::MissingStatementTimeout,
    &multiple_tables_locked::MultipleTablesLocked,
    &lock_table::LockTable,
    &enum_add_value_in_transaction::EnumAddValueInTransaction,
    &enum_value_ordering::EnumValueOrdering,
    &add_enum_value::AddEnumValue,
    &transaction_nesting::TransactionNesting,
    &disable_triggers::DisableTriggers,
    &attach_partition_without_check::AttachPartitionWithoutCheck,
    &detach_partition_non_concurrently::DetachPartitionNonConcurrently,
    &truncate_cascade::TruncateCascade,
    &drop_column::DropColumn,
    &drop_table::DropTable,
    &drop_database::DropDatabase,
    &drop_schema::DropSchema,
    &drop_view::DropView,
    &drop_function::DropFunction,
    &drop_type::DropType,
    &drop_domain::DropDomain,
    &drop_sequence::DropSequence,
    &drop_extension::DropExtension,
    &drop_policy::DropPolicy,
    &drop_trigger::DropTrigger,
    &drop_not_null::DropNotNull,
    &drop_constraint::DropConstraint,
    &drop_generated_expression::DropGeneratedExpression,
    &detach_inheritance::DetachInheritance,
    &alter_identity::AlterIdentity,
    &new_write_restriction::NewWriteRestriction,
    &set_default::SetDefault,
    &add_column::AddColumn,
    &replica_identity::ReplicaIdentity,
    &row_level_security::RowLevelSecurity,
    &create_policy::CreatePolicy,
    &alter_policy::AlterPolicy,
    &revoke_privileges::RevokePrivileges,
    &alter_sequence_values::AlterSequenceValues,
    &alter_system::AlterSystem,
    &alter_database_settings::AlterDatabaseSettings,
    &alter_role_settings::AlterRoleSettings,
    &alter_extension::AlterExtension,
    &rename_column::RenameColumn,
    &rename_table::RenameTable,
    &rename_object::RenameObject,
    &set_schema::SetSchema,
    &prefer_bigint_over_int::PreferBigintOverInt,
    &prefer_bigint_over_smallint::PreferBigintOverSmallint,
    &prefer_identity_over_serial::PreferIdentityOverSerial,
    &prefer_text_over_varchar::PreferTextOverVarchar,
    &prefer_text_over_char::PreferTextOverChar,
    &prefer_timestamptz::PreferTimestamptz,
    &prefer_jsonb_over_json::PreferJsonbOverJson,
    &identifier_too_long::IdentifierTooLong,
    &require_schema_qualified::RequireSchemaQualified,
    &robust_statements::RobustStatements,
    &invalid_suppression::InvalidSuppression,
    &unused_suppression::UnusedSuppression,
];
