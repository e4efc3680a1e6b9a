"""Ctrl-C and SIGTERM end a command as interrupted even when an extension turns the interrupt into another error."""

from __future__ import annotations

import signal

import pytest

from xmodal import cli


def _interrupt_inside_an_extension(sig: int):  # noqa: ANN202
    def dispatch(args: object) -> int:
        try:
            signal.raise_signal(sig)
        except (KeyboardInterrupt, cli.Terminated) as exc:  # what Cython's module initialisation does with it
            raise ValueError("'T{q:left_child:...}' is not a valid PEP 3118 buffer format string") from exc
        return 0

    return dispatch


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_turned_into_an_error_still_exits_as_interrupted(
        sig: int, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "_dispatch", _interrupt_inside_an_extension(sig))
    before = signal.getsignal(sig)
    assert cli.main(["list"]) == code
    assert "interrupted; nothing was written" in capsys.readouterr().err
    assert signal.getsignal(sig) is before  # the handlers are put back


def test_the_same_error_without_a_signal_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def dispatch(args: object) -> int:
        raise ValueError("a real bug")

    monkeypatch.setattr(cli, "_dispatch", dispatch)
    with pytest.raises(ValueError, match="a real bug"):
        cli.main(["list"])
