"""A strict reader of legacy VTK files (``.vtk``), in numpy, that never crashes.

VTK's own C++ legacy reader trusts the counts a file declares: a bit flip in
a binary connectivity array, or a tampered ``POINTS``/``CELLS`` number,
gives cells that point at vertices which do not exist, and the first filter
that walks them (or the reader itself) reads outside its buffers and kills
the Python process with a segmentation fault. organsim therefore parses the
legacy format itself and checks everything before any VTK object exists:

* header (``# vtk DataFile Version``), title, ``ASCII``/``BINARY``;
* ``DATASET POLYDATA`` (``VERTICES``, ``LINES``, ``POLYGONS``,
  ``TRIANGLE_STRIPS``), ``UNSTRUCTURED_GRID`` (``CELLS``, ``CELL_TYPES``) and
  ``STRUCTURED_POINTS`` (``DIMENSIONS``, ``SPACING``/``ASPECT_RATIO``,
  ``ORIGIN``);
* cells in both layouts: the classic one (``n size`` then ``count id ...``
  per cell) and the VTK 5.1 one (``OFFSETS`` and ``CONNECTIVITY`` arrays);
* ``POINT_DATA``/``CELL_DATA`` attributes (``SCALARS`` with
  ``LOOKUP_TABLE``, ``COLOR_SCALARS``, ``VECTORS``, ``NORMALS``,
  ``TENSORS``/``TENSORS6``, ``TEXTURE_COORDINATES``, ``GLOBAL_IDS``,
  ``PEDIGREE_IDS``, ``FIELD``, lookup tables) and dataset ``FIELD`` data,
  with numeric and string arrays; ``METADATA`` blocks are skipped.

Every declared size must fit in the bytes that are left, every offset array
must start at 0, never decrease and end at the connectivity length, every
vertex id must be in range, every cell type must be known with the number of
points its type needs, and attribute counts must match the points or cells.
Anything else raises :class:`~organsim.errors.InputFileError` saying what
was found, what was expected and what to do. The checked arrays are then
handed to VTK in memory (``vtkPolyData``, ``vtkUnstructuredGrid``,
``vtkImageData``), so the rest of organsim sees the same objects as before.

Binary data is big-endian, as the format requires; ``vtkIdType`` arrays are
4-byte integers on disk (as VTK writes and reads them).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputFileError

__all__ = [
    "LEGACY_DATASETS",
    "VTK_CELL_SIZES",
    "check_vtk_cells",
    "check_vtk_xml_counts",
    "read_legacy_vtk",
]

#: The ``DATASET`` kinds organsim reads from legacy files.
LEGACY_DATASETS = ("POLYDATA", "UNSTRUCTURED_GRID", "STRUCTURED_POINTS")

#: Points per cell for the VTK cell types organsim accepts: an int (exact) or
#: a (minimum, multiple) pair for the variable-size types.
VTK_CELL_SIZES: dict[int, int | tuple[int, int]] = {
    1: 1, 2: (1, 1), 3: 2, 4: (2, 1), 5: 3, 6: (3, 1), 7: (3, 1), 8: 4, 9: 4, 10: 4, 11: 8,
    12: 8, 13: 6, 14: 5, 15: 10, 16: 12, 21: 3, 22: 6, 23: 8, 24: 10, 25: 20, 26: 15, 27: 13,
    28: 9, 29: 27, 30: 6, 31: 12, 32: 18, 33: 24, 34: 7, 35: 4, 36: (6, 2), 37: 19,
}

# binary dtype (big-endian) of each legacy type name
_DTYPES = {
    "unsigned_char": ">u1", "char": ">i1", "signed_char": ">i1", "short": ">i2",
    "unsigned_short": ">u2", "int": ">i4", "unsigned_int": ">u4", "long": ">i8",
    "unsigned_long": ">u8", "vtktypeint64": ">i8", "vtktypeuint64": ">u8",
    "vtkidtype": ">i4", "float": ">f4", "double": ">f8",
}
_STRING_TYPES = ("string", "utf8_string")
_POLY_SECTIONS = ("VERTICES", "LINES", "POLYGONS", "TRIANGLE_STRIPS")
#: fewest points a cell of each POLYDATA section can have
_POLY_MIN = {"VERTICES": 1, "LINES": 2, "POLYGONS": 3, "TRIANGLE_STRIPS": 3}
_MAX_COMPONENTS = 1 << 16
_WS = b" \t\r\n\f\v\x00"


class _Bad(Exception):
    """Raised inside the parser; turned into an InputFileError with the path."""


def read_legacy_vtk(path: str | Path):
    """Read a legacy ``.vtk`` file into a VTK data object, checking it completely first.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    vtkPolyData, vtkUnstructuredGrid or vtkImageData
        Built in memory from the checked arrays (never by VTK's file reader).

    Raises
    ------
    InputFileError
        The file is not legacy VTK, is truncated or corrupt (sizes that do
        not fit the file, vertex ids out of range, inconsistent counts,
        unknown cell types or keywords), or holds a dataset kind organsim
        does not read (``STRUCTURED_GRID``, ``RECTILINEAR_GRID``...).
    """
    p = Path(path)
    data = p.read_bytes()
    try:
        parsed = _Parser(data).parse()
    except _Bad as exc:
        raise InputFileError(f"{p}: corrupt legacy VTK file: {exc}; the file is truncated or"
                             " corrupt (or was edited by hand): export it again") from None
    except MemoryError:
        raise InputFileError(f"{p}: corrupt legacy VTK file: its declared sizes need more memory"
                             " than is available; the header counts are probably corrupt:"
                             " export it again") from None
    return _build(parsed)


# ==================================================================== parser
class _Parser:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.binary = False
        self.last = "the header"  # the last section read, for messages

    # ---------------------------------------------------------------- tokens
    def _skip_ws(self) -> None:
        d, n, i = self.data, len(self.data), self.pos
        while i < n and d[i] in _WS:
            i += 1
        self.pos = i

    def at_end(self) -> bool:
        self._skip_ws()
        return self.pos >= len(self.data)

    def token(self, what: str) -> str:
        """The next whitespace-separated word (raises at the end of the file)."""
        self._skip_ws()
        d, n, start = self.data, len(self.data), self.pos
        if start >= n:
            raise _Bad(f"the file ends where {what} was expected (byte {start})")
        end = start
        while end < n and d[end] not in _WS and end - start < 256:
            end += 1
        self.pos = end
        return d[start:end].decode("latin-1")

    def peek_token(self) -> str:
        """The next word, without consuming it ("" at the end of the file)."""
        save = self.pos
        try:
            return self.token("a keyword") if not self.at_end() else ""
        finally:
            self.pos = save

    def integer(self, what: str, *, low: int = 0) -> int:
        tok = self.token(what)
        if not re.fullmatch(r"[+-]?\d{1,19}", tok):
            raise _Bad(f"{what} must be an integer, found {tok[:40]!r} (byte {self.pos})")
        value = int(tok)
        if value < low:
            raise _Bad(f"{what} must be >= {low}, found {value} (byte {self.pos})")
        if value > len(self.data):  # every value takes at least a byte (a bit for bit arrays)
            raise _Bad(f"{what} is {value}, more than a file of {len(self.data)} bytes can hold"
                       f" (byte {self.pos})")
        return value

    def number(self, what: str) -> float:
        tok = self.token(what)
        try:
            value = float(tok)
        except ValueError:
            raise _Bad(f"{what} must be a number, found {tok[:40]!r} (byte {self.pos})") from None
        if not np.isfinite(value):
            raise _Bad(f"{what} must be finite, found {tok!r}")
        return value

    def line(self) -> bytes:
        """The rest of the current line, consumed with its newline."""
        d = self.data
        end = d.find(b"\n", self.pos)
        end = len(d) if end < 0 else end
        out = d[self.pos:end]
        self.pos = min(end + 1, len(d))
        return out.rstrip(b"\r")

    def expect(self, keyword: str, what: str) -> None:
        tok = self.token(f"the keyword {keyword}")
        if tok.upper() != keyword:
            raise _Bad(f"expected {keyword} ({what}), found {tok[:40]!r} (byte {self.pos})")

    # ---------------------------------------------------------------- arrays
    def array(self, type_name: str, n_tuples: int, n_comp: int, what: str):
        """Read ``n_tuples * n_comp`` values of a legacy type; numpy array or list of str."""
        t = type_name.lower()
        if n_comp < 1 or n_comp > _MAX_COMPONENTS:
            raise _Bad(f"{what}: {n_comp} components per value is not possible")
        count = n_tuples * n_comp
        if count > 8 * len(self.data):
            raise _Bad(f"{what} declares {count} values, more than a file of {len(self.data)}"
                       " bytes can hold")
        if t in _STRING_TYPES:
            out = self._strings(count, what)
        elif t == "bit":
            out = self._bits(count, what)
        elif t in _DTYPES:
            out = self._numbers(np.dtype(_DTYPES[t]), count, what)
        else:
            raise _Bad(f"{what}: unknown data type {type_name[:40]!r} (expected one of"
                       f" {', '.join(sorted(_DTYPES))}, bit, string)")
        self._skip_metadata()
        self.last = what
        if n_comp > 1 and isinstance(out, np.ndarray):
            out = out.reshape(n_tuples, n_comp)
        return out

    def _binary_start(self, n_bytes: int, what: str) -> int:
        if n_bytes == 0:
            return self.pos
        self.line()  # the rest of the keyword line; the data starts after its newline
        left = len(self.data) - self.pos
        if n_bytes > left:
            raise _Bad(f"{what} declares {n_bytes} bytes of binary data but only {left} are"
                       f" left in the file (byte {self.pos})")
        return self.pos

    def _numbers(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        if self.binary:
            start = self._binary_start(count * dtype.itemsize, what)
            arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=start)
            self.pos = start + count * dtype.itemsize
            return arr.astype(dtype.newbyteorder("="))
        tokens = self._ascii_tokens(count, what)
        native = dtype.newbyteorder("=")
        try:
            text = np.array(tokens, dtype=np.bytes_) if tokens else np.zeros(0, np.bytes_)
            if native.kind == "f":
                return text.astype(np.float64).astype(native)
            values = text.astype(np.int64) if native.kind == "i" else text.astype(np.uint64)
        except (ValueError, OverflowError):
            raise _Bad(f"{what}: a value is not a {native.name} number (or is out of its"
                       f" range) before byte {self.pos}") from None
        info = np.iinfo(native)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise _Bad(f"{what}: values outside the range of {native.name}")
        return values.astype(native)

    def _ascii_tokens(self, count: int, what: str) -> list[bytes]:
        if count == 0:
            return []
        self._skip_ws()
        parts = self.data[self.pos:].split(None, count)
        if len(parts) < count:
            raise _Bad(f"{what} declares {count} values but the file holds only {len(parts)}"
                       f" (from byte {self.pos})")
        rest = parts[count] if len(parts) > count else b""
        self.pos = len(self.data) - len(rest)
        return parts[:count]

    def _bits(self, count: int, what: str) -> np.ndarray:
        if self.binary:
            n_bytes = (count + 7) // 8
            start = self._binary_start(n_bytes, what)
            raw = np.frombuffer(self.data, dtype=np.uint8, count=n_bytes, offset=start)
            self.pos = start + n_bytes
            return np.unpackbits(raw)[:count].astype(np.uint8)
        vals = self._numbers(np.dtype(">i8"), count, what)
        return (vals != 0).astype(np.uint8)

    def _strings(self, count: int, what: str) -> list[str]:
        d = self.data
        out: list[str] = []
        if self.binary:
            self.line()
            for _ in range(count):
                if self.pos >= len(d):
                    raise _Bad(f"{what}: the file ends inside a string array")
                head = d[self.pos] >> 6
                size = {3: 1, 2: 2, 1: 4, 0: 8}[head]
                if self.pos + size > len(d):
                    raise _Bad(f"{what}: the file ends inside a string length")
                length = int.from_bytes(d[self.pos:self.pos + size], "big")
                if size < 8:
                    length &= (1 << (8 * size - 2)) - 1
                self.pos += size
                if length > len(d) - self.pos:
                    raise _Bad(f"{what}: a string of {length} bytes declared but only"
                               f" {len(d) - self.pos} are left in the file")
                out.append(d[self.pos:self.pos + length].decode("utf-8", errors="replace"))
                self.pos += length
        else:
            self.line()
            for _ in range(count):
                if self.pos >= len(d):
                    raise _Bad(f"{what} declares {count} strings but the file ends after"
                               f" {len(out)}")
                out.append(_decode_name(self.line().decode("utf-8", errors="replace")))
        return out

    def _skip_metadata(self) -> None:
        """Skip a ``METADATA`` block (component names, information keys) after an array."""
        save = self.pos
        if self.at_end() or self.data[self.pos:self.pos + 8].upper() != b"METADATA":
            self.pos = save
            return
        self.line()
        while self.pos < len(self.data):
            if not self.line().strip():
                return

    # ----------------------------------------------------------------- parse
    def parse(self) -> dict:
        first = self.line()
        if not first.startswith(b"# vtk DataFile Version"):
            raise _Bad("it must start with '# vtk DataFile Version'")
        if self.pos >= len(self.data):
            raise _Bad("the file ends after the first line (no title line)")
        self.line()  # title
        kind = self.token("ASCII or BINARY").upper()
        if kind not in ("ASCII", "BINARY"):
            raise _Bad(f"the third line must say ASCII or BINARY, found {kind[:40]!r}")
        self.binary = kind == "BINARY"
        out: dict = {"field": {}}
        if self.peek_token().upper() == "FIELD":
            self.token("FIELD")
            out["field"] = self._field("the dataset FIELD data", None)
        self.expect("DATASET", "the DATASET line")
        dataset = self.token("the dataset kind").upper()
        if dataset not in LEGACY_DATASETS:
            raise _Bad(f"DATASET {dataset[:40]} is not read by organsim (expected"
                       f" {', '.join(LEGACY_DATASETS)}); convert it to a surface, an"
                       " unstructured grid or an image")
        out["dataset"] = dataset
        if dataset == "STRUCTURED_POINTS":
            self._structured_points(out)
        else:
            self._point_set(out)
        self._attributes(out)
        return out

    def _structured_points(self, out: dict) -> None:
        geo: dict = {}
        while True:
            key = self.peek_token().upper()
            if key in ("DIMENSIONS", "SPACING", "ASPECT_RATIO", "ORIGIN"):
                self.token(key)
                if key == "DIMENSIONS":
                    geo["dims"] = [self.integer(f"DIMENSIONS value {i + 1}", low=1)
                                   for i in range(3)]
                else:
                    geo["spacing" if key != "ORIGIN" else "origin"] = [
                        self.number(f"{key} value {i + 1}") for i in range(3)]
            elif key == "FIELD":
                self.token(key)
                out["field"].update(self._field("the dataset FIELD data", None))
            else:
                break
        if "dims" not in geo:
            raise _Bad("STRUCTURED_POINTS without a DIMENSIONS line")
        dims = geo["dims"]
        out["dims"] = dims
        out["spacing"] = geo.get("spacing", [1.0, 1.0, 1.0])
        out["origin"] = geo.get("origin", [0.0, 0.0, 0.0])
        out["n_points"] = dims[0] * dims[1] * dims[2]
        out["n_cells"] = max(dims[0] - 1, 1) * max(dims[1] - 1, 1) * max(dims[2] - 1, 1)

    def _point_set(self, out: dict) -> None:
        dataset = out["dataset"]
        sections: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        n_points = None
        cell_types = None
        while True:
            key = self.peek_token().upper()
            if key == "POINTS":
                self.token(key)
                n_points = self.integer("the POINTS count")
                type_name = self.token("the POINTS data type")
                pts = self.array(type_name, n_points, 3, "POINTS")
                if isinstance(pts, list):
                    raise _Bad("POINTS cannot be strings")
                out["points"] = pts.reshape(-1, 3)
            elif key == "FIELD":
                self.token(key)
                out["field"].update(self._field("the dataset FIELD data", None))
            elif dataset == "POLYDATA" and key in _POLY_SECTIONS:
                self.token(key)
                sections[key] = self._cells(key)
            elif dataset == "UNSTRUCTURED_GRID" and key == "CELLS":
                self.token(key)
                sections["CELLS"] = self._cells("CELLS")
            elif dataset == "UNSTRUCTURED_GRID" and key == "CELL_TYPES":
                self.token(key)
                n = self.integer("the CELL_TYPES count")
                cell_types = self.array("int", n, 1, "CELL_TYPES")
            else:
                break
        if n_points is None:
            raise _Bad(f"{dataset} without a POINTS section")
        for key, (_, conn) in sections.items():  # sections may come before POINTS
            if conn.size and (conn.min() < 0 or conn.max() >= n_points):
                bad = int(conn[(conn < 0) | (conn >= n_points)][0])
                raise _Bad(f"{key} refers to vertex {bad}, but there are {n_points} points"
                           " (ids 0 to n-1 expected)")
        out["cells"] = sections
        if dataset == "UNSTRUCTURED_GRID":
            offsets = sections.get("CELLS", (np.zeros(1, np.int64), None))[0]
            n_cells = len(offsets) - 1
            if cell_types is None and n_cells:
                raise _Bad(f"CELLS lists {n_cells} cells but there is no CELL_TYPES section")
            types = np.zeros(0, np.int64) if cell_types is None else cell_types.astype(np.int64)
            if len(types) != n_cells:
                raise _Bad(f"CELL_TYPES lists {len(types)} types for {n_cells} cells")
            _check_cell_types(types, np.diff(offsets))
            out["cell_types"] = types.astype(np.uint8)
            out["n_cells"] = n_cells
        else:
            out["n_cells"] = sum(len(o) - 1 for o, _ in sections.values())
        out["n_points"] = n_points

    def _cells(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        first = self.integer(f"the first {key} count")
        second = self.integer(f"the second {key} count")
        save = self.pos
        self.line()
        layout_51 = self.data[self.pos:self.pos + 64].lstrip(_WS)[:7].upper() == b"OFFSETS"
        self.pos = save
        if layout_51:
            self.expect("OFFSETS", f"the {key} offsets")
            offsets = self._int_array(self.token("the OFFSETS data type"), first, f"{key} OFFSETS")
            self.expect("CONNECTIVITY", f"the {key} connectivity")
            conn = self._int_array(self.token("the CONNECTIVITY data type"), second,
                                   f"{key} CONNECTIVITY")
            if len(offsets) == 0:
                if len(conn):
                    raise _Bad(f"{key} has {len(conn)} connectivity entries but no offsets")
                offsets = np.zeros(1, np.int64)
            if offsets[0] != 0 or offsets[-1] != len(conn) or np.any(np.diff(offsets) < 0):
                raise _Bad(f"{key} OFFSETS must rise from 0 to the connectivity length"
                           f" {len(conn)}; found first {offsets[0]}, last {offsets[-1]}"
                           f"{', and decreasing steps' if np.any(np.diff(offsets) < 0) else ''}")
        else:
            legacy = self._int_array("int", second, f"{key} (classic layout)")
            offsets, conn = _split_classic(legacy, first, key)
        sizes = np.diff(offsets)
        if key in _POLY_MIN and sizes.size and sizes.min() < _POLY_MIN[key]:
            i = int(np.argmin(sizes))
            raise _Bad(f"{key} cell {i} has {sizes[i]} points; at least {_POLY_MIN[key]} expected")
        return offsets, conn

    def _int_array(self, type_name: str, count: int, what: str) -> np.ndarray:
        arr = self.array(type_name, count, 1, what)
        if isinstance(arr, list) or arr.dtype.kind not in "iu":
            raise _Bad(f"{what} must hold integers, its type is {type_name[:40]!r}")
        if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise _Bad(f"{what}: an id out of range")
        return arr.astype(np.int64)

    # ------------------------------------------------------------ attributes
    def _attributes(self, out: dict) -> None:
        out["point_data"], out["cell_data"] = [], []
        target = None
        n = 0
        while not self.at_end():
            key = self.token("an attribute keyword").upper()
            if key in ("POINT_DATA", "CELL_DATA"):
                n = self.integer(f"the {key} count")
                expected = out["n_points"] if key == "POINT_DATA" else out["n_cells"]
                if n != expected:
                    what = "points" if key == "POINT_DATA" else "cells"
                    raise _Bad(f"{key} {n} does not match the {expected} {what} of the dataset")
                target = out["point_data" if key == "POINT_DATA" else "cell_data"]
                continue
            if target is None:
                raise _Bad(f"unexpected {_show(key)} at byte {self.pos - len(key)}, after"
                           f" {self.last}; expected a section keyword (POINT_DATA, CELL_DATA..."
                           f"), so a count declared before it is probably wrong")
            where = "point" if target is out["point_data"] else "cell"
            if key == "SCALARS":
                name = _decode_name(self.token("the SCALARS name"))
                type_name = self.token("the SCALARS data type")
                nxt = self.token("LOOKUP_TABLE")
                n_comp = 1
                if nxt.upper() != "LOOKUP_TABLE":
                    if not nxt.isdigit() or not 1 <= int(nxt) <= 4:
                        raise _Bad(f"SCALARS {name!r}: expected 1 to 4 components, found"
                                   f" {nxt[:40]!r}")
                    n_comp = int(nxt)
                    nxt = self.token("LOOKUP_TABLE")
                if nxt.upper() != "LOOKUP_TABLE":
                    raise _Bad(f"SCALARS {name!r}: expected LOOKUP_TABLE, found {nxt[:40]!r}")
                self.token("the lookup table name")
                target.append((name, self.array(type_name, n, n_comp, f"{where} SCALARS"), True))
            elif key == "COLOR_SCALARS":
                name = _decode_name(self.token("the COLOR_SCALARS name"))
                n_comp = self.integer("the COLOR_SCALARS components", low=1)
                if self.binary:
                    arr = self.array("unsigned_char", n, n_comp, f"{where} COLOR_SCALARS")
                else:
                    vals = self.array("float", n, n_comp, f"{where} COLOR_SCALARS")
                    arr = np.clip(np.floor(255.0 * vals + 0.5), 0, 255).astype(np.uint8)
                target.append((name, arr, True))
            elif key in ("VECTORS", "NORMALS", "TENSORS", "TENSORS6", "GLOBAL_IDS",
                         "PEDIGREE_IDS", "TEXTURE_COORDINATES"):
                name = _decode_name(self.token(f"the {key} name"))
                n_comp = {"VECTORS": 3, "NORMALS": 3, "TENSORS": 9, "TENSORS6": 6}.get(key, 1)
                if key == "TEXTURE_COORDINATES":
                    n_comp = self.integer("the texture dimension", low=1)
                    if n_comp > 3:
                        raise _Bad(f"TEXTURE_COORDINATES of dimension {n_comp} (1 to 3 expected)")
                type_name = self.token(f"the {key} data type")
                target.append((name, self.array(type_name, n, n_comp, f"{where} {key}"), False))
            elif key == "LOOKUP_TABLE":
                self.token("the lookup table name")
                size = self.integer("the lookup table size")
                if self.binary:
                    self.array("unsigned_char", size, 4, "LOOKUP_TABLE")
                else:
                    self.array("float", size, 4, "LOOKUP_TABLE")
            elif key == "FIELD":
                for name, arr in self._field(f"{where} FIELD data", n).items():
                    target.append((name, arr, False))
            else:
                raise _Bad(f"unexpected {_show(key)} at byte {self.pos - len(key)}, after"
                           f" {self.last}; expected a {where}-data keyword (SCALARS, FIELD...),"
                           " so a count declared before it is probably wrong")

    def _field(self, what: str, n_tuples: int | None) -> dict:
        self.token("the FIELD name")
        n_arrays = self.integer(f"the number of arrays in {what}")
        out = {}
        for _ in range(n_arrays):
            name = self.token(f"an array name in {what}")
            if name == "NULL_ARRAY":
                continue
            name = _decode_name(name)
            n_comp = self.integer(f"the components of {name!r}", low=1)
            count = self.integer(f"the tuples of {name!r}")
            if n_tuples is not None and count != n_tuples:
                raise _Bad(f"array {name!r} of {what} has {count} tuples, expected {n_tuples}")
            type_name = self.token(f"the data type of {name!r}")
            out[name] = self.array(type_name, count, n_comp, f"array {name!r}")
            if not isinstance(out[name], list):
                out[name] = out[name].reshape(count, n_comp) if n_comp > 1 else out[name]
        return out


def _show(token: str) -> str:
    """A token for a message: a keyword as it is, anything else as 'binary data'."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,39}", token):
        return f"keyword {token!r}"
    return "binary data or text" if not token.isprintable() else f"text {token[:40]!r}"


