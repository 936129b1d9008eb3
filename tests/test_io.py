import os
import stat

import pytest

from skperfusion._io import atomic_write


def test_atomic_write_all_or_nothing(tmp_path):
    def fail(temp):
        temp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write({"a.txt": lambda temp: temp.write_text("a"), "b.txt": fail}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        (path,) = atomic_write({"map.nii.gz": lambda temp: temp.write_bytes(b"x")}, tmp_path)
    finally:
        os.umask(mask)
    assert path.read_bytes() == b"x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["map.nii.gz"]
