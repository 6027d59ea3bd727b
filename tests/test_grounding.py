"""One test per grounding rule and per exclusion, each with grounded and ungrounded cases."""
import json

import pandas as pd
import pytest

from distill.dataset.grounding import (
    REASONS,
    GroundingResult,
    check_trace,
    cited_numbers,
    filter_traces,
    ungrounded_numbers,
)


def grounded(answer: str, *outputs: str) -> bool:
    return ungrounded_numbers(answer, list(outputs)) == []


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("Sharpe was 1.2345.", '{"sharpe": 1.2345}', True),  # literal
        ("Sharpe was 1.2345.", '{"sharpe": 1.2346}', False),
        ("Sharpe was 1.23.", '{"sharpe": 1.2345}', True),  # source rounded to answer precision
        ("Sharpe was 1.24.", '{"sharpe": 1.2345}', False),
        ("Sharpe was 1.235.", '{"sharpe": 1.2345}', True),  # either tie direction
        ("Sharpe was 1.2.", '{"sharpe": 1.26}', False),
        ("Sharpe was 1.2300.", '{"sharpe": 1.23}', True),  # answer finer than source
    ],
)
def test_rounding_source_to_answer_precision(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("Return 12.5%.", '{"ret": 0.125}', True),
        ("Return 12.5%.", '{"ret": 0.126}', False),
        ("Return 12.3%.", '{"ret": 0.12345}', True),
        ("Return 12%.", '{"ret": 0.1234}', True),
        ("Return 13%.", '{"ret": 0.1234}', False),
        ("Return 12.5 percent.", '{"ret": 0.125}', True),
        ("Return 0.125.", '{"note": "return was 12.5%"}', True),  # source percent -> fraction
        ("Return 0.14.", '{"note": "return was 12.5%"}', False),
        ("Return 12.5%.", '{"return_pct": 12.5}', True),  # source already in percent
        ("Return 12.5.", '{"ret": 0.125}', False),  # no % written: no scaling
    ],
)
def test_percent_fraction(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("Equity ended at 1,234.5.", '{"equity": 1234.5}', True),
        ("Equity ended at 1234.5.", '{"equity": "1,234.5"}', True),
        ("Equity ended at 1,234.5.", '{"equity": 1243.5}', False),
        ("Equity ended at 1,234,567.", '{"equity": 1234567}', True),
        ("Values 1 and 234.", "[1,234]", True),  # compact JSON is read both ways
    ],
)
def test_thousands_separators(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("PnL of $1,234.", '{"pnl": 1234}', True),
        ("PnL of €1,234.", '{"pnl": 1234}', True),
        ("PnL of £12.", '{"pnl": 12.0}', True),
        ("PnL of USD 1,234.", '{"pnl": 1234}', True),
        ("PnL of 1,234 USD.", '{"pnl": 1234}', True),
        ("PnL of $1,235.", '{"pnl": 1234}', False),
    ],
)
def test_currency_symbols(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("PnL of $1.2k.", '{"pnl": 1234}', True),
        ("PnL of $1.2K.", '{"pnl": 1234}', True),
        ("PnL of $1.3k.", '{"pnl": 1234}', False),
        ("Volume 3.4M.", '{"volume": 3400000}', True),
        ("Volume 3.4 million.", '{"volume": "3,400,000"}', True),
        ("Volume 3.4M.", '{"volume": 3500000}', False),
        ("AUM 2.1B.", '{"aum": 2.1e9}', True),
        ("AUM 2.1bn.", '{"aum": 2100000000}', True),
        ("AUM 2.1B.", '{"aum_busd": 2.1}', True),  # literal: units in the field name
        ("Volume 3.4M.", '{"note": "volume 3.4M"}', True),
    ],
)
def test_magnitude_suffixes(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("Fees of 25 bps.", '{"fee": 0.0025}', True),
        ("Fees of 25bp.", '{"fee": 0.0025}', True),
        ("Fees of 25 basis points.", '{"fee": 0.0025}', True),
        ("Fees of 25 bps.", '{"fee_bps": 25}', True),  # source already in bps
        ("Fees of 25 bps.", '{"fee": 0.003}', False),
        ("Fees of 25 bps.", '{"fee": 0.25}', False),
        ("Fees of 25 bps.", '{"note": "fee 0.25%"}', True),
        ("Fees of 25-bps.", '{"fee": 0.0025}', True),  # hyphen-joined unit
        ("Fees of 25-bps.", '{"fee": 0.003}', False),
        ("Fee 0.25%.", '{"note": "fee 25-bps"}', True),  # a hyphen-joined unit in a source too
        ("Fee 0.25%.", '{"note": "fee 25-day"}', False),
    ],
)
def test_basis_points(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("A drawdown of 3.4%.", '{"max_drawdown": -0.034}', True),
        ("Max drawdown -3.4%.", '{"max_drawdown": -0.034}', True),
        ("Max drawdown −3.4%.", '{"max_drawdown": -0.034}', True),  # unicode minus
        ("Max drawdown -3.4%.", '{"max_drawdown": 0.034}', True),  # absolute values, both ways
        ("Max drawdown +3.4%.", '{"max_drawdown": -0.034}', True),
        ("Max drawdown -3.5%.", '{"max_drawdown": -0.034}', False),
    ],
)
def test_sign_compared_by_absolute_value(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("Profit factor 1.5x.", '{"profit_factor": 1.5}', True),
        ("Profit factor 1.5x.", '{"profit_factor": 1.7}', False),
        ("Tiny 1.5e-4.", '{"v": 0.00015}', True),
        ("Tiny 1.5e-4.", '{"v": 0.00016}', False),
    ],
)
def test_multipliers_and_scientific(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("It made 12 trades.", '{"n_trades": 12}', True),
        ("It made 12 trades.", '{"n_trades": 13}', False),
        ("It made 12 trades.", "not json at all: 12 trades", True),  # any text
        ("It made 12 trades.", "{broken json 13", False),
    ],
)
def test_counts_are_cited(answer, source, ok):
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer",
    [
        "From 2020-01-02 to 2020/01/02.",
        "From 01/02/2020 to 02.01.2020.",
        "From Jan 2, 2020 to 2 March 2021.",
        "Since March 2021, opens at 09:30.",
        "Over 2019-2021 as of 2020-01-02T00:00:00Z.",
        "Trained on December 31st data.",
    ],
)
def test_dates_are_not_cited(answer):
    assert cited_numbers(answer) == []
    assert grounded(answer)


