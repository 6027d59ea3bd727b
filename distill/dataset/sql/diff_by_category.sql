-- diff_by_category: per category, rows old/new, rows added/removed/changed, and mean answer
-- length old/new with its delta (corrections that strip boilerplate show as a negative delta).
-- Relations:
--   old, new  two dataset parquet files with trace_id, category, final_answer.
-- Rows are matched on trace_id; a row's category is taken from `new` when it exists there.
WITH joined AS (
    SELECT
        coalesce(n.category, o.category) AS category,
        o.trace_id AS old_id,
        n.trace_id AS new_id,
        o.final_answer AS old_answer,
        n.final_answer AS new_answer
    FROM old AS o
    FULL OUTER JOIN new AS n ON o.trace_id = n.trace_id
)
SELECT
    category,
    count(old_id) AS rows_old,
    count(new_id) AS rows_new,
    count(*) FILTER (WHERE old_id IS NULL) AS n_added,
    count(*) FILTER (WHERE new_id IS NULL) AS n_removed,
    count(*) FILTER (WHERE old_id IS NOT NULL AND new_id IS NOT NULL
                       AND old_answer IS DISTINCT FROM new_answer) AS n_changed,
    avg(length(old_answer)) AS mean_len_old,
    avg(length(new_answer)) AS mean_len_new,
    avg(length(new_answer)) - avg(length(old_answer)) AS mean_len_delta
FROM joined
GROUP BY category
ORDER BY category;
