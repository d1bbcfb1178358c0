"""Evaluation at scale against the local emulator (scripted engine, sent faster than real time)."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest

from nova_nb.analysis import Recording, turns
from nova_nb.analysis.evaluate import (
    RESULTS_FILE,
    Budget,
    EvalReport,
    PriceTable,
    evaluate,
    evaluate_sync,
    expand_grid,
    load_items,
    parse_grid_values,
)
from nova_nb.analysis.evaluate.cli import main as eval_main
from nova_nb.audio import to_pcm16_mono, write_wav
from nova_nb.emulator.engine.testaudio import make_utterance
from nova_nb.errors import ConfigError

SCRIPTED = {"engine": "scripted", "latency_target": "low"}
ROOT = Path(__file__).resolve().parents[2]


def raising_responder(text: str) -> str:
    raise RuntimeError("the responder failed on purpose")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    q = make_utterance("What will the weather be like tomorrow?")
    write_wav(folder / "q1.wav", q, 16000)
    write_wav(folder / "q2.wav", make_utterance("Hello, who are you?"), 16000)
    q8 = to_pcm16_mono(q, sample_rate=16000, target_rate=8000)
    write_wav(folder / "q8_stereo.wav", np.stack([q8, q8], axis=1), 8000)
    (folder / "garbage.wav").write_bytes(b"this is not a WAV file")
    return folder


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines() if line.strip()]


# -- bad items, settings the provider rejects, and what the report says ----------------------------


@pytest.fixture(scope="module")
def mixed(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EvalReport]:
    items = [
        {"id": "good", "audio": str(inputs / "q1.wav"), "expected": "2.4 seconds of speech"},
        {"id": "rate8k", "audio": str(inputs / "q8_stereo.wav")},
        {"id": "missing", "audio": str(inputs / "nowhere.wav")},
        {"id": "garbage", "audio": str(inputs / "garbage.wav")},
        {"id": "empty", "audio": str(inputs / "q1.wav"), "expected": ""},
        {"id": "typed", "text": "Hello, who are you?"},
        {
            "id": "barge",
            "text": "Tell me about the weather tomorrow.",
            "barge_in_offset_s": 0.2,
            "barge_in_text": "Stop, please.",
        },
    ]
    out = tmp_path_factory.mktemp("mixed")
    report = evaluate_sync(
        items,
        {"voice": ["matthew", "brian"]},
        out,
        options=SCRIPTED,
        pace=False,
        timeout_s=30,
        synthesize=make_utterance,
        progress=False,
    )
    return out, report


def test_bad_items_are_per_item_errors(mixed: tuple[Path, EvalReport]) -> None:
    out, report = mixed
    by = {(r["item"], r["settings"]["voice"]): r for r in report.results}
    assert len(by) == 14 and len(_lines(out)) == 14
    for item in ("good", "rate8k", "typed", "barge"):
        assert by[(item, "matthew")]["status"] == "ok", by[(item, "matthew")]["error"]
    assert "does not exist" in by[("missing", "matthew")]["error"]
    assert by[("garbage", "matthew")]["error_kind"] == "input"
    assert "cannot read audio file" in by[("garbage", "matthew")]["error"]
    assert "expected text is empty" in by[("empty", "matthew")]["error"]
    # The 8 kHz stereo file was converted, and the result says how.
    note = by[("rate8k", "matthew")]["audio_note"]
    assert "8000 Hz" in note and "2 channels" in note
    # A voice the provider rejects: every item under it is a config error naming the valid voices.
    for item in ("good", "rate8k", "typed"):
        r = by[(item, "brian")]
        assert r["status"] == "error" and r["error_kind"] == "config"
        assert "brian" in r["error"] and "matthew" in r["error"]
    # Every job that ran kept its recording.
    for r in report.results:
        if r["status"] == "ok":
            assert Recording.load(out / r["recording"]).events


def test_wer_and_latency_recompute_from_the_recordings(mixed: tuple[Path, EvalReport]) -> None:
    out, report = mixed
    checked = 0
    transform = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    for r in report.results:
        if r["status"] != "ok":
            continue
        rec = Recording.load(out / r["recording"])
        heard = [
            e["text"]
            for e in rec.events
            if e["kind"] == "Transcript" and e["role"] == "USER" and e["stage"] == "FINAL"
        ]
        if r["item"] == "barge":
            heard = heard[:1]  # the second is the interjection's, not the question's
        else:
            assert r["user_text"] == " ".join(heard)
        if r.get("wer"):
            expected = jiwer.wer(r["expected"], " ".join(heard), transform, transform)
            assert r["wer"]["wer"] == pytest.approx(expected)
            assert r["wer"]["hypothesis"] == " ".join(heard)
            checked += 1
        recomputed = turns(rec.events)
        assert [t.response_s for t in recomputed] == [t["response_s"] for t in r["turns"]]
        assert [t.service_response_s for t in recomputed] == [t["service_response_s"] for t in r["turns"]]
        assert all(
            t["service_response_s"] is not None for t in r["turns"]
        )  # the emulator sends userSpeechEnd
    assert checked == 3  # good, typed, barge
    good = next(r for r in report.results if r["item"] == "good" and r["status"] == "ok")
    # The scripted engine transcribes "(2.4 seconds of speech)": every word right once normalised.
    assert good["wer"]["wer"] == 0.0


def test_barge_in_is_measured_in_a_paced_run(tmp_path: Path) -> None:
    # A barge-in is timed on the wall clock (offset after the reply's first audio), so only a paced
    # run says whether it lands inside the reply: sent faster than real time, the emulator may have
    # "played" the whole reply in audio time before the interjection comes (as the mixed run shows).
    barge = {
        "id": "barge",
        "text": "Tell me about the weather tomorrow.",
        "barge_in_offset_s": 0.5,
        "barge_in_text": "Stop, please.",
    }
    report = evaluate_sync(
        [barge],
        {"voice": ["matthew"]},
        tmp_path / "paced",
        options=SCRIPTED,
        pace=True,
        timeout_s=40,
        synthesize=make_utterance,
        progress=False,
    )
    (result,) = report.results
    assert result["status"] == "ok", result.get("error")
    assert result["barge_in"]["happened"] and result["barge_in"]["reaction_s"] is not None
    assert report.barge_in(result["label"])["happened"] == 1


def test_tokens_and_no_cost_without_prices(mixed: tuple[Path, EvalReport]) -> None:
    out, report = mixed
    label = next(r["label"] for r in report.results if r["settings"]["voice"] == "matthew")
    usage = report.usage(label)
    assert usage["sessions"] == 4 and usage["total"]["total"] > 0 and usage["per_turn"]["total"] > 0
    # Per-turn tokens add up to at most the session's (the setup's tokens belong to no turn).
    for r in report.results:
        if r.get("usage"):
            assert sum(t["tokens"]["total"] for t in r["turns"]) <= r["usage"]["total"]
    cost = report.cost(label)
    assert cost.amount is None and str(cost) == "no price given"
    assert "no price given" in report.to_markdown() and "$0" not in report.to_markdown()
    assert "<table>" in report._repr_html_()
    written = report.save(out / "summary")
    assert {p.name for p in written} == {"latency.png", "wer.png", "summary.md"}
    written = report.save(out / "summary", format="html")
    assert (out / "summary" / "summary.html").read_text().count("<table>") >= 4


def test_cost_only_from_a_price_table(mixed: tuple[Path, EvalReport]) -> None:
    out, _ = mixed
    rates = {"input_speech": 0.0034, "input_text": 0.00006, "output_speech": 0.0136, "output_text": 0.00024}
    prices = PriceTable(rates, date="2026-12-01", source="a test table, not AWS's prices")
    report = EvalReport.load(out, prices=prices)
    label = next(r["label"] for r in report.results if r["settings"]["voice"] == "matthew")
    total = report.usage(label)["total"]
    assert report.cost(label).amount == pytest.approx(sum(total[k] / 1000 * v for k, v in rates.items()))
    partial = PriceTable({"input_speech": 0.0034}, date="2026-12-01", source="test")
    assert EvalReport.load(out, prices=partial).cost(label).amount is None  # other kinds unpriced
    with pytest.raises(ConfigError, match="date"):
        PriceTable(rates, date="", source="x")
    with pytest.raises(ConfigError, match="unknown token kind"):
        PriceTable({"speech": 1.0}, date="2026-12-01", source="x")


# -- resuming --------------------------------------------------------------------------------------


def _five(inputs: Path) -> list[dict]:
    return [{"id": f"u{i}", "audio": str(inputs / ("q1.wav" if i % 2 else "q2.wav"))} for i in range(5)]


async def test_resume_after_a_crash_in_the_middle(inputs: Path, tmp_path: Path) -> None:
    class Crash(Exception):
        pass

    seen: list[str] = []

    def crash_after_two(line: dict) -> None:
        seen.append(line["item"])
        if len(seen) == 2:
            raise Crash

    with pytest.raises(Crash):
        await evaluate(
            _five(inputs), None, tmp_path, options=SCRIPTED, pace=False, concurrency=2, progress=False,
            on_result=crash_after_two,
        )  # fmt: skip
    first = _lines(tmp_path)
    assert [r["item"] for r in first] == seen
    # A crash while writing a line leaves it torn: the rerun cuts it off and runs that job again.
    torn = (tmp_path / RESULTS_FILE).read_text() + '{"item": "u4", "setting": "torn'
    (tmp_path / RESULTS_FILE).write_text(torn)
    again: list[str] = []
    with pytest.warns(UserWarning, match="torn"):
        report = await evaluate(
            _five(inputs), None, tmp_path, options=SCRIPTED, pace=False, concurrency=2, progress=False,
            on_result=lambda line: again.append(line["item"]),
        )  # fmt: skip
    assert sorted(again) == sorted({f"u{i}" for i in range(5)} - set(seen))
    assert sorted(r["item"] for r in _lines(tmp_path)) == [f"u{i}" for i in range(5)]
    assert all(r["status"] == "ok" for r in report.results) and len(report.results) == 5
    # A third run has nothing left to do.
    third: list[str] = []
    await evaluate(
        _five(inputs), None, tmp_path, options=SCRIPTED, pace=False, progress=False, on_result=third.append
    )
    assert third == []


def test_resume_after_the_process_is_killed(inputs: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(i) + "\n" for i in _five(inputs)))
    out = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        from nova_nb.analysis.evaluate import evaluate_sync
        evaluate_sync({str(items)!r}, None, {str(out)!r}, options={SCRIPTED!r}, pace=False,
                      concurrency=1, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (out / RESULTS_FILE).exists() and len(_lines(out)) >= 2:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    done_before = {r["item"] for r in _lines(out)}
    assert 2 <= len(done_before) < 5
    rerun: list[str] = []
    evaluate_sync(
        items,
        None,
        out,
        options=SCRIPTED,
        pace=False,
        progress=False,
        on_result=lambda r: rerun.append(r["item"]),
    )
    assert not done_before & set(rerun)
    assert sorted(r["item"] for r in _lines(out)) == [f"u{i}" for i in range(5)]


# -- executors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_standard_library_executors(inputs: Path, tmp_path: Path, kind: str) -> None:
    executor: concurrent.futures.Executor
    if kind == "thread":
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    else:
        executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=2, mp_context=multiprocessing.get_context("spawn")
        )
    items = [*_five(inputs)[:3], {"id": "missing", "audio": str(inputs / "nowhere.wav")}]
    with executor:
        report = evaluate_sync(
            items, {"latency_target": ["low", "medium"]}, tmp_path, options={"engine": "scripted"},
            pace=False, executor=executor, concurrency=2, progress=False,
        )  # fmt: skip
    assert len(report.results) == 8
    assert sum(r["status"] == "ok" for r in report.results) == 6
    pids = {r["pid"] for r in report.results}
    assert (os.getpid() not in pids) if kind == "process" else (pids == {os.getpid()})
    # Each latency target answers after its own endpointing pause (emulator rule, audio time).
    assert {r["settings"]["latency_target"] for r in report.results} == {"low", "medium"}


def test_a_responder_that_raises_is_that_item_error(inputs: Path, tmp_path: Path) -> None:
    report = evaluate_sync(
        _five(inputs)[:1], None, tmp_path, options={"engine": "scripted", "responder": raising_responder},
        pace=False, timeout_s=8, progress=False,
    )  # fmt: skip
    (r,) = report.results
    assert r["status"] == "error" and r["error_kind"] == "stream"
    assert "internalServerException" in r["error"]


# -- items, grid, command line ---------------------------------------------------------------------


def test_items_from_a_folder_csv_and_jsonl(inputs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    write_wav(folder / "a.wav", make_utterance("Hi there."), 16000)
    (folder / "a.txt").write_text("Hi there.\n")
    write_wav(folder / "b.wav", make_utterance("Bye."), 16000)
    got = load_items(folder)
    assert [(i.id, i.expected) for i in got] == [("a", "Hi there."), ("b", None)]
    csv_file = tmp_path / "items.csv"
    csv_file.write_text("id,audio,expected\nx,../inputs/q1.wav,hello\ny,q.wav,\n")
    x, y = load_items(csv_file)
    assert (
        x.audio == str(tmp_path / "../inputs/q1.wav") and y.problem and "expected text is empty" in y.problem
    )
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text(
        '{"id": "t", "text": "Hello."}\nnot json\n{"id": "n", "audio": "a.wav", "expected": null}\n'
    )
    t, bad, n = load_items(jsonl)
    assert t.reference == "Hello." and bad.problem and "line 2" in bad.problem and n.reference is None
    with pytest.raises(ConfigError, match="twice"):
        load_items([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(ConfigError, match="does not exist"):
        load_items(tmp_path / "nothing.csv")


def test_grid() -> None:
    assert parse_grid_values('system_prompt=["Be brief, really.", "Be chatty."]') == (
        "system_prompt",
        ["Be brief, really.", "Be chatty."],
    )
    assert parse_grid_values("frame_ms=20,32") == ("frame_ms", [20, 32])
    settings = expand_grid(
        {"voice": ["matthew", "tiffany"], "frame_ms": [20, 32]}, fixed={"engine": "scripted"}
    )
    assert len(settings) == 4 and len({s.key for s in settings}) == 4 and len({s.slug for s in settings}) == 4
    assert settings[0].provider_options() == {"engine": "scripted", "frame_ms": 20, "voice_id": "matthew"}


def test_command_line(inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = tmp_path / "items.csv"
    items.write_text(
        f"id,audio,text\nq1,{inputs / 'q1.wav'},\nhello,,Hello there.\nnothing,{inputs / 'no.wav'},\n"
    )
    argv = [str(items), "--out", str(tmp_path / "run"), "--grid", "latency_target=low,high", "--option",
            "engine=scripted", "--fast", "--no-progress", "--format", "html"]  # fmt: skip
    assert eval_main(argv, synthesize=make_utterance) == 1  # one bad item
    printed = capsys.readouterr().out
    assert "6 jobs, 2 errors" in printed and "no.wav" in printed
    assert (tmp_path / "run" / "summary.html").exists() and (tmp_path / "run" / "latency.png").exists()
    # Resumed: nothing runs again, the same report comes out.
    assert eval_main(argv, synthesize=make_utterance) == 1
    assert len(_lines(tmp_path / "run")) == 6
    assert eval_main([str(items), "--out", str(tmp_path / "x"), "--grid", "voice"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


# -- a budget cap -----------------------------------------------------------------------------------

#: Illustrative rates for the tests (1 per 1K tokens of every kind), not AWS prices.
TINY_PRICES = PriceTable(
    {"input_speech": 1.0, "input_text": 1.0, "output_speech": 1.0, "output_text": 1.0},
    date="2026-12-02",
    source="tests: illustrative rates, not AWS prices",
)


def test_a_budget_stops_launching_and_a_higher_cap_resumes(inputs: Path, tmp_path: Path) -> None:
    items = [{"id": f"q{i}", "audio": str(inputs / "q1.wav")} for i in range(6)]
    run = {"options": SCRIPTED, "pace": False, "progress": False, "prices": TINY_PRICES, "concurrency": 2}
    report = evaluate_sync(items, None, tmp_path, budget=Budget(0.5), **run)
    ok = [r for r in report.results if r["status"] == "ok"]
    skipped = report.skipped()
    assert ok and len(ok) + len(skipped) == 6 and report.errors() == []
    costs = [TINY_PRICES.cost(r["usage"]).amount for r in ok]
    # Every job speaks the same question to the scripted emulator, so each costs the same (~0.2 here).
    c = costs[0]
    assert c is not None and 0.1 < c < 0.25 and costs == [c] * len(ok), costs
    # The first job ran alone (no estimate yet); then 2c <= 0.5 let one more start, 3c > 0.5 stopped.
    assert len(ok) == 2 and len(skipped) == 4
    assert all("budget" in r["skip_reason"] and "0.5 USD" in r["skip_reason"] for r in skipped)
    assert "4 skipped (budget)" in report.to_markdown() and "Skipped" in report._repr_html_()
    # Skipped is not done: the same cap skips them again (nothing new runs), a higher one runs them.
    again = evaluate_sync(items, None, tmp_path, budget=Budget(0.5), **run)
    assert len(again.skipped()) == 4 and sum(r["status"] == "ok" for r in again.results) == 2
    more = evaluate_sync(items, None, tmp_path, budget=Budget(2.0), **run)
    assert more.skipped() == [] and all(r["status"] == "ok" for r in more.results)
    assert len(_lines(tmp_path)) == 6 + 4 + 4
    # A first-job estimate above the cap starts nothing.
    none = evaluate_sync(items, None, tmp_path / "none", budget=Budget(0.5, first_job_estimate=0.6), **run)
    assert len(none.skipped()) == 6
    assert not (tmp_path / "none" / "recordings").exists()


def test_a_budget_needs_prices_in_its_currency(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [{"id": "q1", "audio": str(inputs / "q1.wav")}]
    with pytest.raises(ConfigError, match="a budget needs prices"):
        evaluate_sync(items, None, tmp_path, options=SCRIPTED, budget=1.0, progress=False)
    with pytest.raises(ConfigError, match="EUR"):
        evaluate_sync(items, None, tmp_path, budget=Budget(1.0, "EUR"), prices=TINY_PRICES, progress=False)
    with pytest.raises(ConfigError, match="max_cost"):
        Budget(0)
    argv = [str(inputs / "q1.wav"), "--out", str(tmp_path / "cli"), "--max-cost", "1"]
    assert eval_main(argv) == 2
    assert "a budget needs prices: pass --prices" in capsys.readouterr().err
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(TINY_PRICES.to_json()))
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(3):
        (folder / f"q{i}.wav").write_bytes((inputs / "q1.wav").read_bytes())
    argv = [str(folder), "--out", str(tmp_path / "cli"), "--option", "engine=scripted", "--fast",
            "--no-progress", "--prices", str(prices), "--max-cost", "0.05"]  # fmt: skip
    assert eval_main(argv) == 3  # no errors, but the budget skipped jobs
    printed = capsys.readouterr().out
    assert "3 jobs, 0 errors, 2 skipped (budget)" in printed and "would pass the cap of 0.05 USD" in printed


@pytest.mark.slow
def test_paced_run_measures_real_time_latency(inputs: Path, tmp_path: Path) -> None:
    report = evaluate_sync(
        [{"id": "q1", "audio": str(inputs / "q1.wav"), "expected": "2.4 seconds of speech"}],
        None, tmp_path, options=SCRIPTED, pace=True, progress=False,
    )  # fmt: skip
    (r,) = report.results
    assert r["status"] == "ok" and r["pace"] is True
    (turn,) = r["turns"]
    # Real time: the end of speech → first audio includes the emulator's 1.5 s pause at "low"
    # (an emulator rule, not model time).
    assert 1.4 < turn["response_s"] < 2.5
    assert "(not real time)" not in report.to_markdown()
