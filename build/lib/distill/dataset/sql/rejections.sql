-- rejections: rows the grounding filter dropped, by reason × category, with a total per reason.
-- Relations:
--   rejected  grounding_rejected.parquet (grounded columns + reason:
--             teacher_error | no_final_answer | tool_error | ungrounded_number).
SELECT
    reason,
    CASE WHEN grouping(category) = 1 THEN '(all)' ELSE category END AS category,
    count(*) AS n_rows
FROM rejected
GROUP BY GROUPING SETS ((reason, category), (reason))
ORDER BY reason, grouping(category), category;
