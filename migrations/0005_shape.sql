-- client_shape: the body shape a chat request arrived in ("chat", or "responses_in_chat" when
-- Cursor sent a Responses-API body to /chat/completions and the relay normalised it).
ALTER TABLE usage ADD COLUMN client_shape TEXT;
