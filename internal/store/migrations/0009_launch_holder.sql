-- The process that holds a hunt's launch claim: a launcher that finds the
-- holder gone takes the hunt over before the lease ends ('' : unknown).
ALTER TABLE hunts ADD COLUMN launch_holder TEXT NOT NULL DEFAULT '';
