-- Issue 17, the response cache. cache: what the cache did for the request (hit, miss, bypass,
-- stored), NULL when caching was not in play. saved_usd: on a hit, what the answer would have
-- cost at the current prices (the hit's own cost_usd is 0); NULL otherwise.
ALTER TABLE usage ADD COLUMN cache TEXT;
ALTER TABLE usage ADD COLUMN saved_usd REAL;
