"""The book's datasets: Fashion-MNIST and MNIST, read from IDX files, and
the sequences chapter's Shakespeare corpus, which ships inside the package
(:func:`load_shakespeare`; ``genai_course/texts/README.md`` says where it
comes from).

For the image datasets:

Where the files come from, in this order (the first that has a file wins):

1. the folder passed as ``root=``;
2. ``$GENAI_COURSE_DATA/<dataset>`` (e.g. ``$GENAI_COURSE_DATA/fashion-mnist``);
3. the user cache, ``~/.cache/genai_course/<dataset>`` (``$XDG_CACHE_HOME`` moves it);
4. system folders, e.g. ``/usr/share/datasets/fashion-mnist`` where Debian's
   ``dataset-fashion-mnist`` package puts the four ``.gz`` files;
5. a download from the dataset's official address into ``root`` (if given)
   or the user cache.

Every file's content is checked against its SHA-256 (of the decompressed IDX
bytes, so a re-compressed copy such as Debian's is accepted). A download is
written to a temporary file and renamed only once it checks out, so a
truncated or corrupt download leaves nothing behind. Decoded arrays are
cached as ``.npy`` files in ``<user cache>/decoded``, so a second load is fast. A
cached array is used only if it still is the verified content: the SHA-256 of
its IDX form (its header, then its bytes) must be the dataset's. A damaged one
(truncated, changed bytes, another array) is deleted and decoded again from the
files above, with a warning (:class:`DamagedCacheWarning`) that names it. A
cache write goes to a temporary file in the same folder and is renamed once
complete; a failed write removes it, and only costs speed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import struct
import tempfile
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from genai_course.config import check_positive_int, show_progress

DATA_ENV_VAR = "GENAI_COURSE_DATA"


class IDXFormatError(ValueError):
    """The bytes are not a well-formed IDX file of unsigned bytes."""


class ChecksumError(ValueError):
    """A file's content does not have the SHA-256 the dataset publishes."""


class DatasetNotFoundError(FileNotFoundError):
    """No place in the search order had the file and the download failed."""


class DamagedCacheWarning(UserWarning):
    """A decoded ``.npy`` cache was not the verified content; it is decoded again."""


@dataclass(frozen=True)
class IDXFile:
    name: str  # file name without .gz, e.g. "train-images-idx3-ubyte"
    sha256: str  # SHA-256 of the decompressed IDX bytes


@dataclass(frozen=True)
class DatasetSpec:
    """Where one IDX dataset lives and how to recognise its files."""

    title: str  # for messages: "Fashion-MNIST"
    name: str  # folder name under the data and cache folders: "fashion-mnist"
    mirrors: tuple[str, ...]  # base URLs tried in order; a file is <mirror>/<name>.gz
    splits: dict[str, tuple[IDXFile, IDXFile]]  # split -> (images, labels)
    classes: tuple[str, ...]  # class names, indexed by label
    system_dirs: tuple[str, ...] = ()  # folders a system package installs into
    apt_package: str | None = None  # the Debian package that provides the files


class ImageDataset(NamedTuple):
    images: torch.Tensor  # (N, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]  # classes[label] is the label's name


