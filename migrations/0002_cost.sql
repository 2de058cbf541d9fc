-- cost_usd: computed at write time from the price table (src/prices.json, overridable with the
-- PRICES var); NULL when the model has no price, never a guess.
ALTER TABLE usage ADD COLUMN cost_usd REAL;
