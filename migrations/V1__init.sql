-- Tenants, their JWT verification keys, functions and their content-addressed versions.

CREATE TABLE tenants (
    name        text PRIMARY KEY,
    issuer      text NOT NULL,
    audience    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenant_keys (
    tenant      text NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    kid         text NOT NULL,
    algorithm   text NOT NULL,
    -- HS256: the shared secret; RS256/ES256/EdDSA: the public key in PEM.
    material    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, kid)
);

CREATE TABLE functions (
    tenant          text NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    name            text NOT NULL,
    current_version integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

CREATE TABLE function_versions (
    tenant      text NOT NULL,
    function    text NOT NULL,
    version     integer NOT NULL,
    digest      text NOT NULL,
    size_bytes  bigint NOT NULL,
    settings    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, function, version),
    FOREIGN KEY (tenant, function) REFERENCES functions (tenant, name) ON DELETE CASCADE
);

CREATE INDEX function_versions_digest ON function_versions (digest);
