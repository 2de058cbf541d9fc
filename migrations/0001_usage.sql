-- One row per request that reached the relay (protocol.md §9.2). Written by the worker from
-- ctx.waitUntil as an upsert keyed by request_id, so a provisional row can be replaced by the
-- final tally and a retried write never double-counts.
CREATE TABLE IF NOT EXISTS usage (
  request_id          TEXT PRIMARY KEY,
  key_id              TEXT,
  team                TEXT,
  user                TEXT,
  method              TEXT NOT NULL,
  route               TEXT NOT NULL,
  model_requested     TEXT,
  model_upstream      TEXT,
  provider            TEXT,
  stream              INTEGER NOT NULL DEFAULT 0,
  status              INTEGER NOT NULL,
  outcome             TEXT NOT NULL,
  error_code          TEXT,
  finish_reason       TEXT,
  prompt_tokens       INTEGER NOT NULL DEFAULT 0,
  completion_tokens   INTEGER NOT NULL DEFAULT 0,
  cached_tokens       INTEGER NOT NULL DEFAULT 0,
  cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
  usage_source        TEXT NOT NULL,
  upstream_request_id TEXT,
  started_at          TEXT NOT NULL,
  ttfb_ms             INTEGER,
  duration_ms         INTEGER NOT NULL,
  settled             INTEGER NOT NULL DEFAULT 1
);

CREATE INDEX IF NOT EXISTS usage_started_at ON usage (started_at);
CREATE INDEX IF NOT EXISTS usage_key_started ON usage (key_id, started_at);
CREATE INDEX IF NOT EXISTS usage_team_started ON usage (team, started_at);
