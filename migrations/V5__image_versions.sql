-- Versions built from container images: `image` describes the image (its reference, layers,
-- process and unpacked size); NULL for static executables, whose bytes are in `blobs`.
-- An image version's digest is the hex sha256 of its image config.

ALTER TABLE function_versions ADD COLUMN image jsonb;
