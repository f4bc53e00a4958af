//! tidegate-lint: the migration safety rules. Does no I/O.