def _decode_name(name: str) -> str:
    """Undo VTK's %XX escapes in names and strings."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), name)


def _split_classic(legacy: np.ndarray, n_cells: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and connectivity from a classic ``count id id ... count id ...`` array."""
    size = len(legacy)
    if n_cells == 0:
        if size:
            raise _Bad(f"{key} declares 0 cells but {size} values")
        return np.zeros(1, np.int64), np.zeros(0, np.int64)
    if size == 0:
        raise _Bad(f"{key} declares {n_cells} cells but a size of 0")
    k = int(legacy[0])
    if k >= 0 and size == n_cells * (k + 1) and np.all(legacy[::k + 1] == k):  # all one size
        offsets = np.arange(n_cells + 1, dtype=np.int64) * k
        conn = legacy.reshape(n_cells, k + 1)[:, 1:].ravel()
        return offsets, conn
    starts = np.empty(n_cells, dtype=np.int64)
    i = 0
    for c in range(n_cells):
        if i >= size:
            raise _Bad(f"{key} declares {n_cells} cells but its {size} values hold only {c}")
        count = int(legacy[i])
        if count < 0 or i + 1 + count > size:
            raise _Bad(f"{key} cell {c} declares {count} points, which does not fit the"
                       f" declared size {size}")
        starts[c] = i
        i += 1 + count
    if i != size:
        raise _Bad(f"{key} declares a size of {size} values but its {n_cells} cells use {i}")
    counts = legacy[starts]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    keep = np.ones(size, dtype=bool)
    keep[starts] = False
    return offsets, legacy[keep]


