-- suspect_gold: gold answers that contradict the registry (distill/workbench/registry.py), the
-- ground truth the teacher's boilerplate gets wrong. One row per (trace, issue).
-- Relations:
--   dataset   a dataset parquet with trace_id, category, model_id, final_answer
--             (grounded, corrected, split/*).
--   registry  registered by distill.diagnostics from registry.MODELS: model_id, kind (ml | rule),
--             options, data_source, key_terms (VARCHAR[]: regex alternations such as
--             'close|closing' naming the data fields a correct data-source answer mentions).
-- Issues:
--   unknown_model              model_id not in the registry.
--   split_claim_on_rule_model  a rule model (nothing is fitted) described with a train/test split,
--                              80/20, out-of-sample or held-out results.
--   no_split_on_ml_model       the ML model described as having no split or a full-period backtest.
--   data_source_missing_terms  a data_source answer that omits one of the model's data fields.
--   data_source_foreign_terms  a data_source answer naming fields only other models use.
-- Matching is on the lower-cased answer. Negated mentions ("no train/test split") are the correct
-- wording for rule models, so they are cut out before looking for a split claim.
WITH patterns AS (
    SELECT
        '\b(no|without|not|never)\b[a-z ]{0,30}?(train(ing)?\s*(/|-|and)\s*test(ing)?\s+)?(split|out[- ]of[- ]sample)'
            AS negated_split,
        '80\s*%?\s*(/|-|–)\s*20|train(ing)?\s*(/|-|and)\s*test|out[- ]of[- ]sample|held[- ]out|chronological split'
            AS split_claim,
        'full[- ]period backtest|nothing is fitted' AS no_fit_claim
),
answers AS (
    SELECT
        d.trace_id,
        d.category,
        d.model_id,
        r.kind AS model_kind,
        r.key_terms,
        d.final_answer,
        lower(coalesce(d.final_answer, '')) AS text,
        regexp_replace(lower(coalesce(d.final_answer, '')), p.negated_split, ' ', 'g') AS affirmed,
        p.*
    FROM dataset AS d
    LEFT JOIN registry AS r ON d.model_id = r.model_id
    CROSS JOIN patterns AS p
),
vocabulary AS (
    SELECT list_distinct(flatten(list(key_terms))) AS all_terms FROM registry
),
data_source_terms AS (
    SELECT
        a.*,
        list_filter(a.key_terms, lambda t: NOT regexp_matches(a.text, '\b(' || t || ')')) AS missing_terms,
        list_filter(v.all_terms, lambda t: NOT list_contains(a.key_terms, t)
                                            AND regexp_matches(a.text, '\b(' || t || ')')) AS foreign_terms
    FROM answers AS a
    CROSS JOIN vocabulary AS v
    WHERE a.category = 'data_source' AND a.model_kind IS NOT NULL
),
issues AS (
    SELECT *, 'unknown_model' AS issue, model_id AS detail
    FROM answers WHERE model_kind IS NULL
    UNION ALL BY NAME
    SELECT *, 'split_claim_on_rule_model' AS issue, regexp_extract(affirmed, split_claim) AS detail
    FROM answers WHERE model_kind = 'rule' AND regexp_matches(affirmed, split_claim)
    UNION ALL BY NAME
    SELECT *, 'no_split_on_ml_model' AS issue,
           coalesce(nullif(regexp_extract(text, negated_split), ''), regexp_extract(text, no_fit_claim)) AS detail
    FROM answers
    WHERE model_kind = 'ml'
      AND (regexp_matches(text, negated_split) OR regexp_matches(text, no_fit_claim))
    UNION ALL BY NAME
    SELECT *, 'data_source_missing_terms' AS issue, array_to_string(missing_terms, ', ') AS detail
    FROM data_source_terms WHERE len(missing_terms) > 0
    UNION ALL BY NAME
    SELECT *, 'data_source_foreign_terms' AS issue, array_to_string(foreign_terms, ', ') AS detail
    FROM data_source_terms WHERE len(foreign_terms) > 0
)
SELECT trace_id, category, model_id, model_kind, issue, detail, final_answer
FROM issues
ORDER BY issue, category, model_id, trace_id;
