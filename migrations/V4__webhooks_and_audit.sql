-- Webhook signature secrets per function, and the audit log of management actions.

CREATE TABLE function_webhooks (
    tenant       text NOT NULL,
    function     text NOT NULL,
    scheme       text NOT NULL CHECK (scheme IN ('github', 'stripe', 'hmac-sha256')),
    -- Kept as given: an HMAC can only be checked with the secret itself.
    secret       text NOT NULL,
    -- The generic scheme's header name; NULL for github and stripe.
    header       text,
    -- Stripe's timestamp tolerance in seconds; NULL for the other schemes.
    tolerance_s  integer,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, function),
    FOREIGN KEY (tenant, function) REFERENCES functions (tenant, name) ON DELETE CASCADE
);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    -- The tenant the action concerns; no foreign key: entries outlive a deleted tenant.
    tenant   text,
    actor    text NOT NULL,
    action   text NOT NULL,
    target   text NOT NULL,
    details  jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_tenant ON audit_log (tenant, id);
