-- response_id: the `resp_…` id of the OpenAI response a `/v1/responses` request created (from
-- the answer's `id`, or the stream's `response.created`). The stored-response routes read it to
-- answer only the key that created the response (README: "Responses API"). Partial index: most
-- rows have none.
ALTER TABLE usage ADD COLUMN response_id TEXT;
CREATE INDEX IF NOT EXISTS usage_response_id ON usage (response_id) WHERE response_id IS NOT NULL;
