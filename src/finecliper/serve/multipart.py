"""``multipart/form-data`` bodies (RFC 7578), parsed without the removed ``cgi`` module.

The whole body is already in memory (the server caps its size before reading it). Header
parameters (``name``, ``filename``, RFC 2231 ``filename*``) are read with the standard library's
``email.message.Message``, which implements the quoting rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from finecliper.errors import FineCLIPERError

MAX_PARTS = 16


class FormError(FineCLIPERError):
    """The request body is not the form the endpoint expects."""


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None  # set for file fields (may be ""), None for plain fields
    data: bytes

    def text(self) -> str:
        try:
            return self.data.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise FormError(f"form field {self.name!r} is not UTF-8 text") from exc


def form_boundary(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type header."""
    header = Message()
    header["content-type"] = content_type or ""
    if header.get_content_type() != "multipart/form-data":
        raise FormError(
            f"expected a multipart/form-data upload, got Content-Type {content_type or 'none'!r}"
        )
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise FormError("the multipart/form-data Content-Type has no valid boundary")
    return boundary.encode("latin-1")


def parse_form(body: bytes, boundary: bytes) -> dict[str, FormPart]:
    """The parts of a form body by field name (a repeated name keeps its first part)."""
    delimiter = b"--" + boundary
    position = body.find(delimiter)
    if position < 0:
        raise FormError("the upload body does not contain the multipart boundary")
    position += len(delimiter)
    parts: dict[str, FormPart] = {}
    for _ in range(MAX_PARTS + 1):
        if body[position : position + 2] == b"--":
            return parts
        if body[position : position + 2] != b"\r\n":
            raise FormError("malformed multipart body (a boundary is not followed by CRLF)")
        end = body.find(b"\r\n" + delimiter, position + 2)
        if end < 0:
            raise FormError("the multipart body ends before its closing boundary (truncated?)")
        part = _parse_part(body[position + 2 : end])
        parts.setdefault(part.name, part)
        position = end + 2 + len(delimiter)
    raise FormError(f"the form has more than {MAX_PARTS} fields")


def _parse_part(raw: bytes) -> FormPart:
    split = raw.find(b"\r\n\r\n")
    if split < 0:
        raise FormError("malformed multipart part (no blank line after its headers)")
    headers = Message()
    for line in raw[:split].split(b"\r\n"):
        name, colon, value = line.decode("utf-8", "replace").partition(":")
        if colon:
            headers[name.strip()] = value.strip()
    if headers.get_content_disposition() != "form-data":
        raise FormError("a multipart part has no 'Content-Disposition: form-data' header")
    name = headers.get_param("name", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise FormError("a multipart part has no field name")
    filename = headers.get_filename()
    if filename is None and "filename" in (headers.get("content-disposition") or ""):
        filename = ""  # a file field submitted with no file chosen
    return FormPart(name, filename, raw[split + 4 :])
