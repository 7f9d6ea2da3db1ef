-- The clients a hunt was limited to (Velociraptor labels to include and to
-- exclude, an OS), as JSON, decided when it was planned ('' : every client).
ALTER TABLE hunts ADD COLUMN scope TEXT NOT NULL DEFAULT '';
-- The scope of the routing rule that sent the case to its server ('' :
-- none), a part of each of its hunts' scope.
ALTER TABLE cases ADD COLUMN scope TEXT NOT NULL DEFAULT '';
