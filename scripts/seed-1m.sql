-- Seeds N rows (psql -v n=1000000) into django_ray_raytaskexecution of the current
-- search_path, shaped like a long-running production table during an incident:
-- ~93% SUCCEEDED spread over 30 days, failures with Python tracebacks, a QUEUED backlog,
-- some RUNNING/CANCELLING/LOST rows, 6 queues and 40 callables, and leases.
-- Used by the `rayctl top refresh at 1,000,000 rows` measurement in docs/benchmarks.md.
\set ON_ERROR_STOP on
SET synchronous_commit = off;
INSERT INTO django_ray_raytaskexecution
  (task_id, callable_path, queue_name, state, attempt_number, ray_job_id, ray_address, created_at,
   started_at, finished_at, last_heartbeat_at, run_after, timeout_seconds, claimed_by_worker,
   args_json, kwargs_json, result_data, result_reference, error_message, error_traceback)
SELECT md5(g::text)::uuid::text,
       'app.tasks.job_' || (g % 40),
       (ARRAY['default','high-priority','emails','reports','batch','webhooks'])[1 + g % 6],
       st,
       CASE WHEN st IN ('FAILED','LOST') THEN 3 ELSE 1 END,
       CASE WHEN st <> 'QUEUED' THEN 'raysubmit_' || md5(g::text) END,
       'auto',
       created,
       CASE WHEN st <> 'QUEUED' THEN created + interval '2 seconds' END,
       CASE WHEN st IN ('SUCCEEDED','FAILED','LOST','CANCELLED') THEN created + interval '5 seconds' END,
       CASE WHEN st IN ('SUCCEEDED','FAILED','LOST','RUNNING','CANCELLING') THEN created + interval '4 seconds' END,
       CASE WHEN st = 'QUEUED' AND g % 10 = 0 THEN now() + interval '10 minutes' END,
       NULL,
       CASE WHEN st IN ('RUNNING','CANCELLING','SUCCEEDED','FAILED','LOST') THEN 'worker-' || (g % 4) END,
       '[' || g || ', "x"]', '{"n": ' || (g % 100) || '}',
       CASE WHEN st = 'SUCCEEDED' THEN '{"ok": true, "n": ' || g || '}' END,
       NULL,
       CASE WHEN st = 'FAILED' THEN 'invalid literal for int() with base 10: ''' || g || ''''
            WHEN st = 'LOST' THEN 'Task marked as LOST due to missing heartbeats' END,
       CASE WHEN st = 'FAILED' THEN 'Traceback (most recent call last):' || repeat(E'\n  File "/app/tasks.py", line 42, in job\n    return int(x)', 12)
            || E'\nValueError: invalid literal for int() with base 10: ''' || g || '''' END
FROM (
  SELECT g,
         now() - make_interval(secs => (:n - g) * (30 * 86400.0 / :n)) AS created,
         CASE WHEN g > :n - 20000 THEN 'QUEUED'          -- the newest 20,000: backlog
              WHEN g > :n - 20200 THEN 'RUNNING'
              WHEN g % 1000 = 7 THEN 'CANCELLING'
              WHEN g % 31 = 0 THEN 'FAILED'
              WHEN g % 197 = 0 THEN 'LOST'
              WHEN g % 101 = 0 THEN 'CANCELLED'
              ELSE 'SUCCEEDED' END AS st
  FROM generate_series(1, :n) AS g
) s;
-- recent activity: the last 15 minutes of completions (SUCCEEDED/FAILED) at ~60/min
UPDATE django_ray_raytaskexecution SET finished_at = now() - make_interval(secs => (id % 900)),
       last_heartbeat_at = now() - make_interval(secs => (id % 900) + 1)
 WHERE id IN (SELECT id FROM django_ray_raytaskexecution WHERE state IN ('SUCCEEDED','FAILED')
              ORDER BY id DESC LIMIT 900);
INSERT INTO django_ray_taskworkerlease (worker_id, hostname, pid, queue_name, started_at, last_heartbeat_at, is_active, stopped_at)
SELECT 'worker-' || i, 'host-' || i, 1000 + i, 'default', now() - interval '1 day',
       now() - CASE WHEN i = 3 THEN interval '10 minutes' ELSE interval '5 seconds' END, i < 4, NULL
FROM generate_series(0, 5) i;
VACUUM ANALYZE django_ray_raytaskexecution;
VACUUM ANALYZE django_ray_taskworkerlease;