@pytest.mark.parametrize(
    "answer, cited",
    [
        ("Data since 2015.", []),
        ("In 1900 and 2100.", []),
        ("Over 1899 days.", ["1899"]),  # outside the year range
        ("Equity 2,050.", ["2,050"]),  # separators make it an amount
        ("Spent $2050.", ["$2050"]),
        ("Return 2020%.", ["2020%"]),
    ],
)
def test_years_are_not_cited(answer, cited):
    assert cited_numbers(answer) == cited


@pytest.mark.parametrize(
    "answer",
    [
        "Uses GARCH(1,1) and SMA(20).",
        "Features SMA_20, epoch_3 and RSI14.",
        "Student is Qwen2.5-7B on x86_64 hardware.",  # neither 2.5 nor 7B
        "Execution at t+1 and T+2.",
        "Compared GPT-4 with a COVID-19 era regime.",
        "Trained in the post-COVID-19 period.",  # the whole hyphen-joined word is the identifier
        "An 80/20 train/eval split.",
        "Served with 5m bars.",
        "Run v2 on H100 for Q1.",
        "Over 2019-2021.",  # hyphen-joined years are still years
    ],
)
def test_identifiers_are_not_cited(answer):
    assert cited_numbers(answer) == []
    assert grounded(answer)


def test_identifier_does_not_hide_stated_value():
    answer = "Uses SMA_20, i.e. a window of 20 days."
    assert cited_numbers(answer) == ["20"]
    assert not grounded(answer, '{"note": "none"}')
    assert grounded(answer, '{"window": 20}')


