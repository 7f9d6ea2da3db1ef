-- A cursor per flow, not per client: relaunching a client of a hunt
-- (hunt_add(relaunch=TRUE) in Velociraptor 0.77.2) makes a second flow for
-- it, with its own rows from row 0. created_us is the flow's create_time
-- (µs): a client's state in the hunt is that of its newest flow. idx is
-- the flow's row in hunt_flows(), which lists flows in the order they were
-- scheduled (-1: not known yet): a pass lists the flows from the first
-- one not done, not the whole hunt.
CREATE TABLE hunt_flows_new (
	hunt_id    INTEGER NOT NULL REFERENCES hunts(id),
	client_id  TEXT NOT NULL,
	flow_id    TEXT NOT NULL,
	state      TEXT NOT NULL DEFAULT '',
	status     TEXT NOT NULL DEFAULT '',  -- the error of an ERROR flow
	total_rows INTEGER NOT NULL DEFAULT 0,
	rows_read  INTEGER NOT NULL DEFAULT 0,
	created_us INTEGER NOT NULL DEFAULT 0,
	idx        INTEGER NOT NULL DEFAULT -1,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (hunt_id, client_id, flow_id)
);
INSERT INTO hunt_flows_new (hunt_id, client_id, flow_id, state, status, total_rows, rows_read, updated_at)
	SELECT hunt_id, client_id, flow_id, state, status, total_rows, rows_read, updated_at FROM hunt_flows;
DROP TABLE hunt_flows;
ALTER TABLE hunt_flows_new RENAME TO hunt_flows;

-- The hunt's stats as Velociraptor last reported them (state, scheduled,
-- finished, errors, rows): when they move, the flows are listed again.
-- scheduled, finished and errored hold the hosts as their newest flows
-- tell, which the stats do not after a relaunch.
ALTER TABLE hunts ADD COLUMN vr_stats TEXT NOT NULL DEFAULT '';

-- This velohunt's instance id, written on every tab it writes: one
-- velohunt per IRIS, and a tab written by another is not overwritten.
CREATE TABLE instance (
	id         TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
