-- The launcher that holds a hunt's launch claim, and when it claimed it: a
-- launcher that finds the holder gone takes the hunt over before the lease
-- ends ('' : unknown, the lease alone ends the claim).
ALTER TABLE hunts ADD COLUMN launch_holder TEXT NOT NULL DEFAULT '';
ALTER TABLE hunts ADD COLUMN launch_claimed_at INTEGER NOT NULL DEFAULT 0;
