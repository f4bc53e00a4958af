-- The migration from the postmortem: a schema change and a whole-table backfill in one release.
ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);
UPDATE orders SET order_status_v2 = order_status;
