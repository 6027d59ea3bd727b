-- gold_answers: the rows the suspect-gold check reads (distill.claims.suspect_gold runs on each).
-- Relations:
--   dataset  a dataset parquet with trace_id, category, model_id, model_kind, final_answer.
SELECT trace_id, category, model_id, model_kind, coalesce(final_answer, '') AS final_answer
FROM dataset
ORDER BY category, model_id, trace_id;
