-- refused: requests answered 429 because their client address had failed too often (bad or
-- missing relay keys, wrong admin tokens, unknown paths), counted per minute instead of one
-- usage row each, so a flood costs a bounded number of D1 writes (README: "Usage rows").
CREATE TABLE IF NOT EXISTS refused (
  window_start TEXT NOT NULL,
  reason       TEXT NOT NULL,
  count        INTEGER NOT NULL,
  PRIMARY KEY (window_start, reason)
);