def _check_cell_types(types: np.ndarray, sizes: np.ndarray) -> None:
    """Every cell type known, with a number of points its type allows."""
    if not types.size:
        return
    known = np.isin(types, list(VTK_CELL_SIZES))
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise _Bad(f"cell {i} has VTK cell type {int(types[i])}, which organsim does not read"
                   " (linear and quadratic cells of types 1-37 are read; polyhedra and"
                   " higher-order Lagrange cells are not)")
    for t in np.unique(types):
        need = VTK_CELL_SIZES[int(t)]
        got = sizes[types == t]
        if isinstance(need, int):
            bad = got != need
            expect = f"{need}"
        else:
            bad = (got < need[0]) | ((got - need[0]) % need[1] != 0)
            expect = f"at least {need[0]}"
        if np.any(bad):
            i = int(np.flatnonzero(types == t)[np.flatnonzero(bad)[0]])
            raise _Bad(f"cell {i} (VTK type {int(t)}) has {int(sizes[i])} points, {expect}"
                       " expected")


# ===================================================================== build
def _vtk_array(name: str, values):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import vtkStringArray

    if isinstance(values, list):
        arr = vtkStringArray()
        arr.SetNumberOfValues(len(values))
        for i, s in enumerate(values):
            arr.SetValue(i, s)
    else:
        values = np.ascontiguousarray(values)
        arr = numpy_to_vtk(values, deep=True)
    arr.SetName(name)
    return arr


