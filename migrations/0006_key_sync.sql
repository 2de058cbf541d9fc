-- retired_hashes: a JSON array of key hashes a rotation moved away from whose KV entries may
-- still exist (the KV delete failed or has not run yet); every later sync deletes them again,
-- and a sync that succeeds empties the list (README: "Admin API", revocation and rotation).
ALTER TABLE keys ADD COLUMN retired_hashes TEXT NOT NULL DEFAULT '[]';