@pytest.mark.parametrize(
    "answer, cited",
    [
        ("1. Return is 12.5%\n2. Sharpe is 1.2", ["12.5%", "1.2"]),
        ("1) first\n  2) second", []),
        ("> 3. quoted list item", []),
        ("## 2. Results\n**3.** item", []),
        ("Steps: (1) load, (2) fit, (12) save.", []),
        ("12.5% at line start", ["12.5%"]),
    ],
)
def test_list_markers_are_not_cited(answer, cited):
    assert cited_numbers(answer) == cited


@pytest.mark.parametrize(
    "answer, cited",
    [
        ("The 1st and 2nd legs, the 3rd and 4th.", []),
        ("Rank 3 of 5.", ["3", "5"]),
    ],
)
def test_ordinals_are_not_cited(answer, cited):
    assert cited_numbers(answer) == cited


@pytest.mark.parametrize(
    "answer, cited",
    [
        ("Called `backtest(window=20, fee=0.001)`.", []),
        ("```python\nrun(lr=3e-4, epochs=3)\n```\nReturn 12.5%.", ["12.5%"]),
        ("Set `window` to 20.", ["20"]),
    ],
)
def test_code_spans_are_not_cited(answer, cited):
    assert cited_numbers(answer) == cited


@pytest.mark.parametrize(
    "answer, cited",
    [
        ("Range 10–20% (en dash).", ["10", "20%"]),
        ("Range 12.5%-15% is hyphen-joined.", ["12.5%", "15%"]),
        ("**12.5%** and (0.125), then 7.", ["12.5%", "0.125", "7"]),
        ("Drawdown of -$1.2k or $-1.2k.", ["-$1.2k", "$-1.2k"]),
        ("Fee 25 bps; 3.4 million; 1,234 USD", ["25 bps", "3.4 million", "1,234 USD"]),
        ("Paid USD1,000, then $-1.2k.", ["USD1,000", "$-1.2k"]),
    ],
)
def test_cited_tokens_as_written(answer, cited):
    assert cited_numbers(answer) == cited


@pytest.mark.parametrize(
    "answer, cited",
    [
        ("Hit rate about 45.3%-ish.", ["45.3%"]),
        ("Returns between 12%-99%.", ["12%", "99%"]),  # the hyphen is a joiner, not a minus
        ("A 99.9%-accurate model.", ["99.9%"]),
        ("Fees of 25-bps.", ["25-bps"]),  # the unit is kept, as written
        ("A 20-day window with a 30-day lookback.", ["20", "30"]),
        ("Hyphen range 10-20 is descriptive.", ["10", "20"]),
        ("PnL $1.2k-$1.5k.", ["$1.2k", "$1.5k"]),
        ("A 3-to-1 ratio.", ["3", "1"]),  # starts with a digit: not an identifier
        ("Drawdown -3.4%, a drawdown of -3.4%.", ["-3.4%", "-3.4%"]),  # a leading minus is a sign
    ],
)
def test_hyphen_joined_numbers_are_cited(answer, cited):
    assert cited_numbers(answer) == cited


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("Hit rate about 45.3%-ish.", None, False),
        ("Hit rate about 45.3%-ish.", '{"hit_rate": 0.453}', True),
        ("Hit rate about 45.3%-ish.", '{"hit_rate": 0.463}', False),
        ("Returns between 12%-99%.", '{"lo": 0.12, "hi": 0.99}', True),
        ("Returns between 12%-99%.", '{"lo": 0.12}', False),
        ("A 99.9%-accurate model.", '{"accuracy": 0.999}', True),
        ("A 99.9%-accurate model.", '{"accuracy": 0.99}', False),
        ("Fees of 25-bps.", '{"fee_bps": 25}', True),  # literal
        ("Fees of 25-bps.", '{"fee": 0.0025}', True),  # scaled like "25 bps"
        ("Fees of 25-bps.", '{"fee": 0.25}', False),
        ("Fees of 25-bps.", None, False),
        ("A 20-day window with a 30-day lookback.", '{"window": 20, "lookback": 30}', True),
        ("A 20-day window with a 30-day lookback.", '{"window": 20}', False),
        ("Hyphen range 10-20 is descriptive.", '{"lo": 10, "hi": 20}', True),
        ("Hyphen range 10-20 is descriptive.", '{"hi": -20}', False),  # 10 is still missing
    ],
)
def test_hyphen_joined_numbers_must_be_grounded(answer, source, ok):
    outputs = [] if source is None else [source]
    assert (ungrounded_numbers(answer, outputs) == []) is ok


