-- saturation: how many distinct questions, gold plans and gold answers each category really holds.
-- Templates are few, so a category can have many rows but only a dozen unique questions
-- (methodology), and data_source questions differ only by ticker while sharing one gold plan and
-- one answer per model; a high rows_per_plan means the student sees the same lesson over and over.
-- Relations:
--   dataset  a dataset parquet with category, template_id, question, gold_calls, final_answer.
-- Questions are compared after lower-casing and collapsing whitespace.
SELECT
    category,
    count(*) AS n_rows,
    count(DISTINCT template_id) AS n_templates,
    count(DISTINCT regexp_replace(lower(trim(question)), '\s+', ' ', 'g')) AS n_unique_questions,
    count(DISTINCT gold_calls) AS n_unique_plans,
    count(DISTINCT final_answer) AS n_unique_answers,
    count(*) / count(DISTINCT regexp_replace(lower(trim(question)), '\s+', ' ', 'g')) AS rows_per_question,
    count(*) / count(DISTINCT gold_calls) AS rows_per_plan
FROM dataset
GROUP BY category
ORDER BY rows_per_plan DESC, category;
