"""The progress helper: timed plain lines off a terminal (no bar, no carriage returns), a bar on one."""

from __future__ import annotations

import io

import pytest

from tokenizers_vq.progress import INTERVAL_ENV, interval_seconds, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0")
    log = io.StringIO()
    items = list(progress(range(3), desc="loading fsdd", unit="utterance", file=log))
    lines = log.getvalue().splitlines()
    assert items == [0, 1, 2] and "\r" not in log.getvalue()
    assert lines[0].startswith("loading fsdd: 1/3 utterances (33%), ") and " left" in lines[0]
    assert lines[-1].startswith("loading fsdd: 3/3 utterances (100%)") and lines[-1].endswith("done")


def test_work_ended_early_says_stopped_not_done(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception or Ctrl-C inside the work: the log's last line says "stopped", never "done"."""
    monkeypatch.setenv(INTERVAL_ENV, "0")
    for interruption in (KeyboardInterrupt, RuntimeError):
        log = io.StringIO()
        with pytest.raises(interruption):
            for i in progress(range(5), desc="loading fsdd", unit="utterance", file=log):
                if i == 2:
                    raise interruption()
        assert log.getvalue().splitlines()[-1].endswith("stopped")
        log = io.StringIO()
        with pytest.raises(interruption), progress(total=5, desc="train", unit="step", file=log) as bar:
            bar.update(2)
            raise interruption()
        last = log.getvalue().splitlines()[-1]
        assert last.startswith("train: 2/5 steps (40%)") and last.endswith("stopped")
    log = io.StringIO()
    bar = progress(total=5, desc="train", unit="step", file=log)
    bar.update(3)
    bar.close(stopped=True)
    assert log.getvalue().splitlines()[-1].endswith("stopped")


def test_no_line_before_the_interval_and_none_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "3600")
    log = io.StringIO()
    with progress(total=5, desc="train", unit="step", file=log) as bar:
        bar.update(5)
    assert log.getvalue() == ""
    monkeypatch.setenv(INTERVAL_ENV, "0")
    with progress(total=5, desc="train", unit="batch", file=log, enabled=False) as bar:
        bar.update(2)
        bar.write("eval @ step 2")
    assert log.getvalue() == ""
    with progress(total=4, desc="train", unit="batch", file=log) as bar:
        bar.set_postfix({"loss": "0.5"})
        bar.update(2)
    assert log.getvalue().splitlines()[0].startswith("train: 2/4 batches (50%)")
    assert "loss=0.5" in log.getvalue()


def test_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0")
    term = _Terminal()
    for _ in progress(range(2), desc="encode", unit="chunk", file=term):
        pass
    assert "encode: 100%" in term.getvalue() and "2/2" in term.getvalue()


def test_the_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert interval_seconds() == 10.0
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert interval_seconds() == 2.5
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(ValueError, match="VQTOK_PROGRESS_SECONDS must be a number"):
        interval_seconds()
