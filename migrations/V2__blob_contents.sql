-- Executables live in PostgreSQL too, so every node can materialise any version locally.

CREATE TABLE blobs (
    digest      text PRIMARY KEY,
    content     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
