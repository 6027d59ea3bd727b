-- overlap: how held out the held-out set is. For each category (and '(all)'), the held-out rows and
-- distinct questions, and how many held-out rows share with some training row (any category) their
-- question text, their whole gold plan, their gold answer, or at least one single gold call.
-- A split grouped by gold plan (split.group_by) keeps the first three at 0; single calls can still
-- be shared (a what-if plan starts with the performance question's backtest).
-- Relations:
--   train, eval  split/train.parquet and split/eval.parquet (question, gold_calls, final_answer).
-- Questions are compared after lower-casing and collapsing whitespace.
WITH train_calls AS (
    SELECT DISTINCT unnest(json_transform(gold_calls, '["JSON"]'))::VARCHAR AS call FROM train
),
held AS (
    SELECT
        e.category,
        e.question,
        regexp_replace(lower(trim(e.question)), '\s+', ' ', 'g') IN
            (SELECT regexp_replace(lower(trim(question)), '\s+', ' ', 'g') FROM train) AS question_in_train,
        e.gold_calls IN (SELECT gold_calls FROM train) AS plan_in_train,
        e.final_answer IN (SELECT final_answer FROM train) AS answer_in_train,
        EXISTS (
            SELECT 1 FROM (SELECT unnest(json_transform(e.gold_calls, '["JSON"]'))::VARCHAR AS call) AS c
            WHERE c.call IN (SELECT call FROM train_calls)
        ) AS call_in_train
    FROM eval AS e
)
SELECT
    CASE WHEN grouping(category) = 1 THEN '(all)' ELSE category END AS category,
    count(*) AS eval_rows,
    count(DISTINCT question) AS eval_questions,
    count(*) FILTER (WHERE question_in_train) AS same_question,
    count(*) FILTER (WHERE plan_in_train) AS same_gold_plan,
    count(*) FILTER (WHERE answer_in_train) AS same_gold_answer,
    count(*) FILTER (WHERE call_in_train) AS shares_a_gold_call
FROM held
GROUP BY GROUPING SETS ((category), ())
ORDER BY grouping(category), category;
