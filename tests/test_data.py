import gzip
import hashlib
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from genai_course import data
from genai_course.data import (
    DatasetNotFoundError,
    DatasetSpec,
    IDXFile,
    IDXFormatError,
    binarize,
    load_dataset,
    parse_idx,
)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, written independently of the parser."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


IMAGES = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
LABELS = np.array([3, 1, 4, 1, 5], dtype=np.uint8)


def tiny_spec(mirror: str = "http://127.0.0.1:9", **changes) -> DatasetSpec:
    """A five-image dataset in the IDX format, downloadable from ``mirror``."""
    files = {
        "train": (
            IDXFile("imgs", hashlib.sha256(idx_bytes(IMAGES)).hexdigest()),
            IDXFile("labs", hashlib.sha256(idx_bytes(LABELS)).hexdigest()),
        )
    }
    fields = dict(
        title="Tiny",
        name="tiny",
        mirrors=(mirror,),
        splits=files,
        classes=tuple("abcdef"),
        apt_package="dataset-tiny",
    )
    return DatasetSpec(**{**fields, **changes})


def write_gz(folder: Path, name: str, array: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# -- the IDX parser ----------------------------------------------------------


def test_parse_idx_reads_shape_and_values():
    np.testing.assert_array_equal(parse_idx(idx_bytes(IMAGES)), IMAGES)
    np.testing.assert_array_equal(parse_idx(idx_bytes(LABELS)), LABELS)


@pytest.mark.parametrize("magic", [b"\x00\x00\x0d\x03", b"\x01\x00\x08\x03", b"\x00\x00\x08\x00"])
def test_parse_idx_rejects_bad_magic(magic):
    raw = magic + idx_bytes(IMAGES)[4:]
    with pytest.raises(IDXFormatError, match=r"f\.idx: bad magic number 0x"):
        parse_idx(raw, source="f.idx")


def test_parse_idx_rejects_truncated_and_padded_files():
    raw = idx_bytes(IMAGES)
    with pytest.raises(
        IDXFormatError, match=r"95 bytes, but its header announces shape \(5, 4, 4\) \(96 bytes\)"
    ):
        parse_idx(raw[:-1])
    with pytest.raises(IDXFormatError, match="truncated or corrupt"):
        parse_idx(raw + b"\x00")
    with pytest.raises(IDXFormatError, match="too short for its header"):
        parse_idx(raw[:9])


# -- the search order ---------------------------------------------------------


def test_explicit_root_comes_first(tmp_path, monkeypatch):
    write_gz(tmp_path / "root", "imgs", IMAGES)
    write_gz(tmp_path / "root", "labs", LABELS)
    ds = load_dataset(tiny_spec(), root=tmp_path / "root")
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (5, 4, 4)
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [3, 1, 4, 1, 5]
    assert ds.classes[ds.labels[0]] == "d"


def test_environment_folder_then_system_folder(tmp_path, monkeypatch):
    write_gz(tmp_path / "env" / "tiny", "imgs", IMAGES)  # $GENAI_COURSE_DATA/<name>/
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys" / "labs").write_bytes(idx_bytes(LABELS))  # uncompressed works too
    monkeypatch.setenv("GENAI_COURSE_DATA", str(tmp_path / "env"))
    ds = load_dataset(tiny_spec(system_dirs=(str(tmp_path / "sys"),)))
    np.testing.assert_array_equal(ds.images.numpy(), IMAGES)
    np.testing.assert_array_equal(ds.labels.numpy(), LABELS)


def test_a_file_with_the_wrong_content_is_skipped_and_reported(tmp_path):
    write_gz(tmp_path / "root", "imgs", IMAGES[::-1])  # right format, wrong content
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(tiny_spec(), root=tmp_path / "root", download=False)
    message = str(info.value)
    assert "root=: " in message and "SHA-256 of its content is" in message
    assert "download: not attempted (download=False)" in message


def test_second_load_reads_the_decoded_cache(tmp_path):
    write_gz(tmp_path / "root", "imgs", IMAGES)
    write_gz(tmp_path / "root", "labs", LABELS)
    first = load_dataset(tiny_spec(), root=tmp_path / "root")
    for f in (tmp_path / "root").iterdir():
        f.unlink()  # the sources are gone: only the decoded cache can answer now
    second = load_dataset(tiny_spec(), root=tmp_path / "root", download=False)
    assert torch.equal(first.images, second.images)
    assert len(list((data.cache_dir() / "decoded").glob("tiny-*.npy"))) == 2


# -- the decoded cache ----------------------------------------------------------


def cached_root(tmp_path: Path) -> Path:
    """A root with the tiny dataset, loaded once: both files are in the decoded cache."""
    root = tmp_path / "root"
    write_gz(root, "imgs", IMAGES)
    write_gz(root, "labs", LABELS)
    load_dataset(tiny_spec(), root=root)
    return root


def decoded_cache(name: str) -> Path:
    (path,) = (data.cache_dir() / "decoded").glob(f"tiny-{name}-*.npy")
    return path


def flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]


