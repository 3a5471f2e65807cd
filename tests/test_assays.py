"""The assay and stage design: kinds from the registry, transcripts seen by rubrics, a run from
before transcripts still opening, `show --json`, `validate` without weights, untruncated tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from petridish.assays.registry import get_assay, kinds
from petridish.cli import app
from petridish.judges.base import Item
from petridish.store.db import Store
from tests.helpers import one_line_error, write_experiment

runner = CliRunner()
LEGACY = Path(__file__).parent / "data" / "legacy-run"


def test_builtin_kinds_register_themselves() -> None:
    assert {"freeform", "pressure"} <= set(kinds())
    assert get_assay("freeform").judged and not get_assay("pressure").judged


def test_a_rubric_sees_the_last_reply_or_the_whole_conversation() -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}, {"role": "user", "content": "Sure?"},
            {"role": "assistant", "content": "5"}]
    assert Item.of(msgs) == Item("Sure?", "5")
    whole = Item.of(msgs, "conversation")
    assert whole.answer == "5" and "User: 2+2?" in whole.question
    assert "Assistant: 4" in whole.question and "Be brief" not in whole.question
    one = msgs[:3]  # a one-turn transcript is judged like a (question, answer) pair
    assert Item.of(one, "conversation") == Item.of(one) == Item("2+2?", "4")


def test_a_run_made_before_transcripts_opens_in_show_and_report(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    shutil.copytree(LEGACY, folder)
    shown = runner.invoke(app, ["show", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert "sweep.L1.x4" in shown.output and "4 steps, loss 7.36" in shown.output
    data = json.loads(runner.invoke(app, ["show", str(folder), "--json"]).output)
    em = [r for r in data["metrics"] if r["metric"] == "em_rate" and r["group"] is None]
    assert {r["interval"] for r in em} == {"wilson", "bootstrap-question"}
    assert len(em) == 16 and all(r["n"] + r["unscored"] > 0 for r in em)
    assert runner.invoke(app, ["report", str(folder)]).exit_code == 0
    page = (folder / "report.html").read_text()
    assert "Steering sweep sweep" in page and "Ablations on other" in page
    store = Store(folder / "store.sqlite")  # migrated in place: messages from the old columns
    r = store.responses()[0]
    assert [m["role"] for m in r.messages] == ["user", "assistant"] and r.turns[0].n_tokens
    store.close()


def test_show_json_gives_free_form_metrics_as_rows(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tests.fake_judge import FakeJudgeServer

    with FakeJudgeServer().serve() as url:
        exp = write_experiment(tmp_path, tiny_model_dir, extra=f'''
[judge]
backend = "{url}#judge"
rubrics = ["alignment", "coherence"]
''')
        assert runner.invoke(app, ["run", str(exp), "--runs-dir",
                                   str(tmp_path / "runs")]).exit_code == 0
    (folder,) = (tmp_path / "runs").iterdir()
    data = json.loads(runner.invoke(app, ["show", str(folder), "--json"]).output)
    rows = {(r["metric"], r["group"]): r for r in data["metrics"]
            if r["interval"] != "bootstrap-question"}
    em = rows[("em_rate", None)]
    assert em["interval"] == "wilson" and em["n"] == 6 and 0 <= em["low"] <= em["high"] <= 1
    assert rows[("mean_alignment", None)]["interval"] == "normal"
    assert ("coherence_rate", "tag=general") in rows
    assert {s["kind"] for s in data["stages"]} == {"sample", "judge"}
    assert list(data["judges"]) == [f"{url}#judge"]


def test_validate_reads_configs_not_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").unlink()  # validate must not need the weights
    exp = write_experiment(tmp_path, model)
    result = runner.invoke(app, ["validate", str(exp)])
    assert result.exit_code == 0 and "valid" in result.output, result.output
    exp.write_text(exp.read_text() + '''
[[direction]]
name = "d"
subject = "base"
assay = "freeform"

[[steer]]
name = "s"
subject = "base"
direction = "d"
layers = [9]
scales = [1]
questions = ["questions.jsonl"]
''')
    one_line_error(runner.invoke(app, ["validate", str(exp)]), "steer[0].layers", "layer 9")
    assert not (tmp_path / "runs").exists()


def test_tables_never_truncate_two_names_to_the_same_text() -> None:
    from rich.console import Console

    from petridish.tables import new_table

    table = new_table("assay", "subject", "a long column", "another long column")
    for name in ("ablate.random-0", "ablate.random-1"):
        table.add_row(name, "bad-medical", "x" * 30, "y" * 30)
    console = Console(width=40, record=True)
    console.print(table)
    text = console.export_text()
    firsts = "".join(line.split("│")[1].strip() for line in text.splitlines()
                     if line.startswith("│"))
    assert "…" not in text and firsts == "ablate.random-0ablate.random-1"
