-- Follow-up collections: on a hit, velohunt collects from the hit's client
-- (the matched file, artifacts the team names) with collect_client(), and
-- records what came back in the case as an IRIS evidence.

-- One collection per (client, target): the target is the file's path
-- ("file:" + path) or, for artifacts only, the hit's evidence key, so two
-- IOCs that match one file collect it once.
CREATE TABLE collections (
	id          INTEGER PRIMARY KEY,
	server      TEXT NOT NULL,
	org         TEXT NOT NULL,
	client_id   TEXT NOT NULL,
	target      TEXT NOT NULL,
	path        TEXT NOT NULL DEFAULT '',   -- the file to upload ('' : none)
	artifacts   TEXT NOT NULL DEFAULT '[]', -- JSON: the named artifacts and their parameters
	max_bytes   INTEGER NOT NULL,           -- the file's cap
	expect      TEXT NOT NULL DEFAULT '',   -- the hash the hunt found ("sha256:…"), '' : none
	marker      TEXT NOT NULL,              -- Custom.Velohunt.Collect's Marker: finds the flow after a crash
	-- queued, held (by a limit: reason says which), launching (asked, flow
	-- id not recorded yet), running, collected, failed (reason says why).
	state       TEXT NOT NULL CHECK (state IN ('queued','held','launching','running','collected','failed')),
	reason      TEXT NOT NULL DEFAULT '',
	flow_id     TEXT NOT NULL DEFAULT '',
	attempts    INTEGER NOT NULL DEFAULT 0,
	flow_state  TEXT NOT NULL DEFAULT '',
	file_path   TEXT NOT NULL DEFAULT '',   -- as the client reported it
	file_size   INTEGER NOT NULL DEFAULT 0,
	sha256      TEXT NOT NULL DEFAULT '',
	md5         TEXT NOT NULL DEFAULT '',
	uploaded    INTEGER NOT NULL DEFAULT 0, -- bytes the flow uploaded
	reserved    INTEGER NOT NULL DEFAULT 0, -- bytes counted against the day's budget
	created_at  INTEGER NOT NULL,
	launched_at INTEGER NOT NULL DEFAULT 0,
	ended_at    INTEGER NOT NULL DEFAULT 0,
	next_at     INTEGER NOT NULL DEFAULT 0,
	UNIQUE (server, org, client_id, target)
);
CREATE INDEX collections_live ON collections (state) WHERE state NOT IN ('collected','failed');
CREATE INDEX collections_launched ON collections (server, launched_at);

-- collect_pending = 1: a new hit the collector has not decided on yet.
ALTER TABLE hits ADD COLUMN collect_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN collection_id INTEGER REFERENCES collections(id);
CREATE INDEX hits_collect_pending ON hits (id) WHERE collect_pending = 1;
CREATE INDEX hits_collection ON hits (collection_id) WHERE collection_id IS NOT NULL;

-- A routing rule may turn follow-up collections off for its cases.
ALTER TABLE cases ADD COLUMN no_collect INTEGER NOT NULL DEFAULT 0;

-- The outbox learns two kinds: 'evidence' (the IRIS evidence of a
-- collection, one per case) and 'collected' (its timeline event, one per
-- hit). SQLite cannot change a CHECK: the table is made again.
CREATE TABLE outbox_new (
	id              INTEGER PRIMARY KEY,
	kind            TEXT NOT NULL CHECK (kind IN ('asset','event','tab','evidence','collected')),
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
INSERT INTO outbox_new SELECT id, kind, case_id, ioc_id, hit_id, dedup, marker, attempts, next_attempt_at, last_error,
	parked, iris_id, created_at, done_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE UNIQUE INDEX outbox_dedup ON outbox (dedup) WHERE kind != 'tab';
CREATE UNIQUE INDEX outbox_tab_pending ON outbox (ioc_id) WHERE kind = 'tab' AND done_at IS NULL AND parked = 0;
CREATE INDEX outbox_due ON outbox (done_at, parked, next_attempt_at);
CREATE INDEX outbox_parked ON outbox (ioc_id) WHERE parked = 1;
