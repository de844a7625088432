"""prepare_schema: fresh databases, the first release's databases, add_columns, concurrency.

The first release's layout is the DDL its ``create_tables`` ran, per dialect:
``testing/release_1.sql`` (``testkit.create_release_1``), compiled from ``libs/grid_db/src/grid_db/models.py``
as of commit 9e51506 (a test recompiles it from git when the history is there).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
from sqlalchemy import Connection, MetaData, create_engine, event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from bybit_records import Record
from grid_db import (
    MIGRATIONS,
    RECORD_TABLES,
    Base,
    DatabaseFactory,
    DatabaseSettings,
    Migration,
    RecordTable,
    RowContext,
    RunRepository,
    add_columns,
    normalize_database_url,
    prepare_schema,
    tables,
    write_records,
)
from grid_db import migrations as migrations_module
from grid_db.migrations import schema_migrations
from testkit import create_release_1, release_1_ddl

RELEASE_1_COMMIT = "9e51506"
RELEASE_1_PATH = "libs/grid_db/src/grid_db/models.py"

USER_ID = "00000000-0000-4000-8000-0000000000a1"
ACCOUNT_ID = "00000000-0000-4000-8000-0000000000a2"
RUN_ID = "00000000-0000-4000-8000-0000000000a3"


@pytest.fixture
def factory_of() -> Iterator[Callable[[str], DatabaseFactory]]:
    """Opens DatabaseFactory objects on a URL and disposes of them after the test."""
    opened: list[DatabaseFactory] = []

    def open_(url: str) -> DatabaseFactory:
        factory = DatabaseFactory(DatabaseSettings(url=url))
        opened.append(factory)
        return factory

    yield open_
    for factory in opened:
        factory.dispose()


def _stamps(connection_or_engine: Any) -> list[tuple[int, str]]:
    statement = select(schema_migrations.c.version, schema_migrations.c.name).order_by(
        schema_migrations.c.version
    )
    if isinstance(connection_or_engine, Connection):
        return [tuple(row) for row in connection_or_engine.execute(statement)]  # type: ignore[misc]
    with connection_or_engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement)]  # type: ignore[misc]


EVERY_MIGRATION = [(m.version, m.name) for m in MIGRATIONS]


def test_migration_versions_are_increasing_from_one() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions[0] == 1
    assert versions == sorted(set(versions))


# ---- a fresh database --------------------------------------------------------------------


def test_a_fresh_database_is_stamped_with_every_migration(
    database_url: str, factory_of: Callable[[str], DatabaseFactory]
) -> None:
    factory = factory_of(database_url)
    assert prepare_schema(factory.engine) == [m.version for m in MIGRATIONS]
    assert set(inspect(factory.engine).get_table_names()) == set(Base.metadata.tables)
    assert _stamps(factory.engine) == EVERY_MIGRATION


def test_prepare_schema_a_second_time_is_a_no_op(
    database_url: str, factory_of: Callable[[str], DatabaseFactory]
) -> None:
    factory = factory_of(database_url)
    prepare_schema(factory.engine)
    with factory.engine.connect() as connection:
        before = connection.execute(select(schema_migrations)).all()
    statements: list[str] = []
    event.listen(
        factory.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    assert prepare_schema(factory.engine) == []
    factory.create_tables()
    changes = [
        s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER", "INSERT"))
    ]
    assert changes == []
    with factory.engine.connect() as connection:
        assert connection.execute(select(schema_migrations)).all() == before


# ---- a database the first release created ---------------------------------------------------


def test_the_fixture_is_what_the_first_release_created() -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    shown = subprocess.run(
        [git, "show", f"{RELEASE_1_COMMIT}:{RELEASE_1_PATH}"],
        cwd=Path(__file__).parent,
        capture_output=True,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"commit {RELEASE_1_COMMIT} is not in this checkout")
    # Its models module, loaded on its own (its own Base and MetaData, nothing shared).
    module = ModuleType("grid_db_release_1_models")
    sys.modules[module.__name__] = module  # declarative mapping resolves annotations here
    try:
        exec(compile(shown.stdout, RELEASE_1_PATH, "exec"), module.__dict__)
        metadata = module.Base.metadata
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            compiled = []
            for table in metadata.sorted_tables:
                compiled.append(str(CreateTable(table).compile(dialect=dialect)).strip())
                compiled += [
                    str(CreateIndex(index).compile(dialect=dialect)).strip()
                    for index in sorted(table.indexes, key=lambda i: str(i.name))
                ]
            assert compiled == release_1_ddl(dialect.name)
    finally:
        del sys.modules[module.__name__]


def _release_1_database(url: str, first: list[Record]) -> None:
    """Creates the first release's tables at ``url`` and stores ``first`` in them, one
    record per table, with the reference rows they point at, as that release did."""
    engine = create_engine(normalize_database_url(url))
    try:
        old = create_release_1(engine).tables
        with engine.begin() as connection:
            connection.execute(
                old["users"].insert(), {"id": USER_ID, "name": "old", "created_at_ms": 1}
            )
            connection.execute(
                old["bybit_accounts"].insert(),
                {
                    "id": ACCOUNT_ID,
                    "user_id": USER_ID,
                    "label": "old",
                    "testnet": True,
                    "created_at_ms": 1,
                },
            )
            connection.execute(
                old["runs"].insert(),
                {
                    "id": RUN_ID,
                    "status": "completed",
                    "started_at_ms": 1,
                    "ended_at_ms": 2,
                    "config_json": "{}",
                    "host": "h",
                    "pid": 1,
                    "software_version": "0.1.0",
                },
            )
            context = RowContext(run_id=RUN_ID, account_id=ACCOUNT_ID)
            for record in first:
                table = tables.table_of(type(record))
                (values,) = table.rows([record], context)
                row = dict(zip(table.column_names, values, strict=True))
                if row.pop("run_ref", False) is not False:  # that release stored the run id
                    row["run_id"] = RUN_ID
                connection.execute(old[table.name].insert(), row)
    finally:
        engine.dispose()


def test_a_first_release_database_is_brought_up_to_date(
    database_url: str,
    records: Any,
    db: Any,
    factory_of: Callable[[str], DatabaseFactory],
) -> None:
    every = records.one_of_each()
    # the first release had no order books: their table comes with today's schema
    written = [b for b in every if tables.table_of(type(b[0])) is not tables.orderbook_updates]
    _release_1_database(database_url, [batch[0] for batch in written])
    factory = factory_of(database_url)
    assert "schema_migrations" not in inspect(factory.engine).get_table_names()

    assert prepare_schema(factory.engine) == [m.version for m in MIGRATIONS]
    assert _stamps(factory.engine) == EVERY_MIGRATION
    assert set(inspect(factory.engine).get_table_names()) == set(Base.metadata.tables)

    # The old rows read back as records, through today's tables; trades and tickers
    # now name their run by its number.
    ref = RunRepository(factory.engine).ref_of(RUN_ID)
    assert ref == 1
    for batch in written:
        table = tables.table_of(type(batch[0]))
        assert db.stored(factory.engine, table) == [batch[0]], table.name
        (row,) = db.rows(factory.engine, table)
        by_ref = "run_ref" in table.column_names
        assert (row.run_ref if by_ref else row.run_id) == (ref if by_ref else RUN_ID)

    # Every record type is accepted; the old rows still count as stored.
    assert db.write(factory.engine, every[2], run_id=RUN_ID) == 2
    assert db.stored(factory.engine, tables.orderbook_updates) == every[2]
    for batch in written:
        table = tables.table_of(type(batch[0]))
        new = db.write(factory.engine, batch, run_id=RUN_ID, account_id=ACCOUNT_ID)
        assert new == (1 if table.ignores_duplicates else 2), table.name
    for batch in written:
        table = tables.table_of(type(batch[0]))
        stored = db.stored(factory.engine, table)
        expected = batch if table.ignores_duplicates else [batch[0], *batch]
        assert stored == expected, table.name

    assert prepare_schema(factory.engine) == []
    factory.create_tables()
    assert _stamps(factory.engine) == EVERY_MIGRATION


def test_a_first_release_database_gets_every_column_of_today(tmp_path: Path) -> None:
    """The migrations bring the first release's tables to every field of today's records."""
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        create_release_1(engine)
        prepare_schema(engine)
        columns = {
            t: {c["name"] for c in inspect(engine).get_columns(t)} for t in Base.metadata.tables
        }
    finally:
        engine.dispose()
    for table in RECORD_TABLES:
        assert set(table.column_names) <= columns[table.name], table.name


# ---- add_columns, on a throwaway table -------------------------------------------------


class ProbeV1(Record, frozen=True):
    natural_key: ClassVar[tuple[str, ...] | None] = ("key",)

    key: str
    value: str


class ProbeV2(Record, frozen=True):
    """ProbeV1 after a release added two fields."""

    natural_key: ClassVar[tuple[str, ...] | None] = ("key",)

    key: str
    value: str
    note: str | None
    flag: bool | None = None


def _probe_tables() -> tuple[RecordTable[ProbeV1], RecordTable[ProbeV2]]:
    return (
        RecordTable(ProbeV1, "probe", MetaData(), context=()),
        RecordTable(ProbeV2, "probe", MetaData(), context=()),
    )


def test_add_columns_adds_nullable_columns_to_an_existing_table(
    database_url: str, factory_of: Callable[[str], DatabaseFactory]
) -> None:
    v1, v2 = _probe_tables()
    factory = factory_of(database_url)
    v1.table.create(factory.engine)
    with factory.engine.begin() as connection:
        assert (
            write_records(connection, v1, [ProbeV1("a", "1"), ProbeV1("b", "2")], RowContext()) == 2
        )

    with factory.engine.begin() as connection:
        add_columns(v2, "note", "flag")(connection)
    columns = {c["name"]: c for c in inspect(factory.engine).get_columns("probe")}
    assert list(columns) == ["id", "key", "value", "note", "flag"]
    assert columns["note"]["nullable"]
    assert columns["flag"]["nullable"]

    with factory.engine.begin() as connection:
        add_columns(v2, "note", "flag")(connection)  # already there: nothing to do
        new = [ProbeV2("b", "x", "dup", True), ProbeV2("c", "3", "new", False)]
        assert write_records(connection, v2, new, RowContext()) == 1
        rows = connection.execute(select(v2.table).order_by(v2.table.c.id)).all()
    assert [v2.record_of(row) for row in rows] == [
        ProbeV2("a", "1", None, None),
        ProbeV2("b", "2", None, None),
        ProbeV2("c", "3", "new", False),
    ]


def _pending_probe_migrations(
    monkeypatch: pytest.MonkeyPatch, *, fail: bool = False
) -> tuple[RecordTable[ProbeV1], tuple[Migration, ...], list[int]]:
    """``MIGRATIONS`` made every migration plus three of the probe's: two add its columns, the
    last appends its version to the list returned (and raises, with ``fail``). Returns the
    probe's first table, the migrations, and that list."""
    v1, v2 = _probe_tables()
    calls: list[int] = []

    def count(version: int) -> Callable[[Connection], None]:
        def apply(_connection: Connection) -> None:
            calls.append(version)
            if fail:
                raise RuntimeError(f"migration {version} failed")

        return apply

    last = MIGRATIONS[-1].version
    pending = (
        *MIGRATIONS,
        Migration(last + 1, "probe.note", add_columns(v2, "note")),
        Migration(last + 2, "probe.flag", add_columns(v2, "flag")),
        Migration(last + 3, "count", count(last + 3)),
    )
    monkeypatch.setattr(migrations_module, "MIGRATIONS", pending)
    return v1, pending, calls


