"""The template spreadsheet (макет, shared/maket-format.md): read, write, fill.

`read_template` parses an .xlsx (first sheet) or a .csv file into rows, all or
nothing: any problem refuses the whole file, and every problem is listed with
its row number and column header, in Russian, for the operator to fix.
`write_template` writes rows with exactly the documented headers in their
order; `submission_template` fills it with one submission.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from billing_client.models import Building, Meter

# openpyxl is imported where a spreadsheet is read or written: the bot imports this
# module for TemplateRow, and openpyxl would cost it ~5 MB of memory for nothing.
if TYPE_CHECKING:
    from openpyxl import Workbook
    from openpyxl.cell.cell import Cell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

TARIFFS = ("день", "ночь", "пик", "полупик")
# The complete zone sets a meter may have; a single-tariff meter has none.
TARIFF_SETS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"день", "ночь"}),
    frozenset({"пик", "полупик", "ночь"}),
)

# Limits of the embedded billing's columns (billing_client.embedded.models).
_MAX_LENGTH = {
    "city": 100,
    "street": 200,
    "house": 50,
    "apartment": 50,
    "serial_number": 64,
}
_VALUE_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_DATE_FORMAT = "%d.%m.%Y"
NOTES_SHEET = "Примечания"
NOTES_HEADERS = ("Квартира", "Зав. номер", "Тариф", "Причина")


@dataclass(frozen=True)
class Column:
    """One column of the template: its field, header, whether required, aliases."""

    key: str
    header: str
    required: bool
    aliases: tuple[str, ...] = ()


COLUMNS = (
    Column("city", "Город", False),
    Column("street", "Улица", True),
    Column("house", "Дом", True),
    Column("apartment", "Квартира", True, ("Кв.",)),
    Column("serial_number", "Зав. номер", True, ("Заводской номер",)),
    Column("digits", "Значность", True),
    Column("fraction_digits", "Знаков после запятой", False),
    Column("tariff", "Тариф", False),
    Column("previous_value", "Предыдущее показание", False),
    Column("previous_date", "Дата предыдущего показания", False),
    Column("value", "Показание", False),
    Column("value_date", "Дата показания", False),
)
HEADERS = tuple(column.header for column in COLUMNS)


def _header_key(text: str) -> str:
    return " ".join(text.split()).casefold().replace("ё", "е")


_BY_HEADER = {
    _header_key(name): column for column in COLUMNS for name in (column.header, *column.aliases)
}


@dataclass(frozen=True)
class TemplateRow:
    """One slot of the template, with its optional previous and current reading.

    `row` is the spreadsheet row it was read from (0 for rows made in code).
    """

    city: str
    street: str
    house: str
    apartment: str
    serial_number: str
    digits: int
    fraction_digits: int = 0
    tariff: str | None = None
    previous_value: str | None = None
    previous_date: date | None = None
    value: str | None = None
    value_date: date | None = None
    row: int = field(default=0, compare=False)

    @property
    def building_key(self) -> tuple[str, str, str]:
        """What identifies the building: city, street and house."""
        return (self.city, self.street, self.house)

    @property
    def slot_key(self) -> tuple[str, str, str, str, str, str]:
        """What identifies the slot: the building, apartment, serial number and tariff."""
        return (*self.building_key, self.apartment, self.serial_number, self.tariff or "")


@dataclass(frozen=True)
class TemplateProblem:
    """One reason a file was refused: where (row, column header) and what, in Russian."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"строка {self.row}")
        if self.column is not None:
            where.append(f"столбец «{self.column}»")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class TemplateError(Exception):
    """A template file refused whole; `problems` lists every reason."""

    def __init__(self, problems: Sequence[TemplateProblem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(str(problem) for problem in self.problems[:3])
        more = len(self.problems) - 3
        super().__init__(shown + (f" (и ещё {more})" if more > 0 else ""))


# -- reading ------------------------------------------------------------------


def read_template(data: bytes, filename: str, default_city: str) -> list[TemplateRow]:
    """Parse a filled template (.xlsx first sheet, or .csv) into rows, all or nothing.

    Raises TemplateError listing every problem: a missing required column, a bad
    value, a duplicate slot, an empty sheet, a file that is not UTF-8 or not a
    spreadsheet. Unknown columns are ignored; fully empty rows are skipped.
    An empty «Город» takes `default_city`.
    """
    suffix = PurePath(filename).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        grid = _read_xlsx(data)
    elif suffix == ".csv":
        grid = _read_csv(data)
    elif suffix == ".xls":
        raise TemplateError(
            [_problem(None, None, "формат .xls не поддерживается: сохраните файл как .xlsx")]
        )
    else:
        raise TemplateError(
            [_problem(None, None, f"файл «{filename}» не .xlsx и не .csv: нужен один из них")]
        )
    return _parse_grid(grid, default_city)


def _problem(row: int | None, column: str | None, message: str) -> TemplateProblem:
    return TemplateProblem(row, column, message)


def _read_xlsx(data: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError):
        raise TemplateError(
            [_problem(None, None, "файл не читается как книга Excel (.xlsx)")]
        ) from None
    try:
        if not workbook.worksheets:
            raise TemplateError([_problem(1, None, "в книге нет ни одного листа")])
        sheet = workbook.worksheets[0]
        # A file written by another program may carry a wrong size in its header;
        # without this, openpyxl would silently cut the rows to that size.
        sheet.reset_dimensions()
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def _read_csv(data: bytes) -> list[list[Any]]:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TemplateError(
            [
                _problem(
                    line,
                    None,
                    "файл не в кодировке UTF-8 (похоже, Windows-1251): "
                    "сохраните его как «CSV UTF-8 (разделитель — запятая)» или как .xlsx",
                )
            ]
        ) from None
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    try:
        return [
            list(record)
            for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        ]
    except csv.Error as exc:
        raise TemplateError([_problem(None, None, f"файл CSV повреждён: {exc}")]) from None


def _is_empty(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _parse_grid(grid: list[list[Any]], default_city: str) -> list[TemplateRow]:
    if not grid or all(all(_is_empty(cell) for cell in cells) for cells in grid):
        raise TemplateError([_problem(1, None, "лист пуст: нет строки заголовков и данных")])
    header_cells = grid[0]
    if all(_is_empty(cell) for cell in header_cells):
        raise TemplateError(
            [_problem(1, None, "в первой строке должны быть заголовки столбцов, а она пуста")]
        )

    problems: list[TemplateProblem] = []
    found: dict[str, tuple[int, str]] = {}
    for index, cell in enumerate(header_cells):
        text = _text(cell)
        column = _BY_HEADER.get(_header_key(text)) if text else None
        if column is None:
            continue
        if column.key in found:
            first = found[column.key][1]
            problems.append(_problem(1, text, f"столбец повторяет столбец «{first}»"))
            continue
        found[column.key] = (index, text)
    for column in COLUMNS:
        if column.required and column.key not in found:
            problems.append(_problem(1, column.header, "нет обязательного столбца"))
    if problems:
        raise TemplateError(problems)

    records = [
        (number, cells)
        for number, cells in enumerate(grid[1:], start=2)
        if not all(_is_empty(cell) for cell in cells)
    ]
    if not records:
        raise TemplateError([_problem(2, None, "в файле нет ни одной строки с данными")])

    parser = _RowParser(found, default_city)
    rows = [parser.parse(number, cells) for number, cells in records]
    problems = parser.problems
    good = [row for row in rows if row is not None]
    problems.extend(_duplicates(parser.identities, parser.header))
    problems.extend(_zone_sets(parser.identities, parser.header))
    if problems:
        problems.sort(key=lambda problem: (problem.row or 0, _column_order(problem.column)))
        raise TemplateError(problems)
    return good


def _column_order(header: str | None) -> int:
    if header is None:
        return -1
    column = _BY_HEADER.get(_header_key(header))
    return COLUMNS.index(column) if column is not None else len(COLUMNS)


class _RowParser:
    """Turns one spreadsheet record into a TemplateRow, collecting problems."""

    def __init__(self, found: dict[str, tuple[int, str]], default_city: str) -> None:
        self._found = found
        self._default_city = default_city
        self.problems: list[TemplateProblem] = []
        # Every row whose address, apartment, serial number and tariff are readable,
        # even if another cell is bad, so that duplicates are reported in one go.
        self.identities: list[_SlotIdentity] = []

    def header(self, key: str) -> str:
        """The column's header as written in the file (or the documented one)."""
        if key in self._found:
            return self._found[key][1]
        return next(column.header for column in COLUMNS if column.key == key)

    def parse(self, number: int, cells: list[Any]) -> TemplateRow | None:
        before = len(self.problems)

        def cell(key: str) -> Any:
            if key not in self._found:
                return None
            index = self._found[key][0]
            return cells[index] if index < len(cells) else None

        def fail(key: str, message: str) -> None:
            self.problems.append(_problem(number, self.header(key), message))

        texts: dict[str, str] = {}
        for key in ("city", "street", "house", "apartment", "serial_number"):
            raw = cell(key)
            if isinstance(raw, datetime | date):
                # Excel turns "7/1" or "12.3" typed into a cell into a date.
                fail(key, "Excel превратил значение в дату: введите его как текст")
                continue
            value = _text(raw)
            if not value:
                if key == "city":
                    value = self._default_city
                else:
                    fail(key, "пустое значение")
                    continue
            if len(value) > _MAX_LENGTH[key]:
                fail(key, f"длиннее {_MAX_LENGTH[key]} символов")
                continue
            texts[key] = value

        digits = _integer(cell("digits"))
        if digits is None or not 1 <= digits <= 12:
            fail("digits", f"«{_shown(cell('digits'))}» — нужно целое число от 1 до 12")
            digits = None
        fraction_raw = cell("fraction_digits")
        fraction_digits: int | None = 0
        if not _is_empty(fraction_raw):
            fraction_digits = _integer(fraction_raw)
            if fraction_digits is None or not 0 <= fraction_digits <= 3:
                fail(
                    "fraction_digits",
                    f"«{_shown(fraction_raw)}» — нужно целое число от 0 до 3 или пусто",
                )
                fraction_digits = None

        tariff: str | None = None
        tariff_text = _text(cell("tariff")).casefold()
        if tariff_text:
            if tariff_text in TARIFFS:
                tariff = tariff_text
            else:
                fail(
                    "tariff",
                    f"«{_shown(cell('tariff'))}» — тариф должен быть «день», «ночь», "
                    "«пик», «полупик» или пусто (однотарифный прибор)",
                )
        if len(texts) == 5 and (tariff is not None or not tariff_text):
            self.identities.append(
                _SlotIdentity(
                    number,
                    (texts["city"], texts["street"], texts["house"]),
                    texts["apartment"],
                    texts["serial_number"],
                    tariff,
                )
            )

        def reading(key: str) -> str | None:
            raw = cell(key)
            if _is_empty(raw):
                return None
            value = _reading_text(raw)
            if value is None:
                fail(
                    key,
                    f"«{_shown(raw)}» — показание пишется цифрами, "
                    "дробная часть через точку или запятую",
                )
                return None
            if digits is not None and fraction_digits is not None:
                whole, _, fraction = value.partition(".")
                if len(whole) > digits or len(fraction) > fraction_digits:
                    fail(
                        key,
                        f"«{_shown(raw)}» — больше знаков, чем у прибора "
                        f"({digits} до запятой, {fraction_digits} после)",
                    )
                    return None
            return value

        def day(key: str) -> date | None:
            raw = cell(key)
            if _is_empty(raw):
                return None
            value = _date(raw)
            if value is None:
                fail(key, f"«{_shown(raw)}» — дата пишется как ДД.ММ.ГГГГ")
            return value

        previous_value, previous_date = reading("previous_value"), day("previous_date")
        current_value, value_date = reading("value"), day("value_date")
        # The contract's `previous` always has both a value and a date.
        if (
            previous_value is not None
            and previous_date is None
            and _is_empty(cell("previous_date"))
        ):
            fail("previous_date", "у предыдущего показания нет даты")
        if (
            previous_date is not None
            and previous_value is None
            and _is_empty(cell("previous_value"))
        ):
            fail("previous_value", "дата есть, а предыдущего показания нет")

        if len(self.problems) > before or digits is None or fraction_digits is None:
            return None
        return TemplateRow(
            city=texts["city"],
            street=texts["street"],
            house=texts["house"],
            apartment=texts["apartment"],
            serial_number=texts["serial_number"],
            digits=digits,
            fraction_digits=fraction_digits,
            tariff=tariff,
            previous_value=previous_value,
            previous_date=previous_date,
            value=current_value,
            value_date=value_date,
            row=number,
        )


@dataclass(frozen=True)
class _SlotIdentity:
    row: int
    building_key: tuple[str, str, str]
    apartment: str
    serial_number: str
    tariff: str | None


def _duplicates(rows: list[_SlotIdentity], header: Callable[[str], str]) -> list[TemplateProblem]:
    problems = []
    first_seen: dict[tuple[str, ...], int] = {}
    for row in rows:
        key = (*row.building_key, row.apartment, row.serial_number, row.tariff or "")
        earlier = first_seen.setdefault(key, row.row)
        if earlier != row.row:
            problems.append(
                _problem(
                    row.row,
                    header("serial_number"),
                    f"слот повторяет строку {earlier}: тот же дом, квартира, "
                    "заводской номер и тариф",
                )
            )
    return problems


def _zone_sets(rows: list[_SlotIdentity], header: Callable[[str], str]) -> list[TemplateProblem]:
    meters: dict[tuple[str, ...], list[_SlotIdentity]] = {}
    for row in rows:
        meters.setdefault((*row.building_key, row.apartment, row.serial_number), []).append(row)
    problems = []
    for zones in meters.values():
        tariffs = [row.tariff for row in zones]
        named = frozenset(tariff for tariff in tariffs if tariff is not None)
        if (None not in tariffs and named in TARIFF_SETS) or (len(tariffs) == 1 and not named):
            continue
        if len(set(tariffs)) != len(tariffs):
            continue  # a duplicate slot, reported as such
        last = zones[-1]
        listed = ", ".join(f"«{tariff}»" if tariff else "без тарифа" for tariff in tariffs)
        problems.append(
            _problem(
                last.row,
                header("tariff"),
                f"у прибора {last.serial_number} (кв. {last.apartment}) зоны: {listed}; "
                "нужен один из наборов: без тарифа; «день» и «ночь»; "
                "«пик», «полупик» и «ночь»",
            )
        )
    return problems


def _text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() else _decimal_text(cell)
    if isinstance(cell, datetime | date):
        return cell.strftime(_DATE_FORMAT)
    return " ".join(str(cell).split())


def _shown(cell: Any) -> str:
    """A cell as quoted back in a problem message (short)."""
    text = _text(cell)
    return text if len(text) <= 40 else text[:39] + "…"


def _decimal_text(number: float) -> str:
    # repr gives the shortest text that round-trips (13305.4, not 13305.399999...).
    return format(Decimal(repr(number)), "f")


def _integer(cell: Any) -> int | None:
    if isinstance(cell, bool) or cell is None:
        return None
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float):
        return int(cell) if cell.is_integer() else None
    text = _text(cell)
    return int(text) if text.isascii() and text.isdigit() else None


def _reading_text(cell: Any) -> str | None:
    if isinstance(cell, bool):
        return None
    if isinstance(cell, int):
        return str(cell) if cell >= 0 else None
    if isinstance(cell, float):
        if cell < 0:
            return None
        try:
            return _decimal_text(cell)
        except InvalidOperation:
            return None
    if not isinstance(cell, str):
        return None
    text = cell.strip().replace(",", ".")
    return text if text.isascii() and _VALUE_RE.match(text) else None


def _date(cell: Any) -> date | None:
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    if isinstance(cell, str):
        try:
            return datetime.strptime(cell.strip(), _DATE_FORMAT).date()
        except ValueError:
            return None
    return None


# -- writing ------------------------------------------------------------------


def write_template(rows: Iterable[TemplateRow]) -> bytes:
    """An .xlsx with exactly the template's headers, in order, and one row per slot."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    _fill_template_sheet(workbook.create_sheet("Макет"), rows)
    return _save(workbook)


def submission_template(
    building: Building,
    meters: Sequence[Meter],
    values: Mapping[str, str],
    *,
    taken_on: date | Mapping[str, date] | None = None,
    skip_reasons: Mapping[str, str] | None = None,
) -> bytes:
    """One submission as a filled template .xlsx, ready for manual upload.

    `values` and `skip_reasons` are keyed by meter id; `taken_on` is the date of
    every reading or a date per meter id. The first sheet is exactly the
    template (so the file uploads as is); the skip reasons go to a second sheet
    «Примечания» (apartment, serial number, tariff, reason), where they cannot
    break the upload.
    """
    from openpyxl import Workbook

    known = {meter.id for meter in meters}
    strays = (set(values) | set(skip_reasons or {})) - known
    if strays:
        raise ValueError(f"values or reasons for meters not in the list: {sorted(strays)}")
    rows = []
    for meter in meters:
        value = values.get(meter.id)
        day = taken_on.get(meter.id) if isinstance(taken_on, Mapping) else taken_on
        rows.append(
            TemplateRow(
                city=building.city,
                street=building.street,
                house=building.house,
                apartment=meter.apartment,
                serial_number=meter.serial_number,
                digits=meter.digits,
                fraction_digits=meter.fraction_digits,
                tariff=meter.tariff,
                previous_value=meter.previous.value if meter.previous else None,
                previous_date=meter.previous.date if meter.previous else None,
                value=value,
                value_date=day if value is not None else None,
            )
        )
    workbook = Workbook(write_only=True)
    _fill_template_sheet(workbook.create_sheet("Макет"), rows)
    reasons = skip_reasons or {}
    if reasons:
        notes = workbook.create_sheet(NOTES_SHEET)
        _write_header(notes, NOTES_HEADERS, (12, 18, 10, 40))
        for meter in meters:
            if meter.id in reasons:
                notes.append(
                    [
                        _text_cell(notes, meter.apartment),
                        _text_cell(notes, meter.serial_number),
                        _text_cell(notes, meter.tariff or ""),
                        _text_cell(notes, reasons[meter.id]),
                    ]
                )
    return _save(workbook)


_WIDTHS = (16, 28, 10, 10, 18, 11, 11, 10, 14, 14, 14, 14)


def _write_header(sheet: WriteOnlyWorksheet, headers: Sequence[str], widths: Sequence[int]) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for index, width in enumerate(widths):
        # WriteOnlyWorksheet has column_dimensions at run time; the stubs omit it.
        sheet.column_dimensions[letters[index]].width = width  # type: ignore[attr-defined]
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, value=header)
        cell.font = bold
        cells.append(cell)
    sheet.append(cells)


def _text_cell(sheet: WriteOnlyWorksheet, value: str | None) -> Cell | None:
    from openpyxl.cell import WriteOnlyCell

    if value is None:
        return None
    # Text format, so that Excel keeps "00412" and does not turn "7/1" into a date
    # when the operator edits the cell.
    cell = WriteOnlyCell(sheet, value=value)
    cell.number_format = "@"
    return cell


def _fill_template_sheet(sheet: WriteOnlyWorksheet, rows: Iterable[TemplateRow]) -> None:
    _write_header(sheet, HEADERS, _WIDTHS)
    for row in rows:
        sheet.append(
            [
                _text_cell(sheet, row.city),
                _text_cell(sheet, row.street),
                _text_cell(sheet, row.house),
                _text_cell(sheet, row.apartment),
                _text_cell(sheet, row.serial_number),
                row.digits,
                row.fraction_digits,
                _text_cell(sheet, row.tariff),
                _text_cell(sheet, row.previous_value),
                _text_cell(sheet, _day_text(row.previous_date)),
                _text_cell(sheet, row.value),
                _text_cell(sheet, _day_text(row.value_date)),
            ]
        )


def _day_text(day: date | None) -> str | None:
    return day.strftime(_DATE_FORMAT) if day is not None else None


def _save(workbook: Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
