-- Covering indexes on the child tables are SQLite's alone (see migrations/sqlite):
-- this backend cannot index whole TEXT values. Kept so every backend has the same versions.
SELECT 1;
