"""Gathering image inputs: files and folders on disk, and zip archives uploaded to the app.

Both yield candidates only; whether each is a readable chest X-ray is ``imaging`` and ``gate``'s
call, so a bad file is rejected with its reason later, never here.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

from .errors import InputError
from .imaging import IMAGE_SUFFIXES, MAX_FILE_BYTES, too_large_message
from .render import count

MAX_ARCHIVE_FILES = 5000
MAX_ARCHIVE_BYTES = 4 * 1024**3
"""Uncompressed size an archive may unpack to in memory (zip bombs are refused before reading)."""


def is_image_name(name: str) -> bool:
    """Image suffixes in any case; an extension-less file may be DICOM. Hidden files are not."""
    path = PurePosixPath(name)
    return not path.name.startswith(".") and (path.suffix.lower() in IMAGE_SUFFIXES or path.suffix == "")


def folder_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, at any depth, in name order; hidden files left out."""
    return [child for child in sorted(folder.rglob("*")) if child.is_file() and not child.name.startswith(".")]


def gather_paths(paths: list[str]) -> tuple[list[Path], list[Path]]:
    """Files as given, and folders searched recursively, in one walk: ``(read, skipped)``, the image
    files (see ``is_image_name``) and the files inside the folders left out for their names (other
    formats, such as .bmp or .tif), so that a command can say so; hidden files are not counted."""
    read: list[Path] = []
    skipped: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in folder_files(path):
                (read if is_image_name(child.name) else skipped).append(child)
        else:
            read.append(path)
    return read, skipped


OTHER_FORMAT = f"not JPEG, PNG or DICOM by name ({', '.join(IMAGE_SUFFIXES)} or no extension)"
"""Why a file of another format, in a folder or an archive, is not read."""


def other_format_error() -> InputError:
    """The rejection of a file listed for being of another format (an archive member, a class folder's file)."""
    return InputError("unsupported_format", f"Not read: {OTHER_FORMAT}.")


def skipped_message(skipped: list[Path]) -> str:
    """One line naming the files a folder held that are not read (``gather_paths``' second part)."""
    names = ", ".join(path.name for path in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
    return f"Skipped {count(len(skipped), 'file')} {OTHER_FORMAT}: {names}"


def zip_images(data: bytes) -> list[tuple[str, bytes | InputError]]:
    """``(path inside the archive, bytes)`` of each image file in a zip archive, in name order; a
    member that cannot be read, or is of another format by name, comes as ``(path, InputError)`` so
    that it is listed with its reason (hidden files and macOS' ``__MACOSX`` folder are left out).

    Raises:
        InputError: the archive is unreadable, or unpacks to more files or bytes than allowed.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise InputError("bad_archive", "This file is not a readable zip archive.") from None
    with archive:
        files = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and "__MACOSX" not in info.filename
            and not PurePosixPath(info.filename).name.startswith(".")
        ]
        members = [info for info in files if is_image_name(info.filename)]
        if len(members) > MAX_ARCHIVE_FILES:
            raise InputError(
                "archive_too_large", f"The archive holds {len(members)} images; at most {MAX_ARCHIVE_FILES} at once."
            )
        if sum(info.file_size for info in members) > MAX_ARCHIVE_BYTES:
            raise InputError("archive_too_large", "The archive unpacks to more than 4 GB; split it into smaller ones.")
        images: list[tuple[str, bytes | InputError]] = [
            (info.filename, other_format_error()) for info in files if not is_image_name(info.filename)
        ][:MAX_ARCHIVE_FILES]
        for info in sorted(members, key=lambda i: i.filename):
            if info.file_size > MAX_FILE_BYTES:
                images.append((info.filename, InputError("too_large", too_large_message(info.file_size))))
                continue
            try:
                images.append((info.filename, archive.read(info)))
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
                message = "This archive member is damaged or encrypted and cannot be read."
                images.append((info.filename, InputError("corrupt", message)))
        return sorted(images, key=lambda item: item[0])
