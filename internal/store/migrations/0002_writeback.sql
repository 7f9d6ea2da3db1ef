-- Results watching and write-back to IRIS.

-- Hunt progress as last read from Velociraptor, and the results cursor.
ALTER TABLE hunts ADD COLUMN vr_state TEXT NOT NULL DEFAULT '';
ALTER TABLE hunts ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hunts ADD COLUMN finished INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hunts ADD COLUMN errored INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hunts ADD COLUMN total_rows INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hunts ADD COLUMN rows_read INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hunts ADD COLUMN checked_at INTEGER NOT NULL DEFAULT 0;

-- Velociraptor clients seen in results, looked up once with client_info().
CREATE TABLE clients (
	server     TEXT NOT NULL,
	org        TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	hostname   TEXT NOT NULL DEFAULT '',
	fqdn       TEXT NOT NULL DEFAULT '',
	os         TEXT NOT NULL DEFAULT '',
	release    TEXT NOT NULL DEFAULT '',
	last_ip    TEXT NOT NULL DEFAULT '',
	fetched_at INTEGER NOT NULL,
	PRIMARY KEY (server, org, client_id)
);

-- One row per match of a (case, IOC) on a client with the same evidence.
-- The unique key spans hunts, so a re-read, a restart or a re-hunt that
-- finds the same evidence never makes a second hit.
CREATE TABLE hits (
	id           INTEGER PRIMARY KEY,
	ioc_id       INTEGER NOT NULL REFERENCES iocs(id),
	hunt_id      INTEGER NOT NULL REFERENCES hunts(id),  -- first hunt that found it
	server       TEXT NOT NULL,
	org          TEXT NOT NULL,
	client_id    TEXT NOT NULL,
	evidence_key TEXT NOT NULL,                          -- sha256 of the full evidence
	evidence     TEXT NOT NULL,                          -- clipped for display
	source       TEXT NOT NULL DEFAULT '',
	event_time   INTEGER,                                -- evidence time, ms; NULL if unknown
	row_json     BLOB NOT NULL,                          -- the raw row, clipped
	seen_count   INTEGER NOT NULL DEFAULT 1,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	UNIQUE (ioc_id, client_id, evidence_key)
);
CREATE INDEX hits_ioc ON hits (ioc_id);

-- IRIS assets velohunt made or reused: one per (case, Velociraptor client).
CREATE TABLE assets (
	case_id       INTEGER NOT NULL,
	server        TEXT NOT NULL,
	client_id     TEXT NOT NULL,
	iris_asset_id INTEGER NOT NULL,
	PRIMARY KEY (case_id, server, client_id)
);

-- Writes to IRIS, retried until done or parked. dedup makes each write
-- unique (one event per hit, one asset link per case, client and IOC).
-- marker is a random tag written into the object velohunt creates, so a
-- retry after a crash finds the object instead of creating it twice.
CREATE TABLE outbox (
	id              INTEGER PRIMARY KEY,
	kind            TEXT NOT NULL CHECK (kind IN ('asset','event','tab')),
	case_id         INTEGER NOT NULL,
	ioc_id          INTEGER NOT NULL REFERENCES iocs(id),
	hit_id          INTEGER REFERENCES hits(id),
	dedup           TEXT NOT NULL,
	marker          TEXT NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	parked          INTEGER NOT NULL DEFAULT 0,
	iris_id         INTEGER,
	created_at      INTEGER NOT NULL,
	done_at         INTEGER
);
CREATE UNIQUE INDEX outbox_dedup ON outbox (dedup) WHERE kind != 'tab';
-- At most one pending tab update per IOC: it renders the current state
-- when it is sent, so later changes coalesce into it.
CREATE UNIQUE INDEX outbox_tab_pending ON outbox (ioc_id) WHERE kind = 'tab' AND done_at IS NULL AND parked = 0;
CREATE INDEX outbox_due ON outbox (done_at, parked, next_attempt_at);
