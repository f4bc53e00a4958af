//! tidegate-run: the planner, the executor and the backfill engine.
