"""The ``health.json`` of every session that is recording now.

Only a SQLite session has a folder, and so a ``health.json``; a server database has none.
"""

from __future__ import annotations

from recorder.health_file import FILE_NAME as HEALTH_FILE_NAME
from recorder.health_file import read_health_file
from recorder_tools.report.contents import DatabaseContents
from recorder_tools.report.model import LiveHealth, SessionFacts, StreamLiveness
from recorder_tools.schema import RUN_RUNNING


def live_health(
    contents: list[DatabaseContents], sessions: list[SessionFacts], now_ms: int
) -> list[LiveHealth]:
    """The live health of the sessions in ``sessions`` still recording (process alive)."""
    running = {s.run_id: s for s in sessions if s.status == RUN_RUNNING and not s.process_gone}
    live = []
    for db in contents:
        if db.source.path is None:
            continue
        document = read_health_file(db.source.path.parent / HEALTH_FILE_NAME)
        if document is None or document.get("run_id") not in running:
            continue
        if document.get("status") != "running":
            continue
        written = int(document.get("written_at_ms") or 0)
        interval = float(document.get("interval_s") or 0)
        age = (now_ms - written) / 1000
        streams = [
            StreamLiveness(
                name=str(s.get("name")),
                state=str(s.get("state")),
                last_message_age_s=s.get("last_message_age_s"),
                messages_per_s=s.get("messages_per_s"),
            )
            for s in document.get("streams") or []
            if isinstance(s, dict)
        ]
        live.append(
            LiveHealth(
                folder=db.source.label,
                run_id=str(document["run_id"]),
                written_at_ms=written,
                age_s=age,
                stale=age > 2 * interval + 30,
                streams=streams,
                buffered_rows=sum(
                    int(w.get("buffered") or 0) for w in document.get("writers") or []
                ),
                reconnects=int(document.get("reconnects") or 0),
            )
        )
    return live