DAMAGES = {  # name: (the file damaged, how)
    "truncated": ("imgs", lambda path, raw: path.write_bytes(raw[:-7])),
    "empty": ("labs", lambda path, raw: path.write_bytes(b"")),
    "flipped data byte": ("imgs", lambda path, raw: path.write_bytes(flip(raw, len(raw) - 20))),
    "flipped header byte": ("labs", lambda path, raw: path.write_bytes(flip(raw, 20))),
    "other labels": ("labs", lambda path, raw: np.save(path, np.array([0, 0, 9, 0, 0], np.uint8))),
    "labels as int64": ("labs", lambda path, raw: np.save(path, LABELS.astype(np.int64))),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_cache_is_decoded_again_with_a_warning(tmp_path, damage):
    root = cached_root(tmp_path)
    name, spoil = DAMAGES[damage]
    path = decoded_cache(name)
    good = path.read_bytes()
    spoil(path, good)
    with pytest.warns(data.DamagedCacheWarning, match=rf"{re.escape(str(path))} is damaged"):
        ds = load_dataset(tiny_spec(), root=root, download=False)
    np.testing.assert_array_equal(ds.images.numpy(), IMAGES)
    assert ds.labels.tolist() == [3, 1, 4, 1, 5]
    assert path.read_bytes() == good  # written again, and trusted from then on
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(tiny_spec(), root=root, download=False)
    assert leftovers(path.parent) == sorted(
        [path.name, decoded_cache("imgs" if name == "labs" else "labs").name]
    )


def test_a_damaged_cache_without_its_source_is_refused_not_used(tmp_path):
    root = cached_root(tmp_path)
    path = decoded_cache("labs")
    np.save(path, LABELS[::-1])  # well-formed, the right shape, the wrong labels
    for f in root.iterdir():
        f.unlink()
    with (
        pytest.warns(data.DamagedCacheWarning),
        pytest.raises(DatasetNotFoundError, match="Tiny file labs was not found"),
    ):
        load_dataset(tiny_spec(), root=root, download=False)
    assert not path.exists()  # it will not be warned about again


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch, error):
    write_gz(tmp_path / "root", "imgs", IMAGES)
    write_gz(tmp_path / "root", "labs", LABELS)

    def half_save(file, array):
        file.write(b"\x93NUMPY half an array")
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(data.np, "save", half_save)
        if isinstance(error, OSError):  # a full or read-only disk only costs speed
            ds = load_dataset(tiny_spec(), root=tmp_path / "root")
            assert ds.labels.tolist() == [3, 1, 4, 1, 5]
        else:
            with pytest.raises(KeyboardInterrupt):
                load_dataset(tiny_spec(), root=tmp_path / "root")
    assert leftovers(data.cache_dir() / "decoded") == []
    load_dataset(tiny_spec(), root=tmp_path / "root")
    assert len(leftovers(data.cache_dir() / "decoded")) == 2  # the next load caches them


def test_unknown_split_is_named():
    with pytest.raises(ValueError, match=r"split must be one of 'train', got 'valid'"):
        load_dataset(tiny_spec(), "valid")
    with pytest.raises(ValueError, match=r"split must be one of 'train', got \['train'\]"):
        load_dataset(tiny_spec(), ["train"])


# -- downloads from a local server ---------------------------------------------


def test_download_with_checksum(http_folder):
    folder, url = http_folder
    write_gz(folder, "imgs", IMAGES)
    write_gz(folder, "labs", LABELS)
    ds = load_dataset(tiny_spec(url))
    np.testing.assert_array_equal(ds.images.numpy(), IMAGES)
    saved = data.cache_dir() / "tiny"
    assert leftovers(saved) == ["imgs.gz", "labs.gz"]  # kept, nothing half-written
    assert (saved / "imgs.gz").read_bytes() == (folder / "imgs.gz").read_bytes()


def test_download_into_root(http_folder, tmp_path):
    folder, url = http_folder
    write_gz(folder, "imgs", IMAGES)
    write_gz(folder, "labs", LABELS)
    load_dataset(tiny_spec(url), root=tmp_path / "mine")
    assert leftovers(tmp_path / "mine") == ["imgs.gz", "labs.gz"]


