-- Key records for the admin API (KV keeps the copy the request path reads, keyed by hash) and
-- the audit log of admin actions; plus indexes so usage reports stay fast at a million rows.
CREATE TABLE IF NOT EXISTS keys (
  id         TEXT PRIMARY KEY,
  hash       TEXT NOT NULL UNIQUE,
  team       TEXT NOT NULL,
  user       TEXT NOT NULL,
  status     TEXT NOT NULL,
  created_at TEXT NOT NULL,
  record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS keys_created ON keys (created_at, id);
CREATE INDEX IF NOT EXISTS keys_team_user ON keys (team, user, created_at);

CREATE TABLE IF NOT EXISTS audit (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      TEXT NOT NULL,
  action  TEXT NOT NULL,
  key_id  TEXT,
  changes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_key_at ON audit (key_id, at);

CREATE INDEX IF NOT EXISTS usage_user_started ON usage (user, started_at);
CREATE INDEX IF NOT EXISTS usage_model_started ON usage (model_requested, started_at);
CREATE INDEX IF NOT EXISTS usage_provider_started ON usage (provider, started_at);
