"""Data safety of the command line: refused outputs, contained cohort paths,
Ctrl-C on real ``skperfusion`` processes, nothing partial left on disk."""

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from skperfusion import _io
from skperfusion.cli import main
from skperfusion.deconvolution import (
    PERFUSION_MAPS,
    available_deconvolvers,
    get_deconvolver,
    make_deconvolver,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TINY_STUDY = ["--n-boot", "20", "--snrs", "20", "--noise-draws", "1", "--max-train-voxels", "300",
              "--cv-splits", "2", "--cv-repeats", "1", "--phae-cv-epochs", "1",
              "--methods", "osvd", "phae", "--phae-width", "4", "--phae-batch-size", "128",
              "--phae-epoch-voxels", "128", "--leakage", "none"]
TINY_PHAE = ["--max-train-voxels", "300", "--width", "4", "--batch-size", "64"]


@pytest.fixture(scope="module")
def cohort(simulate_cli_cohort):
    return simulate_cli_cohort("safety", 4)


def _digest(folder):
    """Content of every file under ``folder`` (relative path -> sha1), hidden ones included."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _temporaries(*folders):
    return [p for folder in folders if folder.exists()
            for pattern in (".skperfusion-tmp-*", ".skperfusion-bak-*", ".skperfusion-lock")
            for p in folder.rglob(pattern)]


def _output(out, name):
    """The one image of map ``name`` ("cbf", "rcbf", "aifmask", ...) written under ``out``."""
    found = [p for p in out.rglob("*.nii.gz")
             if p.name.removesuffix(".nii.gz").replace("aif_mask", "aifmask").split("_")[-1]
             .lower() == name]
    assert len(found) == 1, (name, found)
    return found[0]


def _refused(capsys, argv, *needles):
    """Run ``argv``; it must exit 2 with one stderr line naming every needle."""
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def _command():
    script = Path(sys.executable).with_name("skperfusion")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from skperfusion.cli import main; "
                                  "sys.exit(main())"]


# ``skperfusion`` whose simulation of the third subject waits for the test's signal
# (as an endless subject would): the stop then lands mid-run by construction, with
# subjects already written, whatever the machine's load; other worker threads go on
# simulating and writing the later subjects meanwhile.
_GATED_SIMULATE = """
import sys, time
from skperfusion.cli import main
from skperfusion.datasets import cohort

simulate_and_write = cohort._simulate_and_write

def gated(root, subject_id, *args):
    if subject_id == "sub-003":
        print(f"{subject_id} waits for the signal", flush=True)
        time.sleep(3600)
    return simulate_and_write(root, subject_id, *args)

cohort._simulate_and_write = gated
sys.exit(main())
"""


def _wait_reading(process, timeout):
    """Exit status of ``process`` within ``timeout`` s (None if still running), and what it
    printed meanwhile: read as it comes, so that a full pipe cannot block the process."""
    deadline, printed = time.monotonic() + timeout, b""
    while (status := process.poll()) is None and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 0.2)[0]:
            chunk = os.read(process.stdout.fileno(), 65536)
            printed += chunk
            if not chunk:  # closed before the exit: wait without spinning
                time.sleep(0.2)
    # The rest, unless a helper process it started keeps the pipe open and busy.
    while time.monotonic() < deadline + 5 and select.select([process.stdout], [], [], 0.2)[0]:
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break
        printed += chunk
    return status, printed


def _interrupt_when(argv, marker, *, signum=signal.SIGINT, timeout=240, command=None):
    """Start a real ``skperfusion`` process, send it ``signum`` once ``marker`` is printed.

    ``command`` replaces the ``skperfusion`` program (e.g. ``python -c`` of a script
    that calls :func:`skperfusion.cli.main`). Returns the exit status and everything
    it printed (stdout and stderr).
    """
    # faulthandler: SIGABRT to a process that did not stop prints every thread's stack.
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONFAULTHANDLER="1")
    process = subprocess.Popen([*(command or _command()), *map(str, argv)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while marker.encode() not in output:
            assert time.monotonic() < deadline, output.decode(errors="replace")[-2000:]
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                assert chunk, f"ended before {marker!r}: {output.decode(errors='replace')}"
                output += chunk
        process.send_signal(signum)
        # One signal must stop it (no second Ctrl-C). Wait for the process itself (a
        # helper process it started may hold the pipe open), reading what it prints so
        # that a full pipe cannot block it.
        status, printed = _wait_reading(process, 90)
        output += printed
        if status is None:
            process.send_signal(signal.SIGABRT)
            output += _wait_reading(process, 30)[1]
            pytest.fail(f"{argv[0]} did not stop on the first {signal.Signals(signum).name}; "
                        f"where it was:\n{output.decode(errors='replace')[-6000:]}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    return status, output.decode(errors="replace")


# --- no silent overwrite, never over an input -------------------------------------------------

def test_train_refuses_to_write_over_its_input_even_with_overwrite(cohort, capsys):
    victim = cohort / "sub-001" / "dsc.nii.gz"
    before = _digest(cohort)
    _refused(capsys, ["train", cohort, victim, "--overwrite", "--epochs", "1"], victim,
             "input of this run")
    _refused(capsys, ["train", cohort, "--out", victim, "--epochs", "1"], victim)
    assert _digest(cohort) == before


def test_train_refuses_an_existing_model_without_overwrite(cohort, tmp_path, capsys):
    model = tmp_path / "phae.pt"
    model.write_bytes(b"an earlier model")
    _refused(capsys, ["train", cohort, model, "--epochs", "1"], model, "--overwrite")
    assert model.read_bytes() == b"an earlier model"


@pytest.mark.slow
def test_maps_refuses_existing_maps_and_a_folder_in_their_place(cohort, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["maps", str(cohort / "sub-002"), "--out", str(out)]) == 0
    capsys.readouterr()
    before = _digest(out)
    cbf, cbv = _output(out, "cbf"), _output(out, "cbv")
    _refused(capsys, ["maps", cohort / "sub-002", out], cbf, "--overwrite")
    cbv.unlink()
    cbv.mkdir()
    _refused(capsys, ["maps", cohort / "sub-002", out, "--overwrite"], cbv, "is a folder")
    assert _digest(out) == {k: v for k, v in before.items() if not k.endswith("_cbv.nii.gz")}
    assert _temporaries(out) == []


@pytest.mark.slow
def test_overwritten_maps_do_not_mix_two_runs(cohort, tmp_path):
    out = tmp_path / "maps"
    assert main(["maps", str(cohort / "sub-002"), str(out)]) == 0
    assert _output(out, "rcbf").is_file()
    exam = tmp_path / "sub-002"
    shutil.copytree(cohort / "sub-002", exam)
    (exam / "nawm_mask.nii.gz").unlink()  # no rCBF / rCBV for this one
    assert main(["maps", str(exam), str(out), "--overwrite"]) == 0
    names = {p.name.split("_")[-1] for p in out.rglob("*") if p.is_file()}
    assert "rcbf.nii.gz" not in names and "rcbv.nii.gz" not in names
    assert "cbf.nii.gz" in names and _temporaries(out) == []


def test_maps_refuses_to_write_over_its_exam(cohort, tmp_path, capsys):
    exam = tmp_path / "sub-copy"
    shutil.copytree(cohort / "sub-001", exam)
    before = _digest(exam)
    _refused(capsys, ["maps", exam, exam, "--overwrite"], exam,
             "inside an exam or cohort folder")
    # A link to the exam's own ground truth, elsewhere, is an input too.
    out = tmp_path / "out"
    link = out / "sub-copy" / "perf" / "sub-copy_desc-gt_cbf.nii.gz"
    link.parent.mkdir(parents=True)
    link.symlink_to(exam / "gt_CBF.nii.gz")
    _refused(capsys, ["maps", exam, out, "--desc", "gt", "--overwrite"], link,
             "input of this run")
    assert _digest(exam) == before


def test_maps_desc_must_stay_in_the_output_folder(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    _refused(capsys, ["maps", cohort / "sub-001", out, "--desc", "../x_"], "--desc",
             "../x_")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_study_refuses_an_earlier_report(cohort, tmp_path, capsys):
    out = tmp_path / "study"
    out.mkdir()
    (out / "report.md").write_text("an earlier report")
    _refused(capsys, ["study", cohort, "--out", out, *TINY_STUDY], out / "report.md",
             "--overwrite")
    assert [p.name for p in out.iterdir()] == ["report.md"]


def test_simulate_refuses_existing_folders(cohort, tmp_path, capsys):
    before = _digest(cohort)
    _refused(capsys, ["simulate", cohort, "--n-subjects", "2"], cohort, "--overwrite")
    assert _digest(cohort) == before
    # A folder without a cohort is never replaced, even with --overwrite.
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "thesis.tex").write_text("years of work")
    _refused(capsys, ["simulate", papers, "--n-subjects", "2", "--overwrite"], papers,
             "even with --overwrite", "may hold data of yours")
    assert (papers / "thesis.tex").read_text() == "years of work"
    # An earlier simulated cohort is replaced as a whole with --overwrite.
    other = tmp_path / "other"
    assert main(["simulate", str(other), "--n-subjects", "3", "--shape", "8", "8", "1"]) == 0
    assert main(["simulate", str(other), "--n-subjects", "2", "--shape", "8", "8", "1",
                 "--overwrite"]) == 0
    assert sorted(p.name for p in other.iterdir()) == [".skperfusion-cohort.json",
                                                       "participants.tsv", "sub-001", "sub-002"]
    assert _temporaries(tmp_path) == []


def test_simulate_overwrite_replaces_only_what_it_wrote(cohort, tmp_path, capsys):
    # A real cohort (participants.tsv, no record of being simulated) is never replaced.
    real = tmp_path / "real"
    shutil.copytree(cohort, real)
    (real / ".skperfusion-cohort.json").unlink()
    (real / "my_notes.txt").write_text("notes")
    before = _digest(real)
    _refused(capsys, ["simulate", real, "--n-subjects", "2", "--overwrite"], real,
             "even with --overwrite")
    assert _digest(real) == before
    # A simulated cohort with a file added, or a file changed, is not replaced either.
    simulated = tmp_path / "simulated"
    shutil.copytree(cohort, simulated)
    (simulated / "sub-002" / "notes.txt").write_text("mine")
    before = _digest(simulated)
    _refused(capsys, ["simulate", simulated, "--n-subjects", "2", "--overwrite"],
             simulated / "sub-002" / "notes.txt", "not written by skperfusion")
    assert _digest(simulated) == before
    (simulated / "sub-002" / "notes.txt").unlink()
    with open(simulated / "participants.tsv", "a") as table:
        table.write("sub-real\tHGG\n")
    before = _digest(simulated)
    _refused(capsys, ["simulate", simulated, "--n-subjects", "2", "--overwrite"],
             simulated / "participants.tsv", "changed")
    assert _digest(simulated) == before
    assert _temporaries(tmp_path) == []


def test_the_output_is_given_once(cohort, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["maps", str(cohort / "sub-001"), str(tmp_path / "a"), "--out",
              str(tmp_path / "b")])
    assert info.value.code == 2
    assert "the output is given twice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["maps", str(cohort / "sub-001")])
    assert info.value.code == 2
    assert "OUT_DIR (or --out PATH) is required" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.subprocess
def test_stale_temporaries_of_a_killed_run_are_cleaned(cohort, tmp_path):
    # Where the maps go (the folder of the CBF map under OUT), from a first run.
    assert main(["maps", str(cohort / "sub-003"), str(tmp_path / "first")]) == 0
    folder = _output(tmp_path / "first", "cbf").parent.relative_to(tmp_path / "first")
    out = tmp_path / "maps"
    (out / folder).mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = out / folder / f".skperfusion-tmp-{int(dead.stdout)}-{_io._HOST}-00000000-x.nii.gz"
    stale.write_bytes(b"half a map")
    assert main(["maps", str(cohort / "sub-003"), str(out)]) == 0
    assert not stale.exists() and _temporaries(out) == []
    for name in PERFUSION_MAPS:
        assert _output(out, name.lower()).is_file()


def _maps_digest(folder):
    """Content of the maps and AIF table under ``folder`` (not the figures and reports)."""
    return {name: digest for name, digest in _digest(folder).items()
            if name.endswith((".nii.gz", ".tsv"))}


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_concurrent_maps_runs_into_one_folder_one_wins(cohort, tmp_path):
    exam = cohort / "sub-001"
    # Two runs writing the same names with different content (the AIF scaled or not).
    options = {"plain": [], "scaled": ["--aif-scaling", "vof"]}
    expected = {}
    for run, extra in options.items():
        assert main(["maps", str(exam), str(tmp_path / run), "--aif-plot", *extra]) == 0
        expected[run] = _maps_digest(tmp_path / run)
    assert expected["plain"].keys() == expected["scaled"].keys()
    assert expected["plain"] != expected["scaled"]
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # --aif-plot imports matplotlib between the early check and the commit: both runs
    # pass the early check before either commits.
    runs = {run: subprocess.Popen([*_command(), "maps", str(exam), str(out), "--aif-plot",
                                   *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
            for run, extra in options.items()}
    results = {name: (run.wait(timeout=120), run.stderr.read()) for name, run in runs.items()}
    for run in runs.values():
        run.stdout.close()
        run.stderr.close()
    winners = [method for method, (status, _) in results.items() if status == 0]
    assert len(winners) == 1, results
    (loser,) = set(results) - set(winners)
    status, error = results[loser]
    line = error.strip().splitlines()[-1]  # after the QC notes both runs print
    assert status == 2 and line.startswith("skperfusion maps: error: "), error
    assert str(out) in line and "--overwrite" in line, error
    assert _maps_digest(out) == expected[winners[0]]
    assert _temporaries(out) == []


@pytest.mark.slow
def test_maps_mask_selects_the_mapped_voxels(cohort, tmp_path, capsys):
    exam = cohort / "sub-001"
    assert main(["maps", str(exam), str(tmp_path / "brain")]) == 0
    tumor = nib.load(exam / "tumor_mask.nii.gz").get_fdata() > 0
    nawm = nib.load(exam / "nawm_mask.nii.gz").get_fdata() > 0
    brain = nib.load(_output(tmp_path / "brain", "cbf")).get_fdata()
    for name, mask in (("tumor", tumor), ("nawm", nawm)):
        assert main(["maps", str(exam), str(tmp_path / name), "--mask", name]) == 0
        cbf = nib.load(_output(tmp_path / name, "cbf")).get_fdata()
        assert np.isnan(cbf[~mask]).all()
        # oSVD maps each voxel on its own: the same values as in the brain run.
        np.testing.assert_allclose(cbf[mask], brain[mask], rtol=1e-6)
    assert not any("rcbf" in p.name.lower() for p in (tmp_path / "tumor").rglob("*"))
    _output(tmp_path / "nawm", "rcbf")
    copy = tmp_path / "sub-009"
    shutil.copytree(exam, copy)
    (copy / "tumor_mask.nii.gz").unlink()
    capsys.readouterr()
    _refused(capsys, ["maps", copy, tmp_path / "none", "--mask", "tumor"], "--mask tumor",
             copy / "tumor_mask.nii.gz")
    assert not (tmp_path / "none").exists()


def test_maps_outputs_never_land_in_the_exam_folder(cohort, tmp_path, capsys):
    exam = tmp_path / "sub-001"
    shutil.copytree(cohort / "sub-001", exam)
    (exam / "aif_mask.nii.gz").unlink()
    before = _digest(exam)
    _refused(capsys, ["maps", exam, exam, "--aif", "auto"], exam, "refusing to write",
             "choose another output")
    assert _digest(exam) == before


@pytest.mark.parametrize(("name", "message"), [
    (".skperfusion-tmp-1-00000000-00000000-phae.pt", "reserved"), ("x" * 250 + ".pt", "bytes long"),
])
def test_reserved_and_overlong_output_names_are_refused_leaving_nothing(cohort, tmp_path, capsys,
                                                                         name, message):
    _refused(capsys, ["train", cohort, tmp_path / "new" / name, "--epochs", "1"], message)
    assert list(tmp_path.iterdir()) == []


def _resave(path, affine=None, codes=None):
    image = nib.load(path)
    header = image.header.copy()
    affine = image.affine if affine is None else affine
    if codes is not None:
        header.set_qform(affine, code=codes)
        header.set_sform(affine, code=codes)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine, header), path)


@pytest.mark.parametrize("change", ["shifted 50 mm", "flipped left-right", "2 mm voxels"])
def test_a_mask_on_another_grid_is_refused_naming_both_affines(cohort, tmp_path, capsys,
                                                               change):
    exam = tmp_path / "sub-001"
    shutil.copytree(cohort / "sub-001", exam)
    dsc = nib.load(exam / "dsc.nii.gz").affine
    moved = dsc.copy()
    if change == "shifted 50 mm":
        moved[0, 3] += 50.0
    elif change == "flipped left-right":
        moved[0, :] = -moved[0, :]
    else:
        moved[:3, :3] = 2.0 * moved[:3, :3] / np.abs(moved[:3, :3]).sum(axis=0)
    _resave(exam / "brain_mask.nii.gz", moved)
    line = _refused(capsys, ["maps", exam, tmp_path / "out"], exam / "brain_mask.nii.gz",
                    exam / "dsc.nii.gz", "not on the grid")
    for affine in (moved, dsc):
        assert " ".join(f"{v:.6g}" for v in affine[0]) in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_maps_and_the_aif_mask_keep_the_input_header_codes(cohort, tmp_path):
    exam = tmp_path / "sub-001"
    shutil.copytree(cohort / "sub-001", exam)
    _resave(exam / "dsc.nii.gz", codes=1)  # scanner space, as dcm2niix writes it
    assert main(["maps", str(exam), str(tmp_path / "out")]) == 0
    for name in ("cbf", "aifmask"):
        image = nib.load(_output(tmp_path / "out", name))
        assert (int(image.header["qform_code"]), int(image.header["sform_code"])) == (1, 1), name
        np.testing.assert_allclose(image.affine, nib.load(exam / "dsc.nii.gz").affine)


# --- cohort paths stay inside the cohort --------------------------------------------------------

def _cohort_copy(cohort, tmp_path):
    copy = tmp_path / "cohort"
    shutil.copytree(cohort, copy)
    return copy, pd.read_csv(copy / "participants.tsv", sep="\t", dtype=str)


@pytest.mark.parametrize("bad_id", ["../outside/evil", "/tmp/evil", "sub-001/..", "sub-0_1",
                                    ".."])
def test_participant_ids_must_be_single_folder_names(cohort, tmp_path, capsys, bad_id):
    copy, table = _cohort_copy(cohort, tmp_path)
    table.loc[1, "participant_id"] = bad_id
    table.to_csv(copy / "participants.tsv", sep="\t", index=False)
    model = tmp_path / "phae.pt"
    line = _refused(capsys, ["train", copy, model, "--epochs", "1"], repr(bad_id), "row 2",
                    "participants.tsv")
    assert "sub-[A-Za-z0-9]+" in line
    _refused(capsys, ["study", copy, "--out", tmp_path / "study", *TINY_STUDY], "row 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]


def test_subject_folders_linking_outside_the_cohort_need_an_option(cohort, tmp_path, capsys):
    copy, _ = _cohort_copy(cohort, tmp_path)
    outside = tmp_path / "elsewhere"
    (copy / "sub-003").rename(outside)
    (copy / "sub-003").symlink_to(outside, target_is_directory=True)
    _refused(capsys, ["train", copy, tmp_path / "phae.pt", "--epochs", "1"], "sub-003",
             "row 3", "leads outside", "--allow-external-links")
    assert load_exam_ids(copy, allow_external_links=True) == ["sub-001", "sub-002", "sub-003",
                                                              "sub-004"]
    # A link that stays inside the cohort is fine.
    (copy / "sub-003").unlink()
    outside.rename(copy / "data-003")
    (copy / "sub-003").symlink_to(copy / "data-003", target_is_directory=True)
    assert load_exam_ids(copy) == ["sub-001", "sub-002", "sub-003", "sub-004"]


def load_exam_ids(root, **kwargs):
    from skperfusion.exam import load_cohort

    return [exam.subject_id for exam in load_cohort(root, require_rois=False, **kwargs)]


def test_ids_in_study_csvs_cannot_run_as_formulas(tmp_path):
    from skperfusion._io import write_csv

    table = pd.DataFrame({"oSVD": [1.5, -0.5], "grade": ["HGG", "@SUM(A1)"]},
                         index=pd.Index(["=cmd|' /C calc'!A0", "sub-002"],
                                        name="participant_id"))
    write_csv(table, tmp_path / "ratios.csv")
    lines = (tmp_path / "ratios.csv").read_text().splitlines()
    assert lines == ["participant_id,oSVD,grade", "'=cmd|' /C calc'!A0,1.5,HGG",
                     "sub-002,-0.5,'@SUM(A1)"]


# --- degenerate voxels and nonsense input -------------------------------------------------------

def _edit_signal(folder, edit):
    image = nib.load(folder / "dsc.nii.gz")
    data = np.asarray(image.dataobj, dtype=np.float32)
    edit(data)
    nib.save(nib.Nifti1Image(data, image.affine, image.header), folder / "dsc.nii.gz")


@pytest.mark.slow
def test_one_zero_sample_gives_nan_for_that_voxel_only(cohort, tmp_path):
    exam = tmp_path / "sub-001"
    shutil.copytree(cohort / "sub-001", exam)
    brain = nib.load(exam / "brain_mask.nii.gz").get_fdata() > 0
    aif = nib.load(exam / "aif_mask.nii.gz").get_fdata() > 0
    voxel = tuple(np.argwhere(brain & ~aif)[7])
    n_skip = json.loads((exam / "dsc.json").read_text()).get("NonSteadyStateVolumes", 0)

    def zero_one_sample(data):
        data[(*voxel, n_skip + 20)] = 0.0

    _edit_signal(exam, zero_one_sample)
    assert main(["maps", str(cohort / "sub-001"), str(tmp_path / "clean")]) == 0
    with pytest.warns(UserWarning, match=r"subject sub-001: 1 of \d+ selected voxel\(s\) "
                                         rf"\(first: voxel \({voxel[0]}, {voxel[1]}, "
                                         rf"{voxel[2]}\)\) have a zero or negative signal"
                      ) as record:
        assert main(["maps", str(exam), str(tmp_path / "degenerate")]) == 0
    assert len([w for w in record if "zero or negative" in str(w.message)]) == 1
    for name in PERFUSION_MAPS:
        clean = nib.load(_output(tmp_path / "clean", name.lower())).get_fdata()
        degenerate = nib.load(_output(tmp_path / "degenerate", name.lower())).get_fdata()
        assert np.isnan(degenerate[voxel])
        others = np.ones(brain.shape, bool)
        others[voxel] = False
        np.testing.assert_allclose(degenerate[others], clean[others], rtol=1e-6,
                                   equal_nan=True)


@pytest.mark.parametrize("name", [  # the parametric fit is the slow one
    pytest.param(name, marks=pytest.mark.slow) if name == "parametric" else name
    for name in available_deconvolvers()])
def test_a_zero_aif_gives_nan_maps_in_every_deconvolver(name):
    from skperfusion.datasets import gamma_variate

    aif = gamma_variate(np.arange(30.0), t0=5.0, peak=30.0)
    X = np.stack([np.stack([0.05 * aif, aif]), np.stack([0.05 * aif, 0 * aif]),
                  np.stack([0.04 * aif, aif])])
    deconvolver = make_deconvolver(name)
    if get_deconvolver(name).trainable:
        deconvolver.set_params(max_epochs=1, module__width=4)
    deconvolver.fit(X[[0, 2]])
    with pytest.warns(UserWarning, match=r"1 of 3 sample\(s\) have an AIF with no positive "
                                         r"value.*CBF is undefined, not 0"):
        maps = deconvolver.transform(X)
    assert np.isnan(maps[1]).all()
    assert np.isfinite(maps[[0, 2], 0]).all()


def test_a_zero_arterial_signal_is_refused_naming_the_subject(cohort, tmp_path, capsys):
    exam = tmp_path / "sub-002"
    shutil.copytree(cohort / "sub-002", exam)
    aif = nib.load(exam / "aif_mask.nii.gz").get_fdata() > 0

    def zero_aif(data):
        data[aif] = 0.0

    _edit_signal(exam, zero_aif)
    _refused(capsys, ["maps", exam, tmp_path / "out"], "subject sub-002", "arterial signal")
    assert not (tmp_path / "out").exists()


def test_non_steady_state_volumes_near_the_series_length_warn(cohort, tmp_path):
    from skperfusion.exam import load_exam

    exam = tmp_path / "sub-003"
    shutil.copytree(cohort / "sub-003", exam)
    n_frames = nib.load(exam / "dsc.nii.gz").shape[3]
    sidecar = json.loads((exam / "dsc.json").read_text())
    sidecar["NonSteadyStateVolumes"] = n_frames - 5
    (exam / "dsc.json").write_text(json.dumps(sidecar))
    with pytest.warns(UserWarning, match=rf"NonSteadyStateVolumes={n_frames - 5} in the sidecar "
                                         rf".* leaves 5 of {n_frames} frames"):
        load_exam(exam)


def _sidecar(exam, text):
    (exam / "dsc.json").write_text(text)


@pytest.mark.parametrize(("text", "needles"), [
    ('{"EchoTime": 3e-05, "RepetitionTime": 1.5}', ["EchoTime=3e-05", "1000 times too small"]),
    ('{"EchoTime": 30, "RepetitionTime": 1.5}', ["EchoTime=30", "looks like milliseconds"]),
    ('{"EchoTime": 0.03, "RepetitionTime": 1e-300}', ["RepetitionTime=1e-300", "0.3-5 s"]),
    ('{"EchoTime": 1e-300, "RepetitionTime": 1.5}', ["EchoTime=1e-300", "0.001-0.12 s"]),
    ('{"EchoTime": Infinity, "RepetitionTime": 1.5}', ["finite positive", "inf"]),
    ('{"EchoTime": 3' + "0" * 5000 + ', "RepetitionTime": 1.5}', ["not valid JSON"]),
    ("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
    ('{"EchoTime": 0.03, "RepetitionTime": 1.5, "NonSteadyStateVolumes": 500}',
     ["NonSteadyStateVolumes=500", "fewer than 2 of the", "dsc.nii.gz"]),
])
def test_implausible_or_broken_sidecars_are_one_line_errors_naming_the_file(
        cohort, tmp_path, capsys, text, needles):
    exam = tmp_path / "sub-001"
    shutil.copytree(cohort / "sub-001", exam)
    _sidecar(exam, text)
    _refused(capsys, ["maps", exam, tmp_path / "out"], "subject sub-001", exam / "dsc.json",
             *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_unusual_timing_is_accepted_when_asked_for(cohort, tmp_path):
    exam = tmp_path / "sub-001"
    shutil.copytree(cohort / "sub-001", exam)
    sidecar = json.loads((exam / "dsc.json").read_text())
    _sidecar(exam, json.dumps({**sidecar, "RepetitionTime": 0.1}))
    assert main(["maps", str(exam), str(tmp_path / "out"), "--allow-unusual-timing"]) == 0


@pytest.mark.parametrize(("argv", "needles"), [
    (["train", "{cohort}", "{tmp}/m.pt", "--device", "banana"], ["--device 'banana'"]),
    (["maps", "{cohort}/sub-001", "{tmp}/out", "--method", "parametric", "--device", "banana"],
     ["--device 'banana'"]),
    (["train", "{cohort}", "{tmp}/m.pt", "--tr", "1e-9"], ["RepetitionTime=1e-09", "--tr"]),
    (["train", "{cohort}", "{tmp}/m.pt", "--precision", "tf32"],
     ["--precision tf32 needs --device cuda", "not cpu"]),
    (["maps", "{cohort}/sub-001", "{tmp}/out", "--method", "osvd", "--precision", "bfloat16"],
     ["--precision sets the arithmetic of the PHAE", "--method osvd does not take it"]),
    (["simulate", "{tmp}/big", "--shape", "100000", "100000", "100000"],
     ["--shape 100000 100000 100000", "GiB of memory"]),
])
def test_impossible_options_are_one_line_errors(cohort, tmp_path, capsys, argv, needles):
    _refused(capsys, [a.format(cohort=cohort, tmp=tmp_path) for a in argv], *needles)
    assert list(tmp_path.iterdir()) == []


def test_misleading_layouts_get_messages_that_name_the_remedy(cohort, tmp_path, capsys):
    from skperfusion.exam import load_exam

    # A cohort folder where an exam folder is expected.
    with pytest.raises(ValueError, match="is a cohort folder"):
        load_exam(cohort)
    # Zero-padded echo numbers.
    exam = tmp_path / "sub-me"
    exam.mkdir()
    for name in ("dsc_echo-01.nii.gz", "dsc_echo-02.nii.gz"):
        shutil.copyfile(cohort / "sub-001" / "dsc.nii.gz", exam / name)
    with pytest.raises(ValueError, match=r"dsc_echo-01\.nii\.gz: echo numbers have no leading "
                                         r"zeros \(BIDS\); rename it dsc_echo-1\.nii\.gz"):
        load_exam(exam)


@pytest.mark.parametrize(("rows", "needles"), [
    ([], ["lists no subjects"]),
    (["sub-001\tHGG\t1\textra"], ["row 1", "has 4 tab-separated fields, the header 3"]),
])
def test_bad_participant_tables_name_the_row(cohort, tmp_path, capsys, rows, needles):
    copy, _ = _cohort_copy(cohort, tmp_path)
    (copy / "participants.tsv").write_text("\n".join(["participant_id\tgrade\tage", *rows])
                                           + "\n")
    _refused(capsys, ["train", copy, tmp_path / "m.pt", "--epochs", "1"], "participants.tsv",
             *needles)


@pytest.mark.slow
def test_nan_samples_make_those_voxels_nan_counted(cohort, tmp_path):
    exam = tmp_path / "sub-001"
    shutil.copytree(cohort / "sub-001", exam)
    brain = nib.load(exam / "brain_mask.nii.gz").get_fdata() > 0
    outside = tuple(np.argwhere(~brain)[0])
    inside = tuple(np.argwhere(brain & (nib.load(exam / "aif_mask.nii.gz").get_fdata() == 0))[3])

    def nan_samples(data):
        data[(*outside, 10)] = np.nan
        data[(*inside, 30)] = np.nan

    _edit_signal(exam, nan_samples)
    with pytest.warns(UserWarning, match=rf"2 voxel\(s\) of .*dsc.nii.gz \(first: voxel "
                                         rf"\({outside[0]}, {outside[1]}, {outside[2]}\)\) "
                                         "hold NaN"):
        assert main(["maps", str(exam), str(tmp_path / "out")]) == 0
    assert main(["maps", str(cohort / "sub-001"), str(tmp_path / "clean")]) == 0
    cbf = nib.load(_output(tmp_path / "out", "cbf")).get_fdata()
    clean = nib.load(_output(tmp_path / "clean", "cbf")).get_fdata()
    assert np.isnan(cbf[inside])
    others = brain.copy()
    others[inside] = False
    np.testing.assert_allclose(cbf[others], clean[others], rtol=1e-6)


def test_a_nifti_given_as_model_is_not_a_model_file(cohort, tmp_path, capsys):
    image = cohort / "sub-001" / "dsc.nii.gz"
    line = _refused(capsys, ["maps", cohort / "sub-001", tmp_path / "out", "--method", "phae",
                             "--model", image], image, "is not a model file")
    assert "weights_only" not in line  # torch's unsafe advice is not passed on
    assert not (tmp_path / "out").exists()


def test_an_exam_shorter_than_the_grid_warns_with_the_numbers(cohort):
    from skperfusion.exam import load_exam
    from skperfusion.exam_estimators import PerfusionMapper

    exam = load_exam(cohort / "sub-001")
    frames = exam.n_times - exam.n_skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the exam's own grid: no padding, no warning
        PerfusionMapper(tr=exam.tr).fit([exam]).transform([exam])
    mapper = PerfusionMapper(tr=exam.tr, n_times=frames + 20).fit([exam])
    with pytest.warns(UserWarning, match=rf"subject sub-001: the mapping grid \({frames + 20} "
                                         rf"frames x .* than the exam \({frames} frames x .* the "
                                         r"20 grid points past its end are zero.*--n-times "
                                         rf"{frames}\)"):
        mapper.transform([exam])


# --- Ctrl-C on real processes -----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.subprocess
def test_ctrl_c_during_training_exits_130_and_saves_no_model(cohort, tmp_path):
    model = tmp_path / "phae.pt"
    status, output = _interrupt_when(
        ["train", cohort, model, "--epochs", "100000", *TINY_PHAE], "train_loss")
    assert status == 130, output
    assert "interrupted; no partial output was written" in output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.subprocess
def test_ctrl_c_during_a_study_exits_130_and_writes_no_report(tmp_path):
    # A cohort the study can run on (2 patients of each grade in the test split).
    cohort = tmp_path / "cohort"
    assert main(["simulate", str(cohort), "--n-subjects", "10", "--lgg-fraction", "0.5",
                 "--shape", "8", "8", "2", "--seed", "3"]) == 0
    out = tmp_path / "study"
    before = _digest(cohort)
    status, output = _interrupt_when(
        ["study", cohort, "--out", out, *TINY_STUDY, "--phae-epochs", "100000"], "train_loss")
    assert status == 130, output
    assert not out.exists()
    assert _digest(cohort) == before and _temporaries(tmp_path, cohort) == []


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize(("signum", "status", "n_jobs"), [
    (signal.SIGINT, 130, "1"), (signal.SIGTERM, 143, "1"), (signal.SIGINT, 130, "2"),
    (signal.SIGINT, 130, "2")])  # twice: a worker thread caught mid-write is a race
def test_a_stopped_simulate_leaves_no_cohort(tmp_path, signum, status, n_jobs):
    out = tmp_path / "new" / "cohort"
    code, output = _interrupt_when(
        ["simulate", out, "--n-subjects", "200", "--shape", "8", "8", "2", "--n-jobs", n_jobs],
        "waits for the signal", signum=signum,
        command=[sys.executable, "-c", _GATED_SIMULATE])
    assert code == status, output
    assert "no partial output was written" in output, output
    assert list(tmp_path.iterdir()) == []  # no temporary folder, no empty "new" folder


@pytest.mark.slow
@pytest.mark.subprocess
def test_ctrl_c_after_the_output_is_written_does_not_fail_the_run(tmp_path):
    out = tmp_path / "cohort"
    status, output = _interrupt_when(
        ["simulate", out, "--n-subjects", "2", "--shape", "8", "8", "2"], "wrote ")
    # Ignored once the command is done (0); or, caught between the commit and the end of
    # the command, reported as such (130), never as "nothing was written".
    assert status == 0 or (status == 130 and f"{out} had been written, complete" in output), (
        status, output)
    assert "Traceback" not in output
    assert sorted(p.name for p in out.iterdir()) == [".skperfusion-cohort.json",
                                                     "participants.tsv", "sub-001", "sub-002"]
    assert _temporaries(tmp_path) == []


@pytest.mark.slow
@pytest.mark.subprocess
def test_interrupted_demo_study_can_be_rerun(tmp_path, capsys):
    out = tmp_path / "study"
    status, output = _interrupt_when(
        ["study", "--demo", "--out", out, "--n-subjects", "200", "--shape", "8", "8", "2",
         "--n-jobs", "2"], "waits for the signal", command=[sys.executable, "-c", _GATED_SIMULATE])
    assert status == 130, output
    assert list(tmp_path.iterdir()) == []  # no demo cohort, no empty report folder
    demo = ["study", "--demo", "--out", str(out), "--n-subjects", "10", "--shape", "8", "8", "2",
            *TINY_STUDY, "--methods", "osvd"]
    # A half cohort of an older version: refused, and the remedy it suggests works.
    (out / "demo_cohort" / "sub-001").mkdir(parents=True)
    line = _refused(capsys, demo, "demo_cohort", "unfinished", "--overwrite")
    assert "remove it" in line
    assert main([*demo, "--overwrite"]) == 0
    ratios = pd.read_csv(out / "ratios.csv")
    assert len(ratios) > 0 and _temporaries(tmp_path) == []
    assert (out / "demo_cohort" / "demo_settings.json").is_file()