def _cell_array(offsets: np.ndarray, conn: np.ndarray):
    from vtkmodules.util.numpy_support import numpy_to_vtkIdTypeArray
    from vtkmodules.vtkCommonDataModel import vtkCellArray

    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(np.ascontiguousarray(offsets, dtype=np.int64), deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(conn, dtype=np.int64), deep=True))
    return cells


def _build(parsed: dict):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import (
        vtkImageData,
        vtkPolyData,
        vtkUnstructuredGrid,
    )

    dataset = parsed["dataset"]
    if dataset == "STRUCTURED_POINTS":
        obj = vtkImageData()
        obj.SetDimensions(*parsed["dims"])
        obj.SetSpacing(*parsed["spacing"])
        obj.SetOrigin(*parsed["origin"])
    else:
        pts = parsed.get("points", np.zeros((0, 3)))
        if pts.dtype not in (np.float32, np.float64):
            pts = pts.astype(np.float64)
        points = vtkPoints()
        points.SetData(numpy_to_vtk(np.ascontiguousarray(pts), deep=True))
        cells = parsed["cells"]
        if dataset == "POLYDATA":
            obj = vtkPolyData()
            obj.SetPoints(points)
            setters = {"VERTICES": obj.SetVerts, "LINES": obj.SetLines,
                       "POLYGONS": obj.SetPolys, "TRIANGLE_STRIPS": obj.SetStrips}
            for key, (offsets, conn) in cells.items():
                setters[key](_cell_array(offsets, conn))
        else:
            from vtkmodules.vtkCommonCore import vtkUnsignedCharArray

            obj = vtkUnstructuredGrid()
            obj.SetPoints(points)
            offsets, conn = cells.get("CELLS", (np.zeros(1, np.int64), np.zeros(0, np.int64)))
            types = vtkUnsignedCharArray()
            types.DeepCopy(numpy_to_vtk(parsed["cell_types"], deep=True))
            obj.SetCells(types, _cell_array(offsets, conn))
    for key, attrs in (("point_data", obj.GetPointData()), ("cell_data", obj.GetCellData())):
        for name, values, is_scalars in parsed[key]:
            arr = _vtk_array(name, values)
            if is_scalars and attrs.GetScalars() is None:
                attrs.SetScalars(arr)
            else:
                attrs.AddArray(arr)
    for name, values in parsed["field"].items():
        obj.GetFieldData().AddArray(_vtk_array(name, values))
    return obj


