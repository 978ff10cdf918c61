"""Bulk import of instruments: CSV and XLSX, all rows or none, web and CLI."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select

from labshare.catalogue import importer
from labshare.models import Instrument, Role

HEADER = [
    "lab",
    "name",
    "field",
    "model",
    "serial_number",
    "measurand",
    "unit",
    "range_min",
    "range_max",
    "calibration_valid_until",
    "fee_per_hour",
    "fee_waiver_percent",
    "requires_qualification",
]


def good_rows(lab_name: str) -> list[list[str]]:
    return [
        [lab_name, "数字压力计", "mechanical", "DPI 620", "SN-1", "pressure", "MPa", "0", "10",
         "2031-01-31", "120", "50", "no"],
        [lab_name, "铂电阻温度计", "thermal", "", "SN-2", "temperature", "℃", "-80", "300",
         "2031-06-30", "", "", ""],
    ]  # fmt: skip


def as_csv(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    lines = [",".join(header)] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def as_xlsx(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def setup(app: Any, db: Any, make_lab: Any, make_user: Any, make_institute: Any) -> Any:
    institute = make_institute(code="JSIM")
    lab = make_lab(institute=institute, name="压力实验室")
    staff = make_user(Role.STAFF, institute=institute)
    other_staff = make_user(Role.STAFF)
    db.session.commit()
    return institute, lab, staff, other_staff


def instruments(db: Any) -> int:
    return int(db.session.scalar(select(func.count(Instrument.id))))


# -- the service ---------------------------------------------------------------------------


@pytest.mark.parametrize(("ext", "encode"), [("csv", as_csv), ("xlsx", as_xlsx)])
def test_good_file_imports_every_row(setup: Any, db: Any, ext: str, encode: Any) -> None:
    institute, lab, staff, _ = setup
    rows = importer.read_table(f"list.{ext}", encode(good_rows(lab.name)))
    report = importer.check_rows(institute, rows)
    assert report.errors == []
    created = importer.import_instruments(staff, institute, report)
    db.session.commit()
    assert [i.name for i in created] == ["数字压力计", "铂电阻温度计"]
    thermo = created[1]
    assert thermo.lab_id == lab.id and thermo.range_min_base == pytest.approx(193.15)
    assert created[0].range_max_base == pytest.approx(1e7)


@pytest.mark.parametrize(("ext", "encode"), [("csv", as_csv), ("xlsx", as_xlsx)])
def test_one_bad_row_writes_nothing_and_names_row_and_column(
    setup: Any, db: Any, ext: str, encode: Any
) -> None:
    institute, lab, staff, _ = setup
    rows = good_rows(lab.name)
    rows.insert(1, [lab.name, "坏的", "mechanical", "", "SN-3", "pressure", "°C", "0", "1",
                    "2031-13-01", "", "", "maybe"])  # fmt: skip
    report = importer.check_rows(institute, importer.read_table(f"x.{ext}", encode(rows)))
    found = {(e.row, e.column) for e in report.errors}
    assert found == {
        (3, "unit"),
        (3, "calibration_valid_until"),
        (3, "requires_qualification"),
    }
    with pytest.raises(importer.ValidationFailed):
        importer.import_instruments(staff, institute, report)
    db.session.rollback()
    assert instruments(db) == 0


def test_unknown_lab_duplicate_serials_and_chinese_headers(setup: Any, db: Any) -> None:
    institute, lab, _, _ = setup
    header = ["实验室", "名称", "领域", "出厂编号", "被测量", "单位", "量程下限", "量程上限"]
    rows = [
        [lab.name, "A", "mechanical", "S1", "pressure", "kPa", "0", "100"],
        ["没有的实验室", "B", "mechanical", "S2", "pressure", "kPa", "0", "100"],
        [lab.name, "C", "mechanical", "S1", "pressure", "kPa", "0", "100"],
    ]
    report = importer.check_rows(institute, importer.read_table("x.csv", as_csv(rows, header)))
    assert {(e.row, e.column) for e in report.errors} == {(3, "lab"), (4, "serial_number")}


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("list.txt", b"a,b", "xlsx or .csv"),
        ("list.csv", b"", "empty"),
        ("list.xlsx", b"not a zip", "not an .xlsx"),
        ("list.csv", b"name,unit\nx,MPa\n", "missing"),
        ("list.csv", b"x" * (importer.MAX_BYTES + 1), "at most"),
    ],
)
def test_unreadable_files_are_refused(
    setup: Any, filename: str, content: bytes, message: str
) -> None:
    with pytest.raises(importer.ImportRefused) as caught:
        importer.read_table(filename, content)
    assert message in str(caught.value.message)


# -- the command line ----------------------------------------------------------------------


def test_cli_dry_run_writes_nothing_then_imports(
    setup: Any, app: Any, db: Any, tmp_path: Path
) -> None:
    _, lab, _, _ = setup
    path = tmp_path / "list.xlsx"
    path.write_bytes(as_xlsx(good_rows(lab.name)))
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["import-instruments", str(path), "--institute", "JSIM", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "Dry run: 2 rows are valid" in result.output
    assert instruments(db) == 0
    result = runner.invoke(args=["import-instruments", str(path), "--institute", "JSIM"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert instruments(db) == 2


def test_cli_reports_bad_rows_and_writes_nothing(
    setup: Any, app: Any, db: Any, tmp_path: Path
) -> None:
    _, lab, _, _ = setup
    rows = good_rows(lab.name)
    rows[1][7] = "cold"
    path = tmp_path / "list.csv"
    path.write_bytes(as_csv(rows))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import-instruments", str(path), "--institute", "JSIM"])
    assert result.exit_code != 0
    assert "row 3, column range_min" in result.output
    assert instruments(db) == 0
    result = runner.invoke(args=["import-instruments", str(path), "--institute", "NOPE"])
    assert result.exit_code != 0 and "No institute" in result.output


# -- the web flow --------------------------------------------------------------------------


def _upload(client: Any, name: str, content: bytes) -> Any:
    return client.post(
        "/manage/import",
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def test_web_upload_preview_confirm(setup: Any, client: Any, login: Any, db: Any) -> None:
    _, lab, staff, _ = setup
    login(staff)
    preview = _upload(client, "list.xlsx", as_xlsx(good_rows(lab.name)))
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert "Preview: 2 instruments" in html and "铂电阻温度计" in html
    assert instruments(db) == 0
    token = html.split('name="token" value="', 1)[1].split('"', 1)[0]
    response = client.post("/manage/import/confirm", data={"token": token})
    assert response.status_code == 302
    assert instruments(db) == 2
    # the stored upload is used once
    again = client.post("/manage/import/confirm", data={"token": token})
    assert again.status_code == 302 and instruments(db) == 2


def test_web_upload_with_bad_row_lists_it(setup: Any, client: Any, login: Any, db: Any) -> None:
    _, lab, staff, _ = setup
    rows = good_rows(lab.name)
    rows[0][5] = "smell"
    login(staff)
    response = _upload(client, "list.csv", as_csv(rows))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Nothing was imported" in html
    assert '<td class="num">2</td><td><code>measurand</code></td>' in html
    assert 'name="token"' not in html
    assert instruments(db) == 0


def test_web_confirm_with_someone_elses_token_does_nothing(
    setup: Any, app: Any, client: Any, login: Any, db: Any
) -> None:
    _, lab, staff, other_staff = setup
    login(staff)
    html = _upload(client, "list.csv", as_csv(good_rows(lab.name))).get_data(as_text=True)
    token = html.split('name="token" value="', 1)[1].split('"', 1)[0]
    other = app.test_client()
    other.post(
        "/login", data={"email": other_staff.email, "password": "correct horse battery staple"}
    )
    assert other.post("/manage/import/confirm", data={"token": token}).status_code == 302
    assert instruments(db) == 0


def test_web_upload_refuses_wrong_type(setup: Any, client: Any, login: Any, db: Any) -> None:
    _, _, staff, _ = setup
    login(staff)
    response = _upload(client, "list.pdf", b"%PDF-1.4")
    assert response.status_code == 422
    assert "xlsx or .csv" in response.get_data(as_text=True).split('id="file-error"', 1)[1]
