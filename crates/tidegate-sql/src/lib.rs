//! tidegate-sql: parses migration files with the real PostgreSQL parser (`pg_query`) into one statement
//! model that every tidegate verb consumes.
