"""skperfusion._io: all-or-nothing writes, output checks, contained paths, CSV escaping."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from skperfusion import _io
from skperfusion._io import (
    atomic_directory,
    atomic_write,
    check_inside,
    check_outputs,
    check_path_component,
    csv_safe,
    remove_stale_temporaries,
)


def _text(content):
    return lambda temp: temp.write_text(content)


def _old_set(folder):
    folder.mkdir(exist_ok=True)
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_text(f"old {name}")
    return {name: f"old {name}" for name in ("a.txt", "b.txt", "c.txt")}


def _contents(folder):
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_atomic_write_all_or_nothing(tmp_path):
    def fail(temp):
        temp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write({"a.txt": _text("a"), "b.txt": fail}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_a_whole_set(tmp_path):
    _old_set(tmp_path)
    paths = atomic_write({name: _text(f"new {name}") for name in ("a.txt", "b.txt")}, tmp_path)
    assert paths == [tmp_path / "a.txt", tmp_path / "b.txt"]
    assert _contents(tmp_path) == {"a.txt": "new a.txt", "b.txt": "new b.txt",
                                   "c.txt": "old c.txt"}


def test_files_of_the_earlier_set_are_removed_in_the_same_step(tmp_path, monkeypatch):
    old = _old_set(tmp_path)
    real_replace, calls = os.replace, []

    def failing_last(source, target):
        calls.append(source)
        if len(calls) == 3:  # a -> backup, temp -> a, b -> backup: fails
            raise OSError("rename failed")
        real_replace(source, target)

    monkeypatch.setattr(_io.os, "replace", failing_last)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write({"a.txt": _text("new a.txt")}, tmp_path, remove=["b.txt", "z.txt"])
    assert _contents(tmp_path) == old
    monkeypatch.setattr(_io.os, "replace", real_replace)
    atomic_write({"a.txt": _text("new a.txt")}, tmp_path, remove=["b.txt", "z.txt"])
    assert _contents(tmp_path) == {"a.txt": "new a.txt", "c.txt": "old c.txt"}


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        (path,) = atomic_write({"map.nii.gz": lambda temp: temp.write_bytes(b"x")}, tmp_path)
    finally:
        os.umask(mask)
    assert path.read_bytes() == b"x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["map.nii.gz"]


def test_a_folder_in_place_of_a_target_is_refused_before_writing(tmp_path):
    old = _old_set(tmp_path)
    (tmp_path / "b.txt").unlink()
    (tmp_path / "b.txt").mkdir()
    written = []

    def write(temp):
        written.append(temp)
        temp.write_text("new")

    with pytest.raises(IsADirectoryError, match=r"b\.txt: a folder of that name exists"):
        atomic_write({"a.txt": write, "b.txt": write}, tmp_path)
    assert written == []
    assert (tmp_path / "a.txt").read_text() == old["a.txt"] and (tmp_path / "b.txt").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt"]


def test_a_file_name_with_a_folder_part_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a single file name"):
        atomic_write({"../escape.txt": _text("x")}, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("failing_call", [1, 2, 3])
def test_a_failed_rename_restores_the_previous_set(tmp_path, monkeypatch, failing_call):
    # Renames: a->backup, temp->a, b->backup, temp->b, c->backup, temp->c.
    old = _old_set(tmp_path)
    real_replace, calls = os.replace, []

    def flaky_replace(source, target):
        calls.append(source)
        if len(calls) == 2 * failing_call:
            raise OSError("rename failed")
        real_replace(source, target)

    monkeypatch.setattr(_io.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write({name: _text(f"new {name}") for name in old}, tmp_path)
    assert _contents(tmp_path) == old


def test_a_stop_signal_during_the_renames_undoes_the_set(tmp_path, monkeypatch):
    # SIGINT arriving between two renames is held back; the set is undone and the
    # interrupt raised once the folder holds the previous files again.
    old = _old_set(tmp_path)
    real_replace, calls = os.replace, []

    def replace_then_interrupt(source, target):
        calls.append(source)
        real_replace(source, target)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(_io.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write({name: _text(f"new {name}") for name in old}, tmp_path)
    assert _contents(tmp_path) == old


@pytest.mark.subprocess
@pytest.mark.skipif(sys.platform == "win32", reason="process ids are not probed on Windows")
def test_stale_temporaries_of_dead_runs_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid, host = int(dead.stdout), _io._HOST
    stale = [tmp_path / f".skperfusion-tmp-{pid}-{host}-0a1b2c3d-CBF.nii.gz",
             tmp_path / f".skperfusion-bak-{pid}-{host}-0a1b2c3d-CBV.nii.gz"]
    for path in stale:
        path.write_text("left by a killed run")
    (tmp_path / f".skperfusion-tmp-{pid}-{host}-0a1b2c3d-cohort").mkdir()
    kept = [tmp_path / f".skperfusion-tmp-{os.getpid()}-{host}-0a1b2c3d-MTT.nii.gz",  # running
            # another machine's run, sharing the folder
            tmp_path / f".skperfusion-tmp-{pid}-{'f' * 8 if host != 'f' * 8 else '0' * 8}"
                       "-0a1b2c3d-Tmax.nii.gz",
            tmp_path / ".hidden-user-file"]
    for path in kept:
        path.write_text("not to be removed")
    atomic_write({"CBF.nii.gz": _text("new")}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in kept), "CBF.nii.gz"])
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "cohort"
    with pytest.raises(RuntimeError, match="half way"), atomic_directory(target) as folder:
        (folder / "sub-001").mkdir()
        raise RuntimeError("half way")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as folder:
        assert folder.parent == tmp_path and folder.name.startswith(".skperfusion-tmp-")
        (folder / "participants.tsv").write_text("participant_id\tgrade\n")
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]
    assert (target / "participants.tsv").is_file()


def test_atomic_directory_replaces_only_with_overwrite(tmp_path):
    target = tmp_path / "cohort"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="not empty; pass --overwrite"), \
            atomic_directory(target):
        pass
    with atomic_directory(target, overwrite=True) as folder:
        (folder / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]


def test_check_outputs_refuses_existing_outputs_and_inputs(tmp_path):
    cohort = tmp_path / "cohort"
    (cohort / "sub-001").mkdir(parents=True)
    (cohort / "sub-001" / "dsc.nii.gz").write_bytes(b"input")
    model = tmp_path / "model.pt"
    check_outputs([model], inputs=[cohort])
    model.write_bytes(b"old")
    with pytest.raises(FileExistsError, match=r"model.pt exists; pass --overwrite"):
        check_outputs([model], inputs=[cohort])
    check_outputs([model], inputs=[cohort], overwrite=True)
    victim = cohort / "sub-001" / "dsc.nii.gz"
    with pytest.raises(ValueError, match=r"dsc\.nii\.gz: it is or holds an input"):
        check_outputs([victim], inputs=[cohort], overwrite=True)
    link = tmp_path / "link.nii.gz"
    link.symlink_to(victim)
    with pytest.raises(ValueError, match=r"link\.nii\.gz: it is or holds an input"):
        check_outputs([link], inputs=[victim], overwrite=True)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_outputs([cohort / "sub-001"], overwrite=True)
    # Folder outputs: an empty one is free; one holding an input never is.
    check_outputs([tmp_path / "empty"], folders=True)
    with pytest.raises(ValueError, match="holds an input"):
        check_outputs([tmp_path], inputs=[cohort], folders=True, overwrite=True)
    with pytest.raises(FileExistsError, match="cohort exists; pass --overwrite"):
        check_outputs([cohort], folders=True)


@pytest.mark.parametrize("name", ["../outside/evil", "/etc/passwd", "a/b", "a\\b", "..", ".",
                                  "", "x\0y"])
def test_path_components_must_be_single_names(name):
    with pytest.raises(ValueError, match=r"row 3 .* is not a single file name"):
        check_path_component(name, what="participant_id in row 3 of participants.tsv")


def test_path_component_pattern():
    assert check_path_component("sub-001", pattern=r"sub-[A-Za-z0-9]+") == "sub-001"
    with pytest.raises(ValueError, match=r"matching sub-\[A-Za-z0-9\]\+"):
        check_path_component("sub-0_1", pattern=r"sub-[A-Za-z0-9]+")


def test_check_inside_follows_links(tmp_path):
    root, outside = tmp_path / "cohort", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "sub-001").mkdir()
    (root / "sub-002").symlink_to(outside)
    assert check_inside(root / "sub-001", root) == root / "sub-001"
    with pytest.raises(ValueError, match="sub-002 leads outside"):
        check_inside(root / "sub-002", root, what="subject folder")
    assert check_inside(root / "sub-002", root, allow_links=True) == root / "sub-002"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_safe_escapes_formulas(value):
    assert csv_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["sub-001", "HGG", 1.5, None, ""])
def test_csv_safe_keeps_plain_values(value):
    assert csv_safe(value) == value


def test_a_failed_write_removes_the_folders_it_created(tmp_path):
    def fail(temp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write({"a.txt": fail}, tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="half way"), atomic_directory(
            tmp_path / "new" / "cohort"):
        raise RuntimeError("half way")
    assert list(tmp_path.iterdir()) == []


def test_reserved_and_overlong_names_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        atomic_write({".skperfusion-tmp-1-00000000-00000000-a.txt": _text("a")}, tmp_path / "o")
    with pytest.raises(ValueError, match="bytes long"):
        atomic_write({"x" * 250: _text("a")}, tmp_path / "o")
    with pytest.raises(ValueError, match="reserved"):
        check_outputs([tmp_path / ".skperfusion-bak-map.nii.gz"])
    assert list(tmp_path.iterdir()) == []


def test_without_overwrite_a_name_taken_meanwhile_fails_the_whole_set(tmp_path):
    def taken_meanwhile(temp):
        temp.write_text("mine")
        (tmp_path / "b.txt").write_text("another run's")

    with pytest.raises(FileExistsError, match=r"b\.txt was written by another run"):
        atomic_write({"a.txt": _text("mine"), "b.txt": taken_meanwhile}, tmp_path,
                     overwrite=False)
    assert _contents(tmp_path) == {"b.txt": "another run's"}


@pytest.mark.subprocess
def test_a_lock_of_a_dead_run_is_broken_and_a_live_one_waited_for(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / ".skperfusion-lock").write_text(f"{int(dead.stdout)} {_io._HOST}\n")
    atomic_write({"a.txt": _text("a")}, tmp_path)
    assert _contents(tmp_path) == {"a.txt": "a"}
    (tmp_path / ".skperfusion-lock").write_text(f"{os.getpid()} {_io._HOST}\n")
    monkeypatch.setattr(_io, "_LOCK_WAIT_S", 0.05)
    with pytest.raises(TimeoutError, match=r"held .*skperfusion-lock"):
        atomic_write({"b.txt": _text("b")}, tmp_path)
    assert sorted(_contents(tmp_path)) == [".skperfusion-lock", "a.txt"]


def test_atomic_directory_with_a_manifest_replaces_only_what_it_wrote(tmp_path):
    target = tmp_path / "cohort"
    with atomic_directory(target, manifest=".skperfusion-list.json") as folder:
        (folder / "sub-1").mkdir()
        (folder / "sub-1" / "dsc.nii.gz").write_text("signal")
    listed = json.loads((target / ".skperfusion-list.json").read_text())["files"]
    assert listed == {"sub-1": None, "sub-1/dsc.nii.gz": 6}
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.txt was not written by skperfusion"), \
            atomic_directory(target, overwrite=True, manifest=".skperfusion-list.json"):
        pass
    (target / "notes.txt").unlink()
    with atomic_directory(target, overwrite=True, manifest=".skperfusion-list.json") as folder:
        (folder / "new.txt").write_text("new")
    assert sorted(_contents(target)) == [".skperfusion-list.json", "new.txt"]
