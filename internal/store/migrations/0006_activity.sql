-- When a serve last finished each kind of background work, for `velohunt
-- status` (another process) and the metrics: 'sync' (a sync of IRIS's
-- case list, by the reconcile or for a webhook) and 'watch' (a watcher
-- pass). The last IRIS write is read from the outbox and the tabs.
CREATE TABLE activity (
	name TEXT PRIMARY KEY,
	at   INTEGER NOT NULL
);
