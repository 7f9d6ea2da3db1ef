-- The clients a hunt was limited to (Velociraptor labels to include and to
-- exclude, an OS), as JSON, decided when it was planned ('' : every client).
ALTER TABLE hunts ADD COLUMN scope TEXT NOT NULL DEFAULT '';
