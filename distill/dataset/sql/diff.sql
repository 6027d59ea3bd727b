-- diff: rows added, removed, or with a changed final answer between two dataset parquet files.
-- Relations:
--   old, new  two dataset parquet files with trace_id, category, final_answer
--             (e.g. grounded → corrected, or last week's corrected → this week's).
-- Unchanged rows are left out; a row's category is taken from `new` when it exists there.
SELECT
    coalesce(n.trace_id, o.trace_id) AS trace_id,
    coalesce(n.category, o.category) AS category,
    CASE
        WHEN o.trace_id IS NULL THEN 'added'
        WHEN n.trace_id IS NULL THEN 'removed'
        ELSE 'changed'
    END AS change,
    length(o.final_answer) AS old_len,
    length(n.final_answer) AS new_len,
    o.final_answer AS old_answer,
    n.final_answer AS new_answer
FROM old AS o
FULL OUTER JOIN new AS n ON o.trace_id = n.trace_id
WHERE o.trace_id IS NULL
   OR n.trace_id IS NULL
   OR o.final_answer IS DISTINCT FROM n.final_answer
ORDER BY change, category, trace_id;
