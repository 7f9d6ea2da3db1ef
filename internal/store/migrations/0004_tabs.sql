-- The tab last written to each IRIS IOC: a fingerprint of what it said in
-- substance and when, so that velohunt rewrites a tab (an IOC update in
-- IRIS, which fires every module's on_postload_ioc_update) only when what an
-- analyst reads changes, and not more often than writeback.tab_min_interval.
CREATE TABLE tabs (
	iris_id     INTEGER PRIMARY KEY,
	fingerprint TEXT NOT NULL,
	written_at  INTEGER NOT NULL
);
