-- attempts: upstream calls made for the request (retries and fallbacks across targets).
ALTER TABLE usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
