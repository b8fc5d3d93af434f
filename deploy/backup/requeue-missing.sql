-- Pictures recorded `ready` whose objects are gone from the bucket (it was
-- damaged or restored along with the database): marked `pending` again, as
-- if their job had been lost long ago, so that the reconciler of any app
-- replica queues them at its next round (docs/operations.md § Replay of
-- pictures after a restore). Their ids, comma-separated, in the variable ids:
--
--   psql "$DATABASE_URL" -v ids="$(paste -sd, missing.txt)" -f requeue-missing.sql
--
-- Only `ready` rows change: a picture pending or failed is left as it is.
-- tests/integration/test_restore_drill.py runs this file.
\set ON_ERROR_STOP on
UPDATE figalization
SET image_status = 'pending',
    image_key = NULL,
    image_queued_at = now() - interval '1 day'
WHERE id = ANY (string_to_array(:'ids', ','))
  AND image_status = 'ready';
