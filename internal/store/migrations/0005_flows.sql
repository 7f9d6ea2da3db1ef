-- Each client's flow of a hunt: its state as last read from hunt_flows(),
-- and how many of its rows velohunt has read (a cursor per flow: in hunt
-- mode Velociraptor 0.77 ignores start_row, in flow mode it honours it).
CREATE TABLE hunt_flows (
	hunt_id    INTEGER NOT NULL REFERENCES hunts(id),
	client_id  TEXT NOT NULL,
	flow_id    TEXT NOT NULL,
	state      TEXT NOT NULL DEFAULT '',
	status     TEXT NOT NULL DEFAULT '',  -- the error of an ERROR flow
	total_rows INTEGER NOT NULL DEFAULT 0,
	rows_read  INTEGER NOT NULL DEFAULT 0,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (hunt_id, client_id)
);
