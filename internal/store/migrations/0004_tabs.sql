-- The tab last written to each IRIS IOC: a fingerprint of what it said in
-- substance and when, so that velohunt rewrites a tab (an IOC update in
-- IRIS, which fires every module's on_postload_ioc_update) only when what an
-- analyst reads changes, and not more often than writeback.tab_min_interval.
CREATE TABLE tabs (
	iris_id     INTEGER PRIMARY KEY,
	fingerprint TEXT NOT NULL,
	written_at  INTEGER NOT NULL
);

-- IRIS module tasks of manual triggers ("Hunt in Velociraptor") whose case
-- velohunt has already used: the webhook names no case, IRIS's task list
-- does.
CREATE TABLE hook_tasks (
	task_id TEXT PRIMARY KEY,
	used_at INTEGER NOT NULL
);

-- Parked writes of one IOC, read for every tab.
CREATE INDEX outbox_parked ON outbox (ioc_id) WHERE parked = 1;
-- Done tab writes are deleted from now on; these guard nothing.
DELETE FROM outbox WHERE kind = 'tab' AND done_at IS NOT NULL;
