"""The HTML QC report: content, self-containedness, and a render in headless Chromium."""

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from skperfusion.datasets import simulate_exam
from skperfusion.derivatives import write_derivatives
from skperfusion.exam import ExamToCurves
from skperfusion.exam_estimators import ExamMaps, PerfusionMapper, normalized_maps
from skperfusion.report import count_flags, index_report
from skperfusion.report.figures import robust_limits, voxel_fits

_IMAGE = re.compile(r'<img alt="figure" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def _report(tmp_path, leakage="none", qc=None):
    exam = simulate_exam("sub-007", "HGG", shape=(12, 12, 2), random_state=1, leakage=True)
    mapper = PerfusionMapper(curves=ExamToCurves(leakage=leakage)).fit([exam])
    result = mapper.transform([exam])[0]
    result = ExamMaps(exam, {**result.maps, **normalized_maps(result)}, result.seconds,
                      result.mask, result.aif)
    paths = write_derivatives(result, tmp_path, mapper, qc=qc(exam) if callable(qc) else qc)
    (report,) = [p for p in paths if p.suffix == ".html"]
    return report, mapper, result


@pytest.mark.slow
def test_report_is_self_contained_and_shows_aif_maps_flags_and_fits(tmp_path):
    def qc(exam):
        saturated = np.zeros(exam.n_times, dtype=bool)  # every acquired frame
        saturated[20:23] = True
        return {"flags": {"aif_late": False, "leakage_uncorrected": True},
                "aif_saturated_samples": saturated.tolist()}

    report, _, _ = _report(tmp_path / "checks", qc={"flags": {"aif_late": True}, "checks": {
        "aif_late": {"raised": True, "value": 0.25, "threshold": 0.1,
                     "message": "25 % of the brain boluses arrive before the AIF"}}})
    page = report.read_text(encoding="utf-8")
    assert ('<tr><td>aif_late</td><td class="flag">raised</td><td>0.25</td><td>0.1</td>'
            "<td>25 % of the brain boluses arrive before the AIF</td></tr>") in page

    report, _, _ = _report(tmp_path, leakage="bsw", qc=qc)
    assert report.name == "sub-007_desc-osvd_report.html" and report.parent == tmp_path
    page = report.read_text(encoding="utf-8")
    for heading in ("Summary", "QC flags", "Arterial input function", "Maps", "Voxel fits",
                    "Settings and provenance"):
        assert f"<h2>{heading}</h2>" in page
    assert '<li class="flag">leakage_uncorrected: raised</li>' in page
    assert '<li class="ok">aif_late: not raised</li>' in page
    assert "K2: leakage rate constant of the bsw correction" in page
    assert "saturated samples: 3 (crosses)" in page
    # Self-contained: every image embedded as a PNG, nothing fetched from elsewhere.
    images = _IMAGE.findall(page)
    assert len(images) == 3  # AIF, maps, voxel fits
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images)
    assert not re.search(r'(src|href)="(?!data:)', page)


@pytest.mark.slow
def test_report_without_leakage_computes_its_qc_record(tmp_path):
    report, _, _ = _report(tmp_path)
    page = report.read_text(encoding="utf-8")
    assert "K2: leakage rate constant" not in page
    # No QC record given: write_derivatives computes it. Without VOF scaling or a
    # relaxivity conversion the absolute values are relative only, flagged.
    assert '<tr><td>relative_only</td><td class="flag">raised</td>' in page
    assert '<tr><td>aif_few_voxels</td><td class="ok">ok</td>' in page
    assert "relative only" in page
    sidecar = json.loads((tmp_path / "sub-007" / "perf" / "sub-007_desc-osvd_cbf.json")
                         .read_text())
    assert sidecar["QC"]["flags"]["relative_only"] is True


def test_index_links_every_report_and_counts_flags():
    entries = [{"file": "sub-1_desc-osvd_report.html", "subject": "sub-1", "session": None,
                "method": "osvd", "flags": count_flags({"flags": {"a": True, "b": False}})},
               {"file": "sub-2_ses-2_desc-osvd_report.html", "subject": "sub-2",
                "session": "ses-2", "method": "osvd", "flags": count_flags({})}]
    page = index_report(entries)
    assert '<a href="sub-1_desc-osvd_report.html">sub-1</a>' in page
    assert '<a href="sub-2_ses-2_desc-osvd_report.html">sub-2</a>' in page
    assert '<td class="flag">1</td>' in page and '<td class="ok">n/a</td>' in page
    assert count_flags({"flags": ["aif_late", "few_aif_voxels"]}) == 2


