"""The template spreadsheet: reading all or nothing, writing exactly the documented headers."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from billing_client.models import Building, Meter, Previous
from billing_client.template import (
    HEADERS,
    NOTES_SHEET,
    TemplateError,
    TemplateRow,
    read_template,
    submission_template,
    write_template,
)

# No PostgreSQL or Redis here (files in memory): only the SQLite pass runs
# these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

CITY = "Новосибирск"


def xlsx(*rows: list[Any]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def problems_of(data: bytes, filename: str) -> list[str]:
    with pytest.raises(TemplateError) as caught:
        read_template(data, filename, CITY)
    return [str(problem) for problem in caught.value.problems]


GOOD_HEADER = ["Город", "Улица", "Дом", "Квартира", "Зав. номер", "Значность", "Тариф"]


def test_a_good_xlsx_loads_with_aliases_and_cell_types() -> None:
    data = xlsx(
        [
            " УЛИЦА ",
            "дом",
            "Кв.",
            "Заводской номер",
            "Значность",
            "Знаков после запятой",
            "Тариф",
            "Предыдущее показание",
            "Дата предыдущего показания",
            "Лицевой счёт",
        ],
        ["Авиастроителей ул.", "0/0", 1, "00123", 5, None, None, "00412", "20.10.2026", "x"],
        [
            "Авиастроителей ул.",
            "0/0",
            "1а",
            98765,
            6.0,
            1,
            "День",
            13305.4,
            datetime(2026, 10, 21),
            "",
        ],
        ["Авиастроителей ул.", "0/0", "1а", 98765, 6, 1, "ночь", "412,5", "21.10.2026", None],
        [None, None, None, None, None, None, None, None, None, None],  # blank rows are skipped
        ["Красный пр-т", "17", "НП-1", "555", "8", "2", "", None, None, None],
    )

    rows = read_template(data, "Дома.XLSX", CITY)

    assert rows == [
        TemplateRow(CITY, "Авиастроителей ул.", "0/0", "1", "00123", 5, 0, None,
                    "00412", date(2026, 10, 20)),
        TemplateRow(CITY, "Авиастроителей ул.", "0/0", "1а", "98765", 6, 1, "день",
                    "13305.4", date(2026, 10, 21)),
        TemplateRow(CITY, "Авиастроителей ул.", "0/0", "1а", "98765", 6, 1, "ночь",
                    "412.5", date(2026, 10, 21)),
        TemplateRow(CITY, "Красный пр-т", "17", "НП-1", "555", 8, 2),
    ]  # fmt: skip
    assert [row.row for row in rows] == [2, 3, 4, 6]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (
            "Город;Улица;Дом;Квартира;Зав. номер;Значность;Знаков после запятой;Тариф;"
            "Предыдущее показание;Дата предыдущего показания\r\n"
            ";Гоголя ул.;38;5;0012;5;1;;0041,2;01.10.2026\r\n"
            'Бердск;"Ленина ул.; корпус 2";7 стр. 2;12а;77;6;;;;\r\n',
            "utf-8-sig",
        ),
        (
            "Улица,Дом,Квартира,Зав. номер,Значность,Знаков после запятой,Тариф,"
            "Предыдущее показание,Дата предыдущего показания\n"
            "Гоголя ул.,38,5,0012,5,1,,0041.2,01.10.2026\n"
            '"Ленина ул.; корпус 2",7 стр. 2,12а,77,6,,,,\n',
            "utf-8",
        ),
    ],
    ids=["semicolon-bom-crlf", "comma-no-bom"],
)
def test_a_good_csv_loads(text: str, encoding: str) -> None:
    rows = read_template(text.encode(encoding), "houses.csv", CITY)

    assert [(r.city, r.street, r.house, r.apartment, r.serial_number, r.digits) for r in rows] == [
        (CITY, "Гоголя ул.", "38", "5", "0012", 5),
        ("Бердск" if ";" in text.split("\n")[0] else CITY, "Ленина ул.; корпус 2", "7 стр. 2",
         "12а", "77", 6),
    ]  # fmt: skip
    assert (rows[0].previous_value, rows[0].previous_date) == ("0041.2", date(2026, 10, 1))


def test_a_missing_required_column_is_refused_whole() -> None:
    data = xlsx(["Улица", "Квартира", "Зав. номер", "Тариф"], ["Гоголя ул.", "5", "1", ""])

    assert problems_of(data, "a.xlsx") == [
        "строка 1, столбец «Дом»: нет обязательного столбца",
        "строка 1, столбец «Значность»: нет обязательного столбца",
    ]


def test_a_column_given_twice_is_refused() -> None:
    data = xlsx([*GOOD_HEADER, "Кв."], [CITY, "Гоголя ул.", "38", "5", "1", 5, None, "6"])

    assert problems_of(data, "a.xlsx") == [
        "строка 1, столбец «Кв.»: столбец повторяет столбец «Квартира»"
    ]


def test_bad_values_are_all_listed_by_row_and_column() -> None:
    header = [
        *GOOD_HEADER,
        "Знаков после запятой",
        "Предыдущее показание",
        "Дата предыдущего показания",
        "Показание",
        "Дата показания",
    ]
    data = xlsx(
        header,
        [CITY, "Гоголя ул.", "38", "1", "11", 5, None, 0, "12a", "01.10.2026", None, None],
        [CITY, "Гоголя ул.", "38", "2", "12", "пять", None, None, None, None, None, None],
        [CITY, "Гоголя ул.", "38", "3", "13", 13, "утро", 4, None, None, None, None],
        [CITY, "", "38", "4", None, 5, None, None, "123456", None, "1,25", "2026-11-24"],
        [CITY, "Гоголя ул.", datetime(2026, 1, 7), "5", "15", 5, None, None, None,
         "01.10.2026", "100", None],
    )  # fmt: skip

    assert problems_of(data, "bad.xlsx") == [
        "строка 2, столбец «Предыдущее показание»: «12a» — показание пишется цифрами, "
        "дробная часть через точку или запятую",
        "строка 3, столбец «Значность»: «пять» — нужно целое число от 1 до 12",
        "строка 4, столбец «Значность»: «13» — нужно целое число от 1 до 12",
        "строка 4, столбец «Знаков после запятой»: «4» — нужно целое число от 0 до 3 или пусто",
        "строка 4, столбец «Тариф»: «утро» — тариф должен быть «день», «ночь», «пик», "
        "«полупик» или пусто (однотарифный прибор)",
        "строка 5, столбец «Улица»: пустое значение",
        "строка 5, столбец «Зав. номер»: пустое значение",
        "строка 5, столбец «Предыдущее показание»: «123456» — больше знаков, чем у прибора "
        "(5 до запятой, 0 после)",
        "строка 5, столбец «Показание»: «1,25» — больше знаков, чем у прибора "
        "(5 до запятой, 0 после)",
        "строка 5, столбец «Дата показания»: «2026-11-24» — дата пишется как ДД.ММ.ГГГГ",
        "строка 6, столбец «Дом»: Excel превратил значение в дату: введите его как текст",
        "строка 6, столбец «Предыдущее показание»: дата есть, а предыдущего показания нет",
    ]


def test_a_previous_reading_needs_its_date() -> None:
    data = xlsx(
        [*GOOD_HEADER, "Предыдущее показание"],
        [CITY, "Гоголя ул.", "38", "1", "11", 5, None, "100"],
    )

    assert problems_of(data, "a.xlsx") == [
        "строка 2, столбец «Дата предыдущего показания»: у предыдущего показания нет даты"
    ]


def test_a_duplicate_slot_is_refused_whole() -> None:
    data = xlsx(
        GOOD_HEADER,
        [CITY, "Гоголя ул.", "38", "1", "0011", 5, "день"],
        [CITY, "Гоголя ул.", "38", "1", "0011", 5, "ночь"],
        [CITY, "Гоголя ул.", "38", "2", "0012", 5, None],
        [CITY, "Гоголя ул.", "38", "1", "0011", 5, "День"],
        [None, "Гоголя ул.", "38", "2", "0012", "x", None],  # the default city: same slot
    )

    assert problems_of(data, "dup.xlsx") == [
        "строка 5, столбец «Зав. номер»: слот повторяет строку 2: тот же дом, квартира, "
        "заводской номер и тариф",
        "строка 6, столбец «Зав. номер»: слот повторяет строку 4: тот же дом, квартира, "
        "заводской номер и тариф",
        "строка 6, столбец «Значность»: «x» — нужно целое число от 1 до 12",
    ]


def test_incomplete_tariff_zones_are_refused() -> None:
    data = xlsx(
        GOOD_HEADER,
        [CITY, "Гоголя ул.", "38", "1", "0011", 5, "день"],
        [CITY, "Гоголя ул.", "38", "2", "0012", 5, None],
        [CITY, "Гоголя ул.", "38", "2", "0012", 5, "ночь"],
        [CITY, "Гоголя ул.", "38", "3", "0013", 5, "пик"],
        [CITY, "Гоголя ул.", "38", "3", "0013", 5, "полупик"],
        [CITY, "Гоголя ул.", "38", "3", "0013", 5, "ночь"],
    )

    assert problems_of(data, "zones.xlsx") == [
        "строка 2, столбец «Тариф»: у прибора 0011 (кв. 1) зоны: «день»; нужен один из "
        "наборов: без тарифа; «день» и «ночь»; «пик», «полупик» и «ночь»",
        "строка 4, столбец «Тариф»: у прибора 0012 (кв. 2) зоны: без тарифа, «ночь»; нужен "
        "один из наборов: без тарифа; «день» и «ночь»; «пик», «полупик» и «ночь»",
    ]


def test_an_empty_sheet_is_refused() -> None:
    assert problems_of(xlsx(), "empty.xlsx") == [
        "строка 1: лист пуст: нет строки заголовков и данных"
    ]
    assert problems_of(b"", "empty.csv") == ["строка 1: лист пуст: нет строки заголовков и данных"]
    assert problems_of(xlsx(GOOD_HEADER, [None] * 7), "headers-only.xlsx") == [
        "строка 2: в файле нет ни одной строки с данными"
    ]
    assert problems_of(xlsx([None, None], GOOD_HEADER), "shifted.xlsx") == [
        "строка 1: в первой строке должны быть заголовки столбцов, а она пуста"
    ]


def test_a_csv_in_windows_1251_is_refused() -> None:
    text = ";".join(GOOD_HEADER) + "\n" + ";".join([CITY, "Гоголя ул.", "38", "1", "11", "5", ""])

    assert problems_of(text.encode("cp1251"), "win.csv") == [
        "строка 1: файл не в кодировке UTF-8 (похоже, Windows-1251): сохраните его как "
        "«CSV UTF-8 (разделитель — запятая)» или как .xlsx"
    ]
    # A UTF-8 file with one line pasted from a Windows-1251 one: that line is named.
    mixed = (
        "Улица;Дом;Квартира;Зав. номер;Значность\nГоголя ул.;1;1;1;5\n".encode()
        + "Гоголя ул.;2;2;2;5\n".encode("cp1251")
    )
    assert problems_of(mixed, "mixed.csv") == [
        "строка 3: файл не в кодировке UTF-8 (похоже, Windows-1251): сохраните его как "
        "«CSV UTF-8 (разделитель — запятая)» или как .xlsx"
    ]


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"PK\x03\x04 broken zip", "a.xlsx", "файл не читается как книга Excel (.xlsx)"),
        (b"plain text", "a.xlsx", "файл не читается как книга Excel (.xlsx)"),
        (b"\xd0\xcf\x11\xe0", "old.xls", "формат .xls не поддерживается: сохраните файл как .xlsx"),
        (b"x", "notes.txt", "файл «notes.txt» не .xlsx и не .csv: нужен один из них"),
    ],
)
def test_a_file_that_is_not_a_template_is_refused(data: bytes, filename: str, message: str) -> None:
    assert problems_of(data, filename) == [message]


def test_write_template_writes_exactly_the_documented_headers_and_reads_back() -> None:
    rows = [
        TemplateRow(CITY, "Авиастроителей ул.", "7/1", "1", "00123", 5, 0, None, "00412",
                    date(2026, 10, 20), "00500", date(2026, 11, 24)),
        TemplateRow(CITY, "Авиастроителей ул.", "7/1", "НП-1", "0098", 8, 2, "пик"),
        TemplateRow(CITY, "Авиастроителей ул.", "7/1", "НП-1", "0098", 8, 2, "полупик"),
        TemplateRow(CITY, "Авиастроителей ул.", "7/1", "НП-1", "0098", 8, 2, "ночь"),
    ]  # fmt: skip

    data = write_template(rows)

    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    assert [cell.value for cell in sheet[1]] == list(HEADERS)
    assert HEADERS == (
        "Город", "Улица", "Дом", "Квартира", "Зав. номер", "Значность", "Знаков после запятой",
        "Тариф", "Предыдущее показание", "Дата предыдущего показания", "Показание",
        "Дата показания",
    )  # fmt: skip
    assert sheet["E2"].value == "00123" and sheet["E2"].number_format == "@"
    assert sheet["J2"].value == "20.10.2026"
    assert read_template(data, "back.xlsx", "Бердск") == rows


def test_submission_template_is_the_template_plus_a_notes_sheet() -> None:
    building = Building(id="b-1", city=CITY, street="Гоголя ул.", house="38",
                        address=f"{CITY}, Гоголя ул., 38")  # fmt: skip
    meters = [
        Meter(id="m-1", apartment="1", serial_number="0011", digits=5,
              previous=Previous(value="00400", date=date(2026, 10, 20))),
        Meter(id="m-2", apartment="2", serial_number="0012", digits=6, fraction_digits=1,
              tariff="день"),
        Meter(id="m-3", apartment="2", serial_number="0012", digits=6, fraction_digits=1,
              tariff="ночь"),
    ]  # fmt: skip

    data = submission_template(
        building,
        meters,
        {"m-1": "00420", "m-2": "000123.4"},
        taken_on=date(2026, 11, 24),
        skip_reasons={"m-3": "Нет доступа"},
    )

    workbook = load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == ["Макет", NOTES_SHEET]
    notes = [[cell.value for cell in row] for row in workbook[NOTES_SHEET].iter_rows()]
    assert notes == [
        ["Квартира", "Зав. номер", "Тариф", "Причина"],
        ["2", "0012", "ночь", "Нет доступа"],
    ]
    back = read_template(data, "submission.xlsx", CITY)
    assert [(r.serial_number, r.tariff, r.value, r.value_date, r.previous_value) for r in back] == [
        ("0011", None, "00420", date(2026, 11, 24), "00400"),
        ("0012", "день", "000123.4", date(2026, 11, 24), None),
        ("0012", "ночь", None, None, None),
    ]


def test_submission_template_without_skips_has_one_sheet_and_per_meter_dates() -> None:
    building = Building(id="b-1", city=CITY, street="Гоголя ул.", house="38", address="x")
    meters = [Meter(id="m-1", apartment="1", serial_number="1", digits=5),
              Meter(id="m-2", apartment="2", serial_number="2", digits=5)]  # fmt: skip

    data = submission_template(
        building, meters, {"m-1": "1", "m-2": "2"}, taken_on={"m-1": date(2026, 11, 23)}
    )

    assert load_workbook(io.BytesIO(data)).sheetnames == ["Макет"]
    back = read_template(data, "s.xlsx", CITY)
    assert [(r.value, r.value_date) for r in back] == [("1", date(2026, 11, 23)), ("2", None)]
    with pytest.raises(ValueError, match="m-9"):
        submission_template(building, meters, {"m-9": "1"})
