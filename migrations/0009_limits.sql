-- Spend and rate limits (issue 16). User and team limits: D1 is the admin API's source of
-- truth, KV holds the copy the request path reads (limits:user:TEAM/USER, limits:team:TEAM).
-- A key's limits live in its record. The spend itself lives in one Durable Object per scope.
CREATE TABLE IF NOT EXISTS limits (
  scope      TEXT PRIMARY KEY,
  kind       TEXT NOT NULL,
  team       TEXT NOT NULL,
  user       TEXT,
  limits     TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS limits_team_user ON limits (team, user);

-- A request refused by a limit leaves one row with outcome = 'limited' and these two set.
ALTER TABLE usage ADD COLUMN limit_scope TEXT;
ALTER TABLE usage ADD COLUMN limit_name TEXT;
