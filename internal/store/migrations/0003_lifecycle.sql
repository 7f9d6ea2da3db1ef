-- Re-hunt rules, hunt lifecycle and fleet limits.

-- The value each hunt was planned with: when an IOC's value changes in
-- IRIS, hunts of the old value no longer write to it.
ALTER TABLE hunt_iocs ADD COLUMN hunt_value TEXT NOT NULL DEFAULT '';
UPDATE hunt_iocs SET hunt_value = (SELECT hunt_value FROM iocs WHERE iocs.id = hunt_iocs.ioc_id);

-- IRIS case state name ("Open", "Containment"...), for re-hunt selectors.
ALTER TABLE cases ADD COLUMN state_name TEXT NOT NULL DEFAULT '';

-- Why a hunt ended early (case closed, IOC removed or changed).
ALTER TABLE hunts ADD COLUMN end_reason TEXT NOT NULL DEFAULT '';

-- Runs of re-hunt rules. Cron only inserts a pending run; the re-hunt loop
-- queues the matching IOCs and finishes the run. One pending run per rule,
-- so runs never overlap.
CREATE TABLE rehunt_runs (
	id          INTEGER PRIMARY KEY,
	rule        TEXT NOT NULL,
	due_at      INTEGER NOT NULL,
	finished_at INTEGER,
	queued      INTEGER NOT NULL DEFAULT 0,
	skipped     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX rehunt_runs_pending ON rehunt_runs (rule) WHERE finished_at IS NULL;
CREATE INDEX rehunt_runs_rule ON rehunt_runs (rule, id);

-- Work a server's limits hold back, shown by `velohunt status`.
CREATE TABLE server_holds (
	server     TEXT PRIMARY KEY,
	reason     TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);
