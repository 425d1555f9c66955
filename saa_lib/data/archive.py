"""Official data set archives: where they are, their published hashes, and safe, all-or-nothing extraction.

``download_dataset`` fetches an archive with :func:`saa_lib.weights.download.fetch_file` (hash-checked, atomic; offline it
raises :class:`~saa_lib.weights.download.MissingFileError` within seconds, naming the URL and where to put the file) and
extracts it with :func:`extract_archive`: into a temporary folder beside the target that is renamed into place only
when extraction completed, so a data set folder is never half-extracted. Archive members with absolute paths, ``..``,
links or device files are refused. Nothing here touches the network at import time.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .datasets import HOW_TO_GET, default_root, prepare_visa
from .sample import DatasetError


@dataclass(frozen=True)
class DatasetSource:
    """An official data set archive: URL, SHA-256 of the archive, size in bytes, archive type."""

    name: str
    url: str
    sha256: str
    size: int
    archive: str  # "tar.xz" | "tar" | "zip"
    homepage: str
    license: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


DATASETS: dict[str, DatasetSource] = {
    # sha256: the hash anomalib publishes for this exact URL (openvinotoolkit/anomalib,
    # src/anomalib/data/datamodules/image/mvtec.py, DOWNLOAD_INFO.hashsum); size: 5,264,982,680 bytes, as reported
    # alongside that hash by independent users who downloaded and verified the archive.
    "mvtec": DatasetSource(
        name="MVTec AD",
        url="https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/420938113-1629952094/"
            "mvtec_anomaly_detection.tar.xz",
        sha256="cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
        size=5_264_982_680,
        archive="tar.xz",
        homepage="https://www.mvtec.com/company/research/datasets/mvtec-ad",
        license="CC BY-NC-SA 4.0",
    ),
    # sha256: the hash anomalib publishes for this URL (openvinotoolkit/anomalib,
    # src/anomalib/data/datamodules/image/visa.py, DOWNLOAD_INFO.hashsum); size: 1,929,840,640 bytes, as reported
    # alongside that hash by independent users. The archive holds split_csv/1cls.csv, the official 1-class split.
    "visa": DatasetSource(
        name="VisA",
        url="https://amazon-visual-anomaly.s3.us-west-2.amazonaws.com/VisA_20220922.tar",
        sha256="2eb8690c803ab37de0324772964100169ec8ba1fa3f7e94291c9ca673f40f362",
        size=1_929_840_640,
        archive="tar",
        homepage="https://github.com/amazon-science/spot-diff",
        license="CC BY 4.0",
    ),
}


def download_dataset(name: str, root: str | os.PathLike | None = None, progress: bool = True,
                     keep_archive: bool = False) -> Path:
    """Download and extract an official data set to ``root`` (default ``data/<name>``); return ``root``.

    A ``root`` that already holds files is returned as is. The archive is saved as ``<root's parent>/.downloads/
    <file>`` (a copy placed there by hand is used after its hash is checked) and removed after a successful
    extraction unless ``keep_archive``. VisA is extracted to ``<root>_raw`` and converted to the MVTec AD layout in
    ``root`` with the official 1-class split (:func:`~saa_lib.data.prepare_visa`).
    """
    from saa_lib.weights.download import fetch_file

    if name not in DATASETS:
        how = HOW_TO_GET.get(name, "")
        raise DatasetError(f"{name!r} cannot be downloaded automatically; downloadable: {', '.join(DATASETS)}. {how}")
    src = DATASETS[name]
    root = Path(root).expanduser() if root is not None else default_root(name)
    if root.is_dir() and any(root.iterdir()):
        return root
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root}: exists and is not a folder; remove it or choose another root.")
    archive = root.parent / ".downloads" / src.filename
    fetch_file(src.url, archive, f"sha256:{src.sha256}", name=f"{src.name} archive ({src.size / 1e9:.1f} GB)",
               progress=progress)
    if root.is_dir():  # empty folder left from before
        root.rmdir()
    if name == "visa":
        raw = root.with_name(root.name + "_raw")
        if not raw.exists():
            extract_archive(archive, raw, progress=progress)
        # split_csv/ sits at the top of the archive, or one folder down if the archive wraps everything in a folder
        tops = [raw] + sorted(d for d in raw.iterdir() if d.is_dir())
        raw_root = next((d for d in tops if (d / "split_csv" / "1cls.csv").is_file()), raw)
        prepare_visa(raw_root, out_root=root, progress=progress)
    else:
        extract_archive(archive, root, progress=progress)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return root


def _refuse(archive: Path, member: str, why: str) -> DatasetError:
    return DatasetError(f"{archive}: refused member {member!r}: {why}. Nothing was extracted; the archive is not a "
                        "plain data set archive — delete it and download the published one.")


def _check_name(archive: Path, name: str) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (len(name) > 1 and name[1] == ":") or ".." in p.parts:
        raise _refuse(archive, name, "its path leaves the target folder (absolute path or '..')")


def _extract_tar(archive: Path, dest: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with open(archive, "rb") as raw, \
            tqdm(total=archive.stat().st_size, unit="B", unit_scale=True, desc=f"extracting {archive.name}",
                 disable=not progress) as bar, \
            tarfile.open(fileobj=raw, mode="r|*") as tar:  # streamed: one pass over a compressed archive
        for member in tar:
            _check_name(archive, member.name)
            if member.issym() or member.islnk():
                raise _refuse(archive, member.name, "links are not extracted")
            if not (member.isfile() or member.isdir()):
                raise _refuse(archive, member.name, "not a regular file or folder")
            tar.extract(member, dest, set_attrs=False, **extra)
            bar.update(raw.tell() - bar.n)


def _extract_zip(archive: Path, dest: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # a zip has its directory up front: check everything before writing anything
            _check_name(archive, info.filename)
            kind = (info.external_attr >> 16) & 0o170000
            if kind == 0o120000:
                raise _refuse(archive, info.filename, "links are not extracted")
        with tqdm(total=sum(i.file_size for i in infos), unit="B", unit_scale=True,
                  desc=f"extracting {archive.name}", disable=not progress) as bar:
            for info in infos:
                zf.extract(info, dest)
                bar.update(info.file_size)


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike, progress: bool = True) -> Path:
    """Extract a ``.tar``, ``.tar.gz``/``.tar.xz``/``.tar.bz2`` or ``.zip`` archive to ``dest``; return ``dest``.

    ``dest`` must not exist. Extraction goes to a temporary folder beside ``dest``, renamed to ``dest`` only when
    complete; on any failure nothing is left behind. The archive's own folder structure is kept as is. Members with
    absolute paths, ``..``, links or special files raise :class:`DatasetError`.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DatasetError(f"{archive}: archive not found.")
    if dest.exists():
        raise DatasetError(f"{dest}: already exists; extraction writes a new folder. Delete it or choose another.")
    if zipfile.is_zipfile(archive):
        extract = _extract_zip
    elif tarfile.is_tarfile(archive):
        extract = _extract_tar
    else:
        raise DatasetError(f"{archive}: not a tar or zip archive (corrupt or incomplete download?). Delete it and "
                           "download it again.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-", dir=dest.parent))
    try:
        try:
            extract(archive, tmp, progress)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            raise DatasetError(f"{archive}: extraction failed ({type(err).__name__}: {err}). The archive is corrupt "
                               "or incomplete: delete it and download it again.") from err
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