@pytest.mark.parametrize(
    "answer, outputs, expected",
    [
        ("Hit rate about 45.3%-ish.", [], ["45.3%"]),
        ("Returns between 12%-99%.", [], ["12%", "99%"]),
        ("A 99.9%-accurate model.", [], ["99.9%"]),
        ("Fees of 25-bps.", [], ["25-bps"]),
        ("A 20-day window with a 30-day lookback.", ['{"window": 20}'], ["30"]),
        ("Hyphen range 10-20 is descriptive.", ['{"lo": 10}'], ["20"]),
    ],
)
def test_hyphen_joined_numbers_reported_as_written(answer, outputs, expected):
    assert ungrounded_numbers(answer, outputs) == expected


def test_ungrounded_in_order_and_deduplicated():
    answer = "Sharpe 9.9, return 7%, Sharpe 9.9 again, drawdown 3.4%, 12 trades."
    outputs = ['{"max_drawdown": -0.034, "n_trades": 12}']
    assert ungrounded_numbers(answer, outputs) == ["9.9", "7%"]


def test_numbers_from_any_output_count():
    outputs = ['{"sharpe": 1.2}', '{"error": "ignored"}', "plain text 0.125"]
    assert grounded("Sharpe 1.2 and 12.5%.", *outputs)


def test_dates_in_sources_do_not_support_numbers():
    assert not grounded("It made 2 trades.", '{"start": "2020-01-02"}')


@pytest.mark.parametrize(
    "answer, outputs, expected",
    [
        (None, ['{"sharpe": 1.2}'], GroundingResult(False, "no_final_answer", [])),
        ("  \n", ['{"sharpe": 1.2}'], GroundingResult(False, "no_final_answer", [])),
        # ungrounded is still reported on tool_error, for diagnostics
        ("Sharpe 1.2.", ['{"error": "unknown model"}'], GroundingResult(False, "tool_error", ["1.2"])),
        ("Done.", ['{"error": "x"}', '{"error": "y"}'], GroundingResult(False, "tool_error", [])),
        ("Sharpe 1.2.", ['{"error": "x"}', '{"sharpe": 1.2}'], GroundingResult(True, None, [])),
        ("Sharpe 1.2.", ['["error"]'], GroundingResult(False, "ungrounded_number", ["1.2"])),
        ("Sharpe 1.3.", ['{"sharpe": 1.2}'], GroundingResult(False, "ungrounded_number", ["1.3"])),
        ("No numbers here.", [], GroundingResult(True, None, [])),
        ("Sharpe 1.2.", [], GroundingResult(False, "ungrounded_number", ["1.2"])),
    ],
)
def test_check_trace(answer, outputs, expected):
    result = check_trace(answer, outputs)
    assert result == expected
    assert result.reason is None or result.reason in REASONS