FASHION_MNIST = DatasetSpec(
    title="Fashion-MNIST",
    name="fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",),
    splits={
        "train": (
            IDXFile(
                "train-images-idx3-ubyte",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            IDXFile(
                "train-labels-idx1-ubyte",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
        ),
        "test": (
            IDXFile(
                "t10k-images-idx3-ubyte",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            IDXFile(
                "t10k-labels-idx1-ubyte",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        ),
    },
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    apt_package="dataset-fashion-mnist",
)

MNIST = DatasetSpec(
    title="MNIST",
    name="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist",
    ),
    splits={
        "train": (
            IDXFile(
                "train-images-idx3-ubyte",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            IDXFile(
                "train-labels-idx1-ubyte",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
        ),
        "test": (
            IDXFile(
                "t10k-images-idx3-ubyte",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            IDXFile(
                "t10k-labels-idx1-ubyte",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        ),
    },
    classes=tuple(str(digit) for digit in range(10)),
    system_dirs=("/usr/share/datasets/mnist",),
)


def cache_dir() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/genai_course``, by default ``~/.cache/genai_course``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genai_course"


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode an IDX file of unsigned bytes (the MNIST format) into an array.

    Layout: two zero bytes, the type code ``0x08`` (unsigned byte), the number
    of dimensions ``d``, then ``d`` big-endian 32-bit sizes, then the data.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] == 0:
        raise IDXFormatError(
            f"{source}: bad magic number 0x{raw[:4].hex()}; an IDX file of unsigned "
            "bytes starts with 0x000008 followed by its number of dimensions"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{source}: {len(raw)} bytes is too short for its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape)
    if len(raw) != expected:
        raise IDXFormatError(
            f"{source}: {len(raw)} bytes, but its header announces shape {shape} "
            f"({expected} bytes): the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _verified_content(data: bytes, gzipped: bool, sha256: str, source: str) -> bytes:
    """Decompress if needed and check the SHA-256 of the IDX bytes."""
    if gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise ChecksumError(f"{source}: not a complete gzip file ({err})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ChecksumError(f"{source}: SHA-256 of its content is {digest}, expected {sha256}")
    return data


def download(url: str, dest: str | Path, sha256: str, *, timeout: float = 30.0) -> bytes:
    """Fetch a gzip'd IDX file from ``url`` to ``dest`` and return its IDX bytes.

    The file is streamed to a temporary file beside ``dest`` with a progress
    bar, its decompressed content is checked against ``sha256``, and only then
    is it renamed to ``dest``: on any failure nothing is left behind.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not show_progress()
            ) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
        content = _verified_content(tmp.read_bytes(), True, sha256, source=url)
        os.replace(tmp, dest)
        return content
    finally:
        tmp.unlink(missing_ok=True)


def _search_dirs(spec: DatasetSpec, root: str | Path | None) -> list[tuple[str, Path | None]]:
    """(label, folder) in search order; folder None means 'not configured'."""
    env = os.environ.get(DATA_ENV_VAR)
    return [
        *([("root=", Path(root))] if root is not None else []),
        (f"${DATA_ENV_VAR}", Path(env) / spec.name if env else None),
        ("user cache", cache_dir() / spec.name),
        *[("system folder", Path(folder)) for folder in spec.system_dirs],
    ]


def _fetch_idx(spec: DatasetSpec, file: IDXFile, root, allow_download: bool) -> bytes:
    """The verified IDX bytes of ``file``, from the first place in the search order."""
    tried = []
    for label, folder in _search_dirs(spec, root):
        if folder is None:
            tried.append(f"{label}: not set")
            continue
        for path, gzipped in ((folder / f"{file.name}.gz", True), (folder / file.name, False)):
            if path.is_file():
                try:
                    return _verified_content(path.read_bytes(), gzipped, file.sha256, str(path))
                except ChecksumError as err:
                    tried.append(f"{label}: {err}")
                    break
        else:
            tried.append(f"{label}: no {file.name}.gz or {file.name} in {folder}")
    if allow_download:
        dest = (Path(root) if root is not None else cache_dir() / spec.name) / f"{file.name}.gz"
        for mirror in spec.mirrors:
            url = f"{mirror.rstrip('/')}/{file.name}.gz"
            try:
                return download(url, dest, file.sha256)
            except (OSError, ChecksumError) as err:
                tried.append(f"download {url}: {err}")
    else:
        tried.append("download: not attempted (download=False)")
    fixes = [
        f"put the .gz files in a folder and pass root=... or set {DATA_ENV_VAR}",
        "or connect to the internet and load again (download=True)",
    ]
    if spec.apt_package:
        fixes.insert(0, f"on Debian or Ubuntu: sudo apt install {spec.apt_package}")
    raise DatasetNotFoundError(
        f"{spec.title} file {file.name} was not found. Tried, in order:\n  - "
        + "\n  - ".join(tried)
        + "\nTo fix it: "
        + "; ".join(fixes)
        + "."
    )


def _idx_header(shape: tuple[int, ...]) -> bytes:
    """The header of an IDX file of unsigned bytes of ``shape`` (see :func:`parse_idx`)."""
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def _is_content(array, sha256: str) -> bool:
    """Whether ``array`` is the IDX file of SHA-256 ``sha256``: uint8, and the
    SHA-256 of its header followed by its bytes is ``sha256``."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or not 1 <= array.ndim < 256:
        return False
    digest = hashlib.sha256(_idx_header(array.shape))
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest() == sha256


def _read_cache(path: Path, sha256: str) -> np.ndarray | None:
    """The array cached at ``path`` if it is the verified content of SHA-256
    ``sha256``; None if there is no cache, or it was damaged (then it is deleted,
    with a :class:`DamagedCacheWarning` naming it)."""
    if not path.is_file():
        return None
    try:
        array = np.load(path)  # allow_pickle=False: a file holding code is refused
        problem = None if _is_content(array, sha256) else "its content is not the dataset's"
    except Exception as err:  # numpy raises many kinds (ValueError, EOFError, ...): one answer
        problem = f"it cannot be read ({type(err).__name__})"
    if problem is None:
        return array
    warnings.warn(
        f"the decoded cache {path} is damaged: {problem}. It is deleted and decoded again "
        "from the verified dataset files",
        DamagedCacheWarning,
        stacklevel=4,
    )
    with contextlib.suppress(OSError):  # a read-only cache: warned about again next time
        path.unlink(missing_ok=True)
    return None


def _write_cache(path: Path, array: np.ndarray) -> None:
    """Save ``array`` to ``path`` through a temporary file in the same folder,
    renamed once complete; on any failure the temporary file is removed. A
    cache that cannot be written (a read-only or full disk) only costs speed."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as out:
            np.save(out, array)
        os.replace(tmp, path)
    except OSError:
        pass  # the next load decodes again
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _load_array(spec: DatasetSpec, file: IDXFile, root, allow_download: bool) -> np.ndarray:
    """Decoded array of ``file``; decoded once, then read from the checked ``.npy`` cache."""
    decoded = cache_dir() / "decoded" / f"{spec.name}-{file.name}-{file.sha256[:16]}.npy"
    cached = _read_cache(decoded, file.sha256)
    if cached is not None:
        return cached
    array = parse_idx(_fetch_idx(spec, file, root, allow_download), source=file.name)
    _write_cache(decoded, array)
    return array.copy()  # np.frombuffer gave a read-only view of the bytes


def load_dataset(
    spec: DatasetSpec,
    split: str = "train",
    *,
    root: str | Path | None = None,
    download: bool = True,
) -> ImageDataset:
    """Load one split of an IDX image dataset described by ``spec``."""
    if not isinstance(split, str) or split not in spec.splits:
        raise ValueError(f"split must be one of {', '.join(map(repr, spec.splits))}, got {split!r}")
    images_file, labels_file = spec.splits[split]
    images = _load_array(spec, images_file, root, download)  # (N, 28, 28)
    labels = _load_array(spec, labels_file, root, download)  # (N,)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise IDXFormatError(
            f"{spec.title} {split}: images {images.shape} and labels {labels.shape} do not match"
        )
    return ImageDataset(
        torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), spec.classes
    )


def load_fashion_mnist(
    split: str = "train", *, root: str | Path | None = None, download: bool = True
) -> ImageDataset:
    """Fashion-MNIST: ``images`` (N, 28, 28) uint8, ``labels`` (N,) int64, ``classes``.

    60,000 training and 10,000 test images of clothing in ten classes
    (Xiao et al., 2017). See the module docstring for where the files come from.
    """
    return load_dataset(FASHION_MNIST, split, root=root, download=download)


def load_mnist(
    split: str = "train", *, root: str | Path | None = None, download: bool = True
) -> ImageDataset:
    """MNIST handwritten digits, in the same form as :func:`load_fashion_mnist`."""
    return load_dataset(MNIST, split, root=root, download=download)


def binarize(images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastic binarisation: pixel ``x`` becomes 1 with probability ``x / 255``.

    Takes uint8 images (0..255) or floats in [0, 1]; returns float32 zeros and
    ones of the same shape, on the same device. A fixed ``generator`` gives a
    fixed binarisation (the book's test sets use ``torch.Generator().manual_seed(0)``).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        probs = images.float() / 255
    elif images.is_floating_point():
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError("images are floats outside [0, 1]; binarize expects uint8 or [0, 1]")
        probs = images.float()
    else:
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
    # u < p with u ~ U[0, 1) is 1 with probability p; on the CPU it is about twice as
    # fast as torch.bernoulli (benchmarks/vae_throughput.py)
    noise_device = generator.device if generator is not None else probs.device
    uniform = torch.rand(probs.shape, generator=generator, device=noise_device)
    return (uniform.to(probs.device) < probs).float()


# the seeds of the book's one binarisation of each Fashion-MNIST split
BINARIZATION_SEEDS = {"test": 0, "train": 1}


def binarized_fashion_mnist(split: str) -> torch.Tensor:
    """The book's one fixed binarisation of a Fashion-MNIST split, (N, 28, 28)
    float32 zeros and ones: :func:`binarize` with the split's seed in
    ``BINARIZATION_SEEDS``, so that every chapter scores the same test images."""
    if split not in BINARIZATION_SEEDS:
        raise ValueError(f"split must be one of {sorted(BINARIZATION_SEEDS)}, got {split!r}")
    generator = torch.Generator().manual_seed(BINARIZATION_SEEDS[split])
    return binarize(load_fashion_mnist(split).images, generator=generator)


def ring_of_gaussians(
    n: int,
    modes: int = 8,
    radius: float = 2.0,
    scale: float = 0.05,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` points (n, 2) from an equal mixture of ``modes`` Gaussians with
    standard deviation ``scale`` whose centres (modes, 2) lie evenly on a
    circle of ``radius``: the 2-D test bed of the evaluation and GAN chapters. Returns
    ``(points, centres)``."""
    check_positive_int("n", n)
    check_positive_int("modes", modes)
    if not (radius >= 0 and scale > 0):
        raise ValueError(f"radius must be >= 0 and scale > 0, got {radius!r} and {scale!r}")
    angles = torch.arange(modes) * (2 * math.pi / modes)  # (modes,)
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)  # (modes, 2)
    k = torch.randint(modes, (n,), generator=generator)  # (n,) the mode of each point
    return centres[k] + scale * torch.randn(n, 2, generator=generator), centres


# -- text -------------------------------------------------------------------------

SHAKESPEARE_SHA256 = "0d7f6a58886240db2b9db43e027d269ca2e878a8c0cf25c2e3c7a39af2d0c5d8"
TEXT_SPLITS = {"train": (0.0, 0.9), "valid": (0.9, 0.95), "test": (0.95, 1.0)}


def load_shakespeare(split: str | None = None) -> str:
    """Eight Shakespeare plays, about a million characters of public-domain text.

    ``split`` cuts the text by position: ``"train"`` is the first 90 %,
    ``"valid"`` the next 5 % and ``"test"`` the last 5 %; ``None`` gives all of
    it. The file's SHA-256 is checked, so an edited copy is caught.
    """
    if split is not None and split not in TEXT_SPLITS:
        raise ValueError(f"split must be None or one of {sorted(TEXT_SPLITS)}, got {split!r}")
    raw = (resources.files("genai_course") / "texts" / "shakespeare.txt").read_bytes()
    if hashlib.sha256(raw).hexdigest() != SHAKESPEARE_SHA256:
        raise ChecksumError(
            "genai_course/texts/shakespeare.txt does not have its recorded SHA-256: the file "
            "was changed. Reinstall the package or rebuild it with scripts/build_shakespeare.py"
        )
    text = raw.decode("ascii")
    if split is None:
        return text
    start, end = TEXT_SPLITS[split]
    return text[round(start * len(text)) : round(end * len(text))]