def _cell_types_array(grid):
    """The cell-type array of a vtkUnstructuredGrid (GetCellTypes() from VTK 9.6 on)."""
    from vtkmodules.vtkCommonCore import vtkDataArray

    try:
        arr = grid.GetCellTypes()
    except TypeError:  # VTK < 9.6: GetCellTypes(vtkCellTypes) fills its argument
        arr = None
    return arr if isinstance(arr, vtkDataArray) else grid.GetCellTypesArray()


def check_vtk_cells(data, path: Path) -> None:
    """Check the cells of a VTK dataset read from ``path`` before any filter walks them.

    VTK's XML readers do not check that cell connectivity refers to existing
    points or that a cell has the number of points its type needs; filters
    that then walk such cells read outside their buffers. Raises
    :class:`InputFileError` on any such inconsistency (polydata and
    unstructured grids; other datasets have implicit cells).
    """
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkPolyData, vtkUnstructuredGrid

    n_points = data.GetNumberOfPoints()
    arrays = []
    if isinstance(data, vtkPolyData):
        arrays = [(k, getattr(data, f"Get{g}")()) for k, g in
                  (("VERTICES", "Verts"), ("LINES", "Lines"), ("POLYGONS", "Polys"),
                   ("TRIANGLE_STRIPS", "Strips"))]
    elif isinstance(data, vtkUnstructuredGrid):
        arrays = [("CELLS", data.GetCells())]
    for key, cells in arrays:
        if cells is None or cells.GetNumberOfCells() == 0:
            continue
        offsets = vtk_to_numpy(cells.GetOffsetsArray()).astype(np.int64)
        conn = vtk_to_numpy(cells.GetConnectivityArray()).astype(np.int64)
        try:
            if offsets[0] != 0 or offsets[-1] != len(conn) or np.any(np.diff(offsets) < 0):
                raise _Bad(f"{key} offsets must rise from 0 to the connectivity length")
            if conn.size and (conn.min() < 0 or conn.max() >= n_points):
                raise _Bad(f"{key} refer to vertex ids up to {conn.max()} (min {conn.min()}) for"
                           f" {n_points} points")
            if key == "CELLS":
                types_arr = _cell_types_array(data)
                types = (vtk_to_numpy(types_arr).astype(np.int64) if types_arr is not None
                         else np.zeros(0, np.int64))
                if len(types) != len(offsets) - 1:
                    raise _Bad(f"{len(types)} cell types for {len(offsets) - 1} cells")
                _check_cell_types(types, np.diff(offsets))
        except _Bad as exc:
            raise InputFileError(f"{path}: corrupt VTK file: {exc}; the file is truncated or"
                                 " corrupt: export it again") from None