def test_filter_traces_splits_and_preserves_order():
    df = pd.DataFrame(
        {
            "trace_id": ["a", "b", "c", "d", "e"],
            "final_answer": ["Sharpe 1.2.", "Sharpe 1.3.", None, "Sharpe 1.2.", "Done."],
            "tool_outputs": [
                json.dumps(['{"sharpe": 1.2}']),
                json.dumps(['{"sharpe": 1.2}']),
                json.dumps([]),
                json.dumps(['{"error": "boom"}']),
                None,
            ],
        }
    )
    kept, rejected = filter_traces(df)
    assert kept["trace_id"].tolist() == ["a", "e"]
    assert kept["ungrounded"].tolist() == ["[]", "[]"]
    assert "reason" not in kept.columns
    assert rejected["trace_id"].tolist() == ["b", "c", "d"]
    assert rejected["reason"].tolist() == ["ungrounded_number", "no_final_answer", "tool_error"]
    assert json.loads(rejected["ungrounded"].iloc[0]) == ["1.3"]
    assert list(df.columns) == ["trace_id", "final_answer", "tool_outputs"]  # input untouched


def test_filter_traces_empty_frame():
    df = pd.DataFrame({"final_answer": pd.Series(dtype=object), "tool_outputs": pd.Series(dtype=object)})
    kept, rejected = filter_traces(df)
    assert len(kept) == len(rejected) == 0
    assert "ungrounded" in kept.columns and "reason" in rejected.columns


def test_filter_traces_rejects_tool_outputs_that_are_no_list():
    df = pd.DataFrame({"final_answer": ["Sharpe 1.2."], "tool_outputs": [{"sharpe": 1.2}]})
    with pytest.raises(TypeError, match="expected a JSON list, got dict"):
        filter_traces(df)
    df = pd.DataFrame({"final_answer": ["Sharpe 1.2."], "tool_outputs": ['{"sharpe": 1.2}']})
    with pytest.raises(TypeError, match="got JSON dict"):
        filter_traces(df)


FEES = '{"fees_paid": "$4,879.78", "total_return": "13.4%", "n_trades": 57, "sharpe": "1.90"}'


@pytest.mark.parametrize(
    "answer, ok",
    [
        ("It paid $4,879.78 in fees.", True),
        ("It paid 4,879.78 in fees.", True),  # the amount without its currency sign
        ("It paid $879.78 in fees.", False),  # a separator makes one number, not 4 and 879.78
        ("It paid $4,879 in fees.", False),
        ("It ran for 4 years.", False),  # a count from the money's leading digits
        ("It made 97 trades.", False),
        ("It made 57 trades.", True),
        ("It made 13 trades.", False),  # never a count from a percent, whatever the rounding
        ("It returned 13%.", True),  # a percent from the percent, rounded to the answer's precision
        ("It returned $13.4.", False),  # never an amount from a percent
        ("It made 2 trades.", False),  # a count is an integer: not the Sharpe 1.90 rounded
        ("Its Sharpe was 1.9.", True),
    ],
)
def test_a_cited_number_matches_a_source_number_of_its_kind(answer, ok):
    """The matcher before kinds read "$4,879.78" as 4, 879.78 and 4879.78 and took half a unit of any
    number, so "$879.78", "4 years", "13 trades", "$13.4" and "2 trades" passed."""
    assert grounded(answer, FEES) is ok


def test_counts_and_amounts_in_text_sources():
    assert grounded("It has 1,564 bars per ticker.", "Each ticker has 1,564 bars of daily data.")
    assert not grounded("It has 564 bars per ticker.", "Each ticker has 1,564 bars of daily data.")
    assert not grounded("It made 0.7 trades.", '{"n_trades": 7, "sharpe": 0.7}')
    assert not grounded("It made 7 trades.", '{"win_rate": "7%"}')


# A real run_backtest tool output (tools.execute) and the engine's own result for the same run
# (backtest.run_backtest: fractions, plain numbers), so the field names are the engine's.
ACME = ('{"ticker": "ACME", "start": "2022-12-30", "end": "2023-12-29", "period": "out-of-sample (last 20% of '
        'window)", "fee_bps": "1", "slippage_bps": "2", "total_return": "97.1%", "cagr": "92.6%", "sharpe": "1.90", '
        '"max_drawdown": "-22.3%", "n_trades": 57, "win_rate": "47.4%", "fees_paid": "$4,879.78"}')
