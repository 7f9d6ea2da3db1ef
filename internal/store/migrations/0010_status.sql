-- What happened to each IOC that its rows do not keep, for `velohunt status
-- -ioc` and `-case`: each time velohunt learned an IOC row, saw it change,
-- queued it again or dropped it, with the source (webhook, reconcile,
-- manual, cli, rehunt:RULE) and the outcome of validation; each write
-- IRIS refused (a parked tab write is replaced by the next one); each tab
-- written (done tab writes leave the outbox, and the tab is one per IRIS
-- IOC: ioc_id is then NULL).
CREATE TABLE ioc_log (
	id      INTEGER PRIMARY KEY,
	iris_id INTEGER NOT NULL,
	ioc_id  INTEGER REFERENCES iocs(id),
	at      INTEGER NOT NULL,
	event   TEXT NOT NULL,
	source  TEXT NOT NULL DEFAULT '',
	detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ioc_log_iris ON ioc_log (iris_id, at);
