-- corrections: gold fixes applied, per correction × category × model, with the mean change in
-- answer length (a correction that strips pasted boilerplate shortens answers).
-- Relations:
--   corrections_log  corrections_log.parquet (trace_id, correction_id, category, model_id,
--                    old_answer, new_answer).
SELECT
    correction_id,
    category,
    model_id,
    count(*) AS n_rows,
    count(DISTINCT trace_id) AS n_traces,
    avg(length(new_answer) - length(old_answer)) AS mean_len_delta
FROM corrections_log
GROUP BY correction_id, category, model_id
ORDER BY correction_id, category, model_id;