ENGINE = ('{"model_id": "sma_crossover", "ticker": "ACME", "start": "2019-01-02", "end": "2023-12-29", '
          '"period": "full period", "fee_bps": 10.0, "slippage_bps": 2.0, "total_return": 0.134, "cagr": 0.1013, '
          '"sharpe": 2.0, "max_drawdown": -0.4609, "n_trades": 15, "win_rate": 0.3333, "fees_paid": 810.27}')


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("It returned 97.1% and made 57 trades.", ACME, True),
        ("It returned 97%.", ACME, True),  # rounding a percent stays a percent
        ("It made 97 trades.", ACME, False),  # not 97.1% rounded: a count never from a percent
        ("It ran for 4 years.", ACME, False),
        ("It paid $1.90 in fees.", ACME, False),  # an amount never from the Sharpe ratio
        ("Its Sharpe ratio was 1.90.", ACME, True),
        ("It made 57 years of trading.", ACME, False),  # a count of trades is not a count of years
        ("Fees of 1 bps and slippage of 2 bps.", ACME, True),
        ("It returned 13.4%, 10.1% a year.", ENGINE, True),  # fraction fields read as percents
        ("It returned 13%.", ENGINE, True),
        ("It made 13 trades.", ENGINE, False),  # 0.134 is a percent, not a count
        ("It paid $0.13.", ENGINE, False),  # nor an amount
        ("It returned 0.134.", ENGINE, True),  # the fraction as written
        ("It made 2 trades.", ENGINE, False),  # a whole Sharpe ratio is still no count
        ("Its Sharpe was 2.", ENGINE, True),
        ("It paid $810.27 over 15 trades.", ENGINE, True),
        ("A fee of 10 bps, i.e. 0.1%.", ENGINE, True),
        ("A fee of 10.", ENGINE, True),  # a plain number matches a bps field as written
        ("A fee of 10%.", '{"fee_bps": 10.0}', False),  # 10 bps is not 10%
        ("A fee of 10 trades.", '{"fee_bps": 10.0}', False),
    ],
)
def test_kinds_of_real_tool_fields(answer, source, ok):
    """Each False case passed before the fields' names gave kinds (ratio, money, percent fractions)
    and before a count had a noun; 97 trades passed from 97.1% before kinds at all."""
    assert grounded(answer, source) is ok


@pytest.mark.parametrize(
    "answer, source, ok",
    [
        ("It held 20 sessions.", "the window has 20 trading days", True),  # a session is a trading day
        ("It has 1,564 bars.", '{"bars": 1564}', True),
        ("It has 1,564 trades.", '{"bars": 1564}', False),
        ("It made 7 trades.", '{"num_trades": 7}', True),
        ("It made 7 trades.", '{"n_obs": 7}', True),  # a count field naming no noun counts anything
        ("It made 7 trades.", '{"days_to_expiry": 7}', False),
        ("It made 7.", '{"days_to_expiry": 7}', True),  # a plain number claims no noun
    ],
)
def test_a_count_matches_a_count_of_its_noun(answer, source, ok):
    assert grounded(answer, source) is ok


def test_a_count_that_is_not_whole_supports_nothing():
    """'0.7 trades' in a text (the rubric judge reads the answer as a source) counts nothing: it does
    not ground a 0.7 Sharpe ratio cited elsewhere, nor does anything ground it."""
    assert not grounded("A Sharpe ratio of 0.7.", "It made 0.7 trades.")
    assert grounded("A Sharpe ratio of 0.7.", "Sharpe 0.7, 7 trades.")
    assert not grounded("It made 0.7 trades.", '{"n_trades": 7, "sharpe": 0.7}', "0.7 trades")