#: A VTK XML file cannot hold more values than this many times its size: zlib, the best
#: compressor VTK writes, packs at most about 1032 bytes into one.
_XML_EXPANSION = 1100
_XML_COUNTS = re.compile(rb'\b(NumberOf(?:Points|Cells|Verts|Lines|Strips|Polys|Tuples|'
                         rb'Components)|(?:Whole)?Extent)\s*=\s*"([^"]*)"')


def check_vtk_xml_counts(path: Path) -> None:
    """Check the sizes a VTK XML file (``.vtu``, ``.vtp``, ``.vti``) declares, before VTK reads it.

    VTK's XML readers allocate what the ``NumberOfPoints``, ``NumberOfPolys``,
    ``WholeExtent``... attributes announce before reading any data, and a
    tampered count (``NumberOfPolys="99999999999"``) aborts the process with
    ``std::bad_alloc``. A count must be a non-negative integer (an extent six
    integers, each upper bound at least its lower one) and no larger than the
    file could hold (``1100 x`` its size, the most zlib can expand). Raises
    :class:`InputFileError` otherwise.
    """
    data = Path(path).read_bytes()
    limit = _XML_EXPANSION * max(len(data), 1)
    for m in _XML_COUNTS.finditer(data):
        name = m.group(1).decode()
        raw = m.group(2).decode("latin-1")
        try:
            values = [int(v) for v in raw.split()]
        except ValueError:
            values = None
        if name.endswith("Extent"):
            if values is None or len(values) != 6 or any(hi < lo - 1 for lo, hi in
                                                         zip(values[::2], values[1::2])):
                raise InputFileError(f"{path}: corrupt VTK XML file: {name}=\"{raw[:60]}\" must be"
                                     " six integers (x0 x1 y0 y1 z0 z1, each upper bound at least"
                                     " its lower one); the file is corrupt: export it again")
            n = 1
            for lo, hi in zip(values[::2], values[1::2]):
                n *= max(hi - lo + 1, 0)
        else:
            if values is None or len(values) != 1 or values[0] < 0:
                raise InputFileError(f"{path}: corrupt VTK XML file: {name}=\"{raw[:60]}\" must be"
                                     " a non-negative integer; the file is corrupt: export it"
                                     " again")
            n = values[0]
        if n > limit:
            raise InputFileError(f"{path}: corrupt VTK XML file: {name}=\"{raw[:60]}\" announces"
                                 f" {n} values, more than a file of {len(data)} bytes can hold;"
                                 " the count is corrupt: export it again")
