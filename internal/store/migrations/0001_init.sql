-- velohunt schema. Times are unix milliseconds (UTC) everywhere.

-- IRIS cases velohunt has seen, with their routing and the intake cursor.
CREATE TABLE cases (
	case_id    INTEGER PRIMARY KEY,          -- IRIS case id
	name       TEXT NOT NULL DEFAULT '',
	customer   TEXT NOT NULL DEFAULT '',
	tags       TEXT NOT NULL DEFAULT '',     -- comma separated
	is_open    INTEGER NOT NULL DEFAULT 1,
	server     TEXT NOT NULL DEFAULT '',     -- Velociraptor server name (config)
	org        TEXT NOT NULL DEFAULT '',     -- Velociraptor org id, '' = root
	-- Intake cursor: IRIS's per-case IOC counter (/case/ioc/state) at the
	-- last sync; -1 = never synced.
	ioc_state  INTEGER NOT NULL DEFAULT -1,
	synced_at  INTEGER NOT NULL DEFAULT 0,
	updated_at INTEGER NOT NULL
);

-- One row per (case, IRIS IOC): IRIS 2.4 IOCs are global rows linked to cases
-- and velohunt hunts per case, because routing is per case.
CREATE TABLE iocs (
	id          INTEGER PRIMARY KEY,
	case_id     INTEGER NOT NULL REFERENCES cases(case_id),
	iris_id     INTEGER NOT NULL,
	type_name   TEXT NOT NULL,
	value       TEXT NOT NULL,
	tlp_id      INTEGER NOT NULL DEFAULT 0,
	kind        TEXT NOT NULL DEFAULT '',    -- '' when refused
	hunt_value  TEXT NOT NULL DEFAULT '',
	-- queued: waits for the planner; hunting: a hunt covers it;
	-- hunted: its last hunt ended; refused: never hunted (see reason);
	-- removed: gone from IRIS or its case closed.
	state       TEXT NOT NULL CHECK (state IN ('queued','hunting','hunted','refused','removed')),
	reason      TEXT NOT NULL DEFAULT '',
	source      TEXT NOT NULL DEFAULT '',    -- webhook, reconcile, manual, cli
	queued_at   INTEGER,                     -- set while state = 'queued'
	last_hunt_at INTEGER,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	UNIQUE (case_id, iris_id)
);
CREATE INDEX iocs_queued ON iocs (state, queued_at);
CREATE INDEX iocs_iris ON iocs (iris_id);

-- Hunts velohunt plans and launches. marker is a tag set on the Velociraptor
-- hunt so that a launch interrupted by a crash finds its hunt again.
CREATE TABLE hunts (
	id              INTEGER PRIMARY KEY,
	marker          TEXT NOT NULL UNIQUE,
	server          TEXT NOT NULL,
	org             TEXT NOT NULL,
	kind            TEXT NOT NULL,
	artifact        TEXT NOT NULL,
	vr_hunt_id      TEXT UNIQUE,             -- 'H.…' once created
	-- planned: not yet created; created: exists, paused; running: started;
	-- finished / stopped / expired: ended.
	state           TEXT NOT NULL CHECK (state IN ('planned','created','running','finished','stopped','expired')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	next_attempt_at INTEGER NOT NULL DEFAULT 0,
	expires_at      INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	started_at      INTEGER,
	ended_at        INTEGER
);
CREATE INDEX hunts_state ON hunts (state, next_attempt_at);

-- Which IOC rows each hunt covers.
CREATE TABLE hunt_iocs (
	hunt_id INTEGER NOT NULL REFERENCES hunts(id),
	ioc_id  INTEGER NOT NULL REFERENCES iocs(id),
	PRIMARY KEY (hunt_id, ioc_id)
);
CREATE INDEX hunt_iocs_ioc ON hunt_iocs (ioc_id);

-- Webhook events, persisted before the webhook is answered.
CREATE TABLE inbox (
	id          INTEGER PRIMARY KEY,
	event       TEXT NOT NULL,
	payload     BLOB NOT NULL,
	received_at INTEGER NOT NULL
);