def test_checksum_mismatch_is_refused_and_leaves_nothing(http_folder):
    folder, url = http_folder
    write_gz(folder, "imgs", IMAGES + 1)  # the server has a different file
    write_gz(folder, "labs", LABELS)
    with pytest.raises(
        DatasetNotFoundError, match=r"download http://127\.0\.0\.1:\d+/imgs\.gz: .*SHA-256"
    ):
        load_dataset(tiny_spec(url))
    assert leftovers(data.cache_dir() / "tiny") == []


def test_truncated_download_is_refused_and_leaves_nothing(http_folder):
    folder, url = http_folder
    write_gz(folder, "imgs", IMAGES)
    (folder / "imgs.gz").write_bytes((folder / "imgs.gz").read_bytes()[:-10])
    with pytest.raises(DatasetNotFoundError, match="not a complete gzip file"):
        load_dataset(tiny_spec(url))
    assert leftovers(data.cache_dir() / "tiny") == []


def test_server_down_lists_everything_tried(tmp_path, monkeypatch, closed_port):
    monkeypatch.setenv("GENAI_COURSE_DATA", str(tmp_path / "env"))
    down = f"http://127.0.0.1:{closed_port}"
    spec = tiny_spec(down, system_dirs=("/nonexistent/tiny",))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(spec, root=tmp_path / "root")
    lines = str(info.value).splitlines()
    assert lines[0] == "Tiny file imgs was not found. Tried, in order:"
    assert lines[1].startswith("  - root=: no imgs.gz or imgs in ")
    assert lines[2].startswith("  - $GENAI_COURSE_DATA: no imgs.gz or imgs in ")
    assert lines[3].startswith("  - user cache: no imgs.gz or imgs in ")
    assert lines[4] == "  - system folder: no imgs.gz or imgs in /nonexistent/tiny"
    assert lines[5].startswith(f"  - download {down}/imgs.gz: ")
    assert "sudo apt install dataset-tiny" in lines[6]
    assert leftovers(tmp_path / "root") == []


def test_unset_environment_variable_is_reported():
    with pytest.raises(DatasetNotFoundError, match=r"\$GENAI_COURSE_DATA: not set"):
        load_dataset(tiny_spec(), download=False)


# -- the real datasets ------------------------------------------------------------


def test_fashion_mnist_from_this_machine():
    train = data.load_fashion_mnist("train")
    test = data.load_fashion_mnist("test")
    assert train.images.shape == (60_000, 28, 28) and test.images.shape == (10_000, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [6000] * 10  # a balanced dataset
    assert train.classes[int(train.labels[0])] == "Ankle boot"


def test_mnist_spec_matches_fashion_mnist_layout():
    for split, (images, labels) in data.MNIST.splits.items():
        fashion = data.FASHION_MNIST.splits[split]
        assert (images.name, labels.name) == (fashion[0].name, fashion[1].name)
        assert len(images.sha256) == len(labels.sha256) == 64


# -- binarisation -------------------------------------------------------------------


def test_binarize_has_the_right_mean_and_is_reproducible():
    grey = torch.full((200, 28, 28), 64, dtype=torch.uint8)
    x = binarize(grey, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}
    assert abs(x.mean().item() - 64 / 255) < 0.005
    assert torch.equal(x, binarize(grey, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(binarize(torch.tensor([0.0, 1.0])), torch.tensor([0.0, 1.0]))


def test_binarize_rejects_signed_floats():
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        binarize(torch.tensor([-1.0, 0.5]))
    with pytest.raises(TypeError, match="uint8 or floating point"):
        binarize(torch.tensor([1, 2]))


# -- the Shakespeare corpus ----------------------------------------------------------


def test_shakespeare_splits_partition_the_text_by_position():
    text = data.load_shakespeare()
    parts = [data.load_shakespeare(split) for split in ("train", "valid", "test")]
    assert "".join(parts) == text
    assert len(text) == 1_036_004 and text.startswith("HAMLET, PRINCE OF DENMARK")
    assert [round(len(p) / len(text), 3) for p in parts] == [0.9, 0.05, 0.05]
    assert text.isascii() and "\r" not in text and "Gutenberg" not in text


def test_shakespeare_refuses_an_unknown_split_and_a_changed_file(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="split must be None or one of"):
        data.load_shakespeare("validation")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "shakespeare.txt").write_text("To be, or not to be")
    monkeypatch.setattr(data.resources, "files", lambda package: tmp_path)
    with pytest.raises(data.ChecksumError, match="SHA-256"):
        data.load_shakespeare()
