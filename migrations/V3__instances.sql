-- Durable instances: their lifecycle row, checkpoints, signals and history.
--
-- The instance row is the source of truth. Every state change is one conditional UPDATE
-- on it (status and epoch in the WHERE clause), so two nodes or two wakes never both move
-- an instance. `wake_at` says when a pending or sleeping instance is due; `epoch` fences
-- the writes of stale dispatches; `node` and `lease_until` say who runs it and until when.

CREATE TABLE instances (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant           text NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    function         text NOT NULL,
    version          integer NOT NULL,
    input            jsonb NOT NULL,
    status           text NOT NULL CHECK (status IN
                         ('pending', 'running', 'sleeping', 'paused', 'completed', 'failed', 'cancelled')),
    epoch            bigint NOT NULL DEFAULT 0,
    attempt          integer NOT NULL DEFAULT 0,
    -- Dispatches in a row that ended without progress (crash, timeout); reset by progress.
    failures         integer NOT NULL DEFAULT 0,
    wake_at          timestamptz,
    waiting_for      text,
    node             text,
    lease_until      timestamptz,
    output           jsonb,
    error_code       text,
    error_message    text,
    idempotency_key  text,
    deadline_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

CREATE UNIQUE INDEX instances_idempotency ON instances (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The timer wheel's refill query and the claim of due instances.
CREATE INDEX instances_due ON instances (wake_at) WHERE status IN ('pending', 'sleeping');
-- Lease renewal and expiry of running instances.
CREATE INDEX instances_running ON instances (node, lease_until) WHERE status = 'running';
-- Listing a tenant's instances, newest first, and retention of finished ones.
CREATE INDEX instances_listing ON instances (tenant, created_at DESC, id DESC);
CREATE INDEX instances_finished ON instances (finished_at) WHERE finished_at IS NOT NULL;
-- Instance timeouts of live instances.
CREATE INDEX instances_deadline ON instances (deadline_at)
    WHERE status IN ('pending', 'running', 'sleeping', 'paused');

CREATE TABLE instance_checkpoints (
    instance_id  uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    key          text NOT NULL,
    value        jsonb NOT NULL,
    epoch        bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, key)
);

CREATE TABLE instance_signals (
    id           bigserial PRIMARY KEY,
    instance_id  uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    name         text NOT NULL,
    payload      jsonb NOT NULL DEFAULT 'null',
    consumed_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX instance_signals_pending ON instance_signals (instance_id, name, id) WHERE consumed_at IS NULL;

CREATE TABLE instance_events (
    id           bigserial PRIMARY KEY,
    instance_id  uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}',
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX instance_events_instance ON instance_events (instance_id, id);
