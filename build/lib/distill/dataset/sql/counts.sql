-- counts: rows per category × model × model kind, with subtotals, over one dataset.
-- Relations:
--   dataset  any dataset parquet (scenarios, traces, grounded, corrected, split/*) with
--            category, model_id, model_kind.
-- Subtotal rows carry '(all)' in the columns they sum over: per category, per model kind, and the
-- grand total, so the balance of the grid is visible without a second query.
SELECT
    CASE WHEN grouping(category) = 1 THEN '(all)' ELSE category END AS category,
    CASE WHEN grouping(model_id) = 1 THEN '(all)' ELSE model_id END AS model_id,
    CASE WHEN grouping(model_kind) = 1 THEN '(all)' ELSE model_kind END AS model_kind,
    count(*) AS n_rows
FROM dataset
GROUP BY GROUPING SETS ((category, model_id, model_kind), (category), (model_kind), ())
ORDER BY grouping(category), category, grouping(model_id), grouping(model_kind), model_kind, model_id;
