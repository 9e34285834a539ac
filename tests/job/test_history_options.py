"""The history options of the job (``--since``, ``--until``, the archive's), checked before Flink
starts: what they become, and each refusal one line naming the option."""

from __future__ import annotations

import pytest

from connectors.binance.archive import DEFAULT_ARCHIVE_URL
from job.main import parse_args

SINCE, UNTIL = "1723161600000", "1723248000000"


def test_the_archive_is_on_for_trades_and_off_on_request(tmp_path):
    args = parse_args(["--since", SINCE, "--until", UNTIL, "--archive-cache", str(tmp_path)])
    assert (args.since, args.until) == (int(SINCE), int(UNTIL))
    assert args.archive.archive_url == DEFAULT_ARCHIVE_URL
    assert args.archive.archive_cache == str(tmp_path)
    assert parse_args(["--since", SINCE, "--no-archive"]).archive is None
    # spot's aggTrades day files, USD-M's (further back than its REST's 48 hours)
    assert parse_args(["--since", SINCE, "--stream", "aggTrade"]).archive is not None
    usdm = parse_args(["--market", "usdm", "--since", SINCE])
    assert (usdm.archive_kind, usdm.archive.archive_url) == ("aggTrade", DEFAULT_ARCHIVE_URL)


def test_usdm_since_beyond_rest_without_the_archive_is_one_line_saying_why(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--market", "usdm", "--since", SINCE, "--no-archive"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--since" in err and "last 48 hours" in err, err
    assert "--no-archive reads none of it from the archive" in err, err


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--until", UNTIL], "--until"),
        (["--since", UNTIL, "--until", SINCE], "--until"),
        (["--since", SINCE, "--until", UNTIL, "--duration", "10"], "--until"),
        (["--since", SINCE, "--until", "2999-01-01"], "--until"),
        (["--since", SINCE, "--archive-url", "ftp://data.binance.vision"], "--archive-url"),
    ],
)
def test_bad_history_options_are_one_line_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as refused:
        parse_args(argv)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err, err
