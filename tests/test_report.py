"""The HTML report: self-contained, every plot present and not blank, rendered in headless
Chromium (Debian's `chromium`, installed by `make`)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from typer.testing import CliRunner

from petridish.cli import app
from tests.fake_judge import FakeJudgeServer
from tests.test_interp_run import experiment, other_model  # noqa: F401  (fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path,
           other_model: Path) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("report-run")
    with FakeJudgeServer().serve() as url:
        exp = experiment(folder, tiny_model_dir, other_model, url, 'contrast = ["other", "base"]')
        exp.write_text(exp.read_text() + '''
[[ablate]]
name = "lw"
subject = "base"
direction = "d"
modes = ["none", "layerwise"]
questions = ["q.jsonl"]
max_new_tokens = 4
''')
        result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(folder / "runs")])
        assert result.exit_code == 0, result.output
    (run,) = (folder / "runs").iterdir()
    return run / "report.html"


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_has_every_section_and_no_external_resource(report: Path) -> None:
    page = report.read_text()
    for section in ("summary", "judges", "sweep-sweep", "ablation-other", "ablation-base",
                    "directions", "questions"):
        assert f"id='{section}'" in page, section
    assert "http://" not in page.replace("http://127.0.0.1", "") and "src=\"http" not in page
    assert "sweep.L1.x4" in page and "%" in page


def test_every_plot_is_a_non_blank_png(report: Path) -> None:
    pngs = images(report.read_text())
    assert len(pngs) >= 4  # sweep, two ablation panels, cosine heatmap
    for data in pngs:
        pixels = mpimg.imread(io.BytesIO(data), format="png")
        assert pixels.shape[0] > 50 and pixels.shape[1] > 50
        assert float(pixels[..., :3].std()) > 0.02  # not a blank canvas


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_chromium_renders_every_plot(report: Path) -> None:
    if chromium() is None:
        if os.environ.get("CI") == "true":  # CI must run it: a missing browser is a failure
            pytest.fail("chromium is not installed; `make` installs it from Debian")
        pytest.skip("chromium is installed by `make`; not here")
    out = subprocess.run(
        [str(chromium()), "--headless", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=5000", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)
    body = re.search(r"<body[^>]*>", out.stdout)
    assert body, out.stdout[:500]
    n = re.search(r'data-images="(\d+)"', body.group(0))
    loaded = re.search(r'data-loaded="(\d+)"', body.group(0))
    assert n and loaded and int(n.group(1)) == int(loaded.group(1)) == len(
        images(report.read_text()))
    answers = re.search(r'data-answers="(\d+)"', body.group(0))  # the script ran over the table
    table = report.read_text().split("class='answers'")[1].split("</tbody>")[0]
    assert answers and int(answers.group(1)) == table.count("<tr>") - 1 > 0  # minus the header


def test_a_superseded_sample_stage_is_not_a_result(tmp_path: Path) -> None:
    """Two finished sample stages of one (assay, subject), e.g. before and after a stage's
    version changed its key: only the later one is read back."""
    from petridish.assays.base import SampleInfo
    from petridish.report.results import load_results
    from petridish.store.run import Run, RunIdentity

    run = Run(tmp_path / "run", RunIdentity("t", "0", 0, "{}"), "")
    try:
        for key in ("old", "new"):
            info = SampleInfo(assay="a", subject="s", kind="freeform", responses=0)
            run.store.begin_stage(key, "sample:a:s", "sample", info.model_dump(mode="json"))
            run.store.finish_stage(key, info.model_dump(mode="json"))
        info = SampleInfo(assay="b", subject="s", kind="freeform")
        run.store.begin_stage("other", "sample:b:s", "sample", info.model_dump(mode="json"))
        run.store.finish_stage("other", info.model_dump(mode="json"))
    finally:
        run.close("done")
    assert [r.sample_key for r in load_results(tmp_path / "run")] == ["new", "other"]
