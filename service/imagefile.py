"""Uploaded bytes as a checked, decoded image (``decode_image``), for the HTTP
routes and ``noteloom score``; no web framework here."""

from __future__ import annotations

import io
import warnings
from typing import Sequence

from imagegen import ImageError, ImageTooLargeError, UnsupportedImageError

MAX_IMAGE_PIXELS = 4096 * 4096
"""The default limit on an uploaded image's width × height (16.7 MP), checked on the
size its header declares, before any pixel is decoded (ImageTooLargeError)."""

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
"""Accepted upload formats (Pillow's names). A GIF, APNG or animated WEBP gives its
first frame. Anything else (TIFF, ICO, DDS, PSD, ...) is an UnsupportedImageError:
only these decoders ever see uploaded bytes."""

_SIGNATURES = ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
               (b"MM\x00*", "TIFF"), (b"DDS ", "DDS"), (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"), (b"%PDF", "PDF"),
               (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"qoif", "QOI"))


def decode_image(data: bytes, name: str, *, max_pixels: int = MAX_IMAGE_PIXELS, formats: Sequence[str] = IMAGE_FORMATS):
    """Uploaded bytes as a fully decoded RGB image. Only the decoders of ``formats``
    are tried (else UnsupportedImageError); the declared width × height must be at
    most ``max_pixels`` (else ImageTooLargeError, raised before decoding); any other
    failure of the decoder is an ImageError naming ``name`` and the problem."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # our pixel limit below decides; "Invalid APNG" is a damaged upload, refused below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            image = Image.open(io.BytesIO(data), formats=list(formats))
    except UnidentifiedImageError:
        raise _unidentified(data, name, formats) from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{name}: declares more than {2 * Image.MAX_IMAGE_PIXELS} pixels; the limit is {max_pixels}") from None
    except Exception as exc:  # noqa: BLE001  (any decoder failure is the upload's problem, never a 500)
        raise ImageError(f"{name}: not a readable image ({type(exc).__name__}: {_short(exc)})") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(f"{name}: {width}x{height} is {width * height} pixels; the limit is {max_pixels}")
        if width < 1 or height < 1:
            raise ImageError(f"{name}: not a readable image (it declares {width}x{height} pixels)")
        try:
            with warnings.catch_warnings():  # as above, for the frames read now
                warnings.simplefilter("ignore", UserWarning)
                image.load()  # the first frame
                rgb = image.convert("RGB")
        except Exception as exc:  # noqa: BLE001
            raise ImageError(f"{name}: not a readable {image.format} image ({type(exc).__name__}: {_short(exc)})") from None
    if rgb.size != (width, height):
        raise ImageError(f"{name}: not a readable image (declared {width}x{height}, decoded {rgb.width}x{rgb.height})")
    return rgb


def _unidentified(data: bytes, name: str, formats: Sequence[str]) -> ImageError:
    accepted = ", ".join(formats)
    if not data:
        return UnsupportedImageError(f"{name}: the file is empty; send an image ({accepted})")
    found = next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), None)
    if found is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        found = "WEBP"
    if found in formats:
        return ImageError(f"{name}: not a readable image (a {found} file whose header is damaged)")
    if found is not None:
        return UnsupportedImageError(f"{name}: {found} images are not accepted; send {accepted}")
    return UnsupportedImageError(f"{name}: not an image in an accepted format ({accepted})")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"