def test_pending_migrations_are_applied_in_order_and_once(
    database: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, pending, calls = _pending_probe_migrations(monkeypatch)
    v1.table.create(database.engine)
    last = MIGRATIONS[-1].version

    assert prepare_schema(database.engine) == [last + 1, last + 2, last + 3]
    assert calls == [last + 3]
    assert [c["name"] for c in inspect(database.engine).get_columns("probe")][-2:] == [
        "note",
        "flag",
    ]
    assert _stamps(database.engine) == [(m.version, m.name) for m in pending]
    assert prepare_schema(database.engine) == []
    assert calls == [last + 3]


def test_a_fresh_database_is_stamped_without_applying_migrations(
    database_url: str, factory_of: Callable[[str], DatabaseFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, pending, calls = _pending_probe_migrations(monkeypatch, fail=True)
    factory = factory_of(database_url)
    assert prepare_schema(factory.engine) == [m.version for m in pending]
    assert calls == []  # its tables are created as the records are now
    assert _stamps(factory.engine) == [(m.version, m.name) for m in pending]


def test_a_failing_migration_leaves_the_database_as_it_was(
    database: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pending migrations run in one transaction: all of them, or none."""
    v1, _, calls = _pending_probe_migrations(monkeypatch, fail=True)
    v1.table.create(database.engine)
    with pytest.raises(RuntimeError, match="failed"):
        prepare_schema(database.engine)
    assert calls == [MIGRATIONS[-1].version + 3]
    assert [c["name"] for c in inspect(database.engine).get_columns("probe")] == [
        "id",
        "key",
        "value",
    ]
    assert _stamps(database.engine) == EVERY_MIGRATION


# ---- several recorders starting at once --------------------------------------------------

PREPARERS = 6


def test_concurrent_schema_preparation_on_a_fresh_database(
    database_url: str, factory_of: Callable[[str], DatabaseFactory]
) -> None:
    """Each thread has its own engine, as separate recorder processes would."""
    factories = [factory_of(database_url) for _ in range(PREPARERS)]
    start = threading.Barrier(PREPARERS)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def prepare(factory: DatabaseFactory) -> None:
        try:
            start.wait(timeout=30)
            results.append(prepare_schema(factory.engine))
        except BaseException as error:  # collected, asserted below
            errors.append(error)

    threads = [threading.Thread(target=prepare, args=(f,)) for f in factories]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    # Exactly one of them created and stamped the schema; the others found it done.
    assert sorted(results) == [[]] * (PREPARERS - 1) + [[m.version for m in MIGRATIONS]]
    assert _stamps(factories[0].engine) == EVERY_MIGRATION
    assert set(inspect(factories[0].engine).get_table_names()) == set(Base.metadata.tables)


_PREPARE_IN_A_PROCESS = """
import sys
from grid_db import DatabaseFactory, DatabaseSettings, prepare_schema
factory = DatabaseFactory(DatabaseSettings(url=sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()  # the parent's go, once every process is ready
print(prepare_schema(factory.engine), flush=True)
factory.dispose()
"""


def test_concurrent_schema_preparation_from_several_processes(database_url: str) -> None:
    """Recorder processes started together on one new database: all of them start."""
    processes = 2
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _PREPARE_IN_A_PROCESS, database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n", child.stderr
        outputs = [child.communicate("go\n", timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0] * processes, outputs
    results = [out.strip() for out, _ in outputs]
    assert sorted(results, key=len) == ["[]"] * (processes - 1) + [
        str([m.version for m in MIGRATIONS])
    ]
    with DatabaseFactory(DatabaseSettings(url=database_url)) as factory:
        assert _stamps(factory.engine) == EVERY_MIGRATION