def test_index_entries_come_from_every_report_of_the_folder(tmp_path):
    from skperfusion.report import report_entries

    for name in ("sub-1_desc-osvd_report.html", "sub-1_desc-phae_report.html",
                 "sub-2_ses-b_desc-osvd_report.html", "notes_report.html"):
        (tmp_path / name).write_text("<html></html>")
    qc = tmp_path / "sub-2" / "ses-b" / "perf" / "sub-2_ses-b_desc-osvd_qc.json"
    qc.parent.mkdir(parents=True)
    qc.write_text(json.dumps({"flags": {"aif_late": True, "relative_only": True,
                                        "aif_few_voxels": False}}))
    entries = report_entries(tmp_path)
    assert [(e["subject"], e["session"], e["method"], e["flags"]) for e in entries] == [
        ("sub-1", None, "osvd", None), ("sub-1", None, "phae", None),
        ("sub-2", "ses-b", "osvd", 2)]


def test_robust_limits_ignore_outliers_and_non_finite_values():
    values = np.concatenate([np.linspace(0, 1, 1001), [np.nan, np.inf, -1e6]])
    low, high = robust_limits(values)
    # The 2nd and 98th percentiles of 1004 finite-or-outlier values, not -1e6.
    assert low == pytest.approx(np.percentile(values[np.isfinite(values)], 2))
    assert high == pytest.approx(np.percentile(values[np.isfinite(values)], 98))
    assert robust_limits([-3.0, 1.0, 2.0], symmetric=True)[0] < 0
    assert robust_limits([np.nan]) == (0.0, 1.0) and robust_limits([5.0, 5.0]) == (4.5, 5.5)


@pytest.mark.slow
def test_voxel_fits_are_the_curves_of_the_chosen_percentiles(tmp_path):
    _, mapper, result = _report(tmp_path)
    fits = voxel_fits(mapper, result)
    assert fits["labels"][:3] == ["CBF 10th percentile", "CBF 50th percentile",
                                  "CBF 90th percentile"]
    cbf = result.maps["CBF"][result.exam.mask("brain")]
    cbf = np.sort(cbf[np.isfinite(cbf)])
    # Each shown curve is the tissue curve of a voxel whose CBF has that rank.
    curves = mapper.curves_.transform(result.exam)
    maps = mapper.deconvolver_.transform(curves.X)
    for k, q in enumerate((10, 50, 90)):
        match = np.flatnonzero(np.all(np.isclose(curves.X[:, 0], fits["tissue"][k]), axis=1))
        assert match.size and maps[match[0], 0] == pytest.approx(
            cbf[int(q / 100 * (cbf.size - 1))], rel=1e-5)
    assert fits["fit"].shape == fits["tissue"].shape


def _coloured_fraction(pixels):
    from matplotlib.colors import rgb_to_hsv

    hsv = rgb_to_hsv(pixels)
    return float(((hsv[..., 1] > 0.5) & (hsv[..., 2] > 0.2)).mean())


@pytest.mark.slow
@pytest.mark.subprocess
def test_report_renders_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs "
                    "it where apt is available")
    report, _, _ = _report(tmp_path, leakage="bsw")
    screenshot = tmp_path / "report.png"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--window-size=1200,2400", f"--screenshot={screenshot}", report.as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    from matplotlib.image import imread

    pixels = imread(screenshot)[..., :3]
    coloured = _coloured_fraction(pixels)
    # The same page with its images left out: text and tables only.
    text_only = tmp_path / "text_only.html"
    text_only.write_text(_IMAGE.sub("", report.read_text(encoding="utf-8")), encoding="utf-8")
    subprocess.run([*command[:-2], f"--screenshot={tmp_path / 'text.png'}", text_only.as_uri()],
                   check=True, capture_output=True, timeout=120)
    text = _coloured_fraction(imread(tmp_path / "text.png")[..., :3])
    assert pixels.shape[:2] == (2400, 1200) and pixels.std() > 0  # not blank
    # The decoded images (colour-mapped maps, the AIF curve) add saturated colour that text
    # alone (black, a red or green flag) does not have: at least 1 % of the page, ten times
    # the text's.
    assert coloured > max(0.01, 10 * text)
