-- What each source of a flow searched, as velohunt's artifacts report it in
-- their last rows: a host is clean only when every source that applies to
-- it searched something and reported no problem.
CREATE TABLE flow_coverage (
	hunt_id   INTEGER NOT NULL REFERENCES hunts(id),
	client_id TEXT NOT NULL,
	flow_id   TEXT NOT NULL,
	source    TEXT NOT NULL,
	unit      TEXT NOT NULL DEFAULT '',
	searched  INTEGER NOT NULL DEFAULT 0,
	problem   TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (hunt_id, client_id, flow_id, source)
);

-- Hunts launched before artifacts reported coverage expect none.
ALTER TABLE hunts ADD COLUMN expects_coverage INTEGER NOT NULL DEFAULT 1;
UPDATE hunts SET expects_coverage = 0;
