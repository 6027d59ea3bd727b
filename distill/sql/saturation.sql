-- saturation: how many distinct questions each category really holds. Templates are few, so a
-- category can have many rows but only a dozen unique questions (methodology); a high
-- rows_per_question means the student sees the same question over and over.
-- Relations:
--   dataset  a dataset parquet with category, template_id, question.
-- Questions are compared after lower-casing and collapsing whitespace.
SELECT
    category,
    count(*) AS n_rows,
    count(DISTINCT template_id) AS n_templates,
    count(DISTINCT regexp_replace(lower(trim(question)), '\s+', ' ', 'g')) AS n_unique_questions,
    count(*) / count(DISTINCT regexp_replace(lower(trim(question)), '\s+', ' ', 'g')) AS rows_per_question
FROM dataset
GROUP BY category
ORDER BY rows_per_question DESC, category;
