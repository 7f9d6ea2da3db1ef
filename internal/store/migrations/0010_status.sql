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

-- Each Velociraptor server's (and org's) client releases as serve last
-- read them from clients(), with how well velohunt hunts on each:
-- `velohunt status` and the metrics show them without asking Velociraptor.
CREATE TABLE fleets (
	server     TEXT NOT NULL,
	org        TEXT NOT NULL,
	checked_at INTEGER NOT NULL DEFAULT 0,  -- last successful read (0: never)
	tried_at   INTEGER NOT NULL,            -- last attempt
	error      TEXT NOT NULL DEFAULT '',    -- of the last attempt ('' when it succeeded)
	PRIMARY KEY (server, org)
);
CREATE TABLE fleet_versions (
	server  TEXT NOT NULL,
	org     TEXT NOT NULL,
	pos     INTEGER NOT NULL,               -- most clients first
	version TEXT NOT NULL,                  -- as the clients report it
	clients INTEGER NOT NULL,
	support TEXT NOT NULL,                  -- full, partial, unchecked
	release TEXT NOT NULL DEFAULT '',       -- the release of velohunt's table it is
	missing TEXT NOT NULL DEFAULT '',       -- what that release lacks ('; ' between)
	why     TEXT NOT NULL DEFAULT '',       -- why an unchecked version was not checked
	PRIMARY KEY (server, org, pos)
);
