"""Two hosts on one machine: a writer and a real Celery prefork worker that cannot see each other's disk.

Host A runs a real classic AG2 chat in ``ag2_logging_session`` with ``PIPELINE="celery"``; host B
runs ``celery worker --pool=prefork`` on Redis. Each runs in its own UTS and mount namespaces
(``tests/multihost.py``): its own host name, and an empty tmpfs over the other host's run
directory. The journal reaches host B only through ``JOURNAL_STORAGE``: a shared directory
(``FileSystemStorage``) or S3 (django-storages against moto's server on loopback). Both hosts
share the test database (the SQLite file or PostgreSQL).

Every test ends with the rows against what the fake LLM server served.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import autogen  # noqa: F401 - the writer runs classic AG2: collected only where it is installed
import pytest
from django.utils import timezone

from ag2_logging.models import DailyRollup, LLMCall, Session
from ag2_logging.pipeline.store import name_for
from ag2_logging.testing import FakeLLMServer
from tests.multihost import Host, namespaces_work, new_bucket, s3_client, s3_server, two_hosts
from tests.support import BROKER_URL, celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WRITER = "ag2-host-a"
WORKER = "ag2-host-b"

#: Host A's program: one real chat against the fake server, then (unless it is killed) wait
#: until its own pipeline thread has sanitized, published and enqueued, and print the session.
WRITER_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, socket
    import django
    django.setup()
    import tests.celery_app  # noqa: F401 - the project's Celery app: PIPELINE "celery" sends there
    import autogen
    from ag2_logging import ag2_logging_session, flush
    from ag2_logging.models import Session
    cfg = {"config_list": [{"model": "gpt-4o-mini", "api_key": "sk-x", "base_url": os.environ["LLM_URL"]}],
           "cache_seed": None}
    assistant = autogen.AssistantAgent("assistant", llm_config=cfg)
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False,
                                  max_consecutive_auto_reply=3)
    with ag2_logging_session("c-multihost", "wf_multihost", "acme") as rec:
        user.initiate_chat(assistant, message="go [[marker:mh]]", max_turns=3, silent=True)
        if os.environ.get("AG2_TEST_KILL"):
            os.kill(os.getpid(), signal.SIGKILL)
    flush()
    row = Session.objects.get(pk=rec.session_id)
    print(json.dumps({"session_id": str(rec.session_id), "hostname": socket.gethostname(),
                      "journal_path": row.journal_path, "sanitized": row.sanitized_at is not None,
                      "published": row.journal_published_at is not None}), flush=True)
    """
)


@pytest.fixture(scope="module", autouse=True)
def namespaces() -> None:
    # No fallback here: this machine allows unshare, and a test that quietly ran both "hosts" in
    # one namespace would prove nothing about a journal that must travel.
    reason = namespaces_work()
    if reason:
        pytest.fail(f"the multi-host tests need Linux UTS and mount namespaces: {reason}")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as endpoint:
        yield endpoint


def writer_env(host: Host, tmp_path: Path, llm: FakeLLMServer, queue: str, **extra: str) -> dict[str, str]:
    return host.env(
        tmp_path,
        LLM_URL=llm.base_url,
        AG2_LOGGING_PIPELINE="celery",
        CELERY_BROKER_URL=BROKER_URL,
        CELERY_TASK_ALWAYS_EAGER="false",
        AG2_TEST_CELERY_QUEUE=queue,
        # The writer's own start-up recovery (1 s after its first session opens) would take a
        # session that ended before it, not yet ingested, from the worker: these tests show who
        # ingests, so only the worker may.
        AG2_TEST_RECOVER_ON_START="false",
        **extra,
    )


def run_writer(host: Host, env: dict[str, str]) -> dict[str, Any]:
    proc = host.python(WRITER_SCRIPT, env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["hostname"] == host.name
    return report


def worker_results(log_path: Path, session_id: str) -> list[dict[str, Any]]:
    """The results the worker logged for ``ag2_logging.process_session`` of this session."""
    found = []
    for line in log_path.read_text().splitlines():
        match = re.search(
            r"Task ag2_logging\.process_session\[[^\]]+\] succeeded in [\d.]+s: (\{.*\})$", line
        )
        if match and session_id in match.group(1):
            found.append(ast.literal_eval(match.group(1)))
    return found


def wait_until_done(session_id: str, log_path: Path) -> Session:
    def done() -> bool:
        row = Session.objects.filter(pk=session_id).values("summarized_at", "pipeline_failed_at").get()
        return row["summarized_at"] is not None or row["pipeline_failed_at"] is not None

    try:
        wait_for(done, timeout=60, what=f"the worker to finish session {session_id}")
    except pytest.fail.Exception:
        row = Session.objects.filter(pk=session_id).values().get()
        pytest.fail(f"the worker did not finish session {session_id}: {row}\n{log_path.read_text()[-6000:]}")
    session = Session.objects.get(pk=session_id)
    assert session.pipeline_failed_at is None, (session.pipeline_error, log_path.read_text()[-3000:])
    return session


def assert_rows_match_served(session: Session, llm: FakeLLMServer, calls: int = 3) -> None:
    served = llm.successful()
    rows = list(session.llm_calls.all())
    assert len(rows) == len(served) == session.call_count == calls
    assert sorted(str(r.response_id) for r in rows) == sorted(str(s.response_id) for s in served)
    assert None not in {s.response_id for s in served}
    total = llm.total_usage()
    assert (
        session.prompt_tokens,
        session.completion_tokens,
        session.cached_tokens,
        session.reasoning_tokens,
    ) == (
        total.prompt_tokens,
        total.completion_tokens,
        total.cached_tokens,
        total.reasoning_tokens,
    )
    costs = [r.cost for r in rows if r.cost is not None]
    assert len(costs) == len(rows) and session.total_cost == sum(costs) > 0  # every call priced
    assert LLMCall.objects.count() == len(served)  # nothing twice, nothing elsewhere
    rollup = DailyRollup.objects.get()
    assert (rollup.call_count, rollup.prompt_tokens, rollup.completion_tokens) == (
        calls,
        total.prompt_tokens,
        total.completion_tokens,
    )


def assert_handed_over(session: Session, report: dict[str, Any], log_path: Path) -> None:
    """Written and published on host A, ingested and rolled up by the worker on host B."""
    assert session.host == WRITER and session.status == "completed"
    assert report["sanitized"] and report["published"]  # by the writer, before it exited
    assert session.sanitized_at is not None and session.journal_published_at is not None
    assert session.journal_storage_name == name_for(session.pk, session.started_at)
    assert session.ingested_at is not None and session.summarized_at is not None
    results = worker_results(log_path, str(session.pk))
    assert results, log_path.read_text()[-3000:]
    assert results[-1]["ran"] == ["ingest", "summarize"], results
    assert results[-1]["ingest"]["llm_calls"] == 3


def test_journal_travels_through_a_shared_directory(llm: FakeLLMServer, tmp_path: Path) -> None:
    host_a, host_b = two_hosts(tmp_path, WRITER, WORKER)
    shared = tmp_path / "shared-journals"
    storage = {"AG2_TEST_JOURNAL_STORAGE": f"fs:{shared}"}
    with celery_worker(
        tmp_path,
        concurrency=2,
        loglevel="INFO",
        prefix=host_b.prefix(),
        extra_env=host_b.settings_env(**storage),
    ) as (queue, log_path):
        report = run_writer(host_a, writer_env(host_a, tmp_path, llm, queue, **storage))
        session = wait_until_done(report["session_id"], log_path)

    assert_handed_over(session, report, log_path)
    assert_rows_match_served(session, llm)
    published = shared / session.journal_storage_name
    assert published.read_bytes() == Path(report["journal_path"]).read_bytes()
    assert Path(report["journal_path"]).is_relative_to(host_a.journal_dir)


def test_journal_travels_through_s3(llm: FakeLLMServer, tmp_path: Path, s3_endpoint: str) -> None:
    host_a, host_b = two_hosts(tmp_path, WRITER, WORKER)
    bucket = new_bucket(s3_endpoint)
    storage = {"AG2_TEST_JOURNAL_STORAGE": f"s3:{s3_endpoint}|{bucket}"}
    with celery_worker(
        tmp_path,
        concurrency=2,
        loglevel="INFO",
        prefix=host_b.prefix(),
        extra_env=host_b.settings_env(**storage),
    ) as (queue, log_path):
        report = run_writer(host_a, writer_env(host_a, tmp_path, llm, queue, **storage))
        session = wait_until_done(report["session_id"], log_path)

    assert_handed_over(session, report, log_path)
    assert_rows_match_served(session, llm)
    body = s3_client(s3_endpoint).get_object(Bucket=bucket, Key=session.journal_storage_name)["Body"].read()
    assert body == Path(report["journal_path"]).read_bytes()


def test_a_journal_no_host_can_read_ends_as_a_visible_failure(llm: FakeLLMServer, tmp_path: Path) -> None:
    """No JOURNAL_STORAGE: the journal stays on host A, the worker on host B cannot read it. After
    its retries the session is failed with a reason naming both hosts, its recorded totals kept;
    the doctor says so; recovery on host A then brings it in."""
    host_a, host_b = two_hosts(tmp_path, WRITER, WORKER)
    with celery_worker(
        tmp_path,
        concurrency=2,
        loglevel="INFO",
        prefix=host_b.prefix(),
        extra_env=host_b.settings_env(AG2_TEST_PIPELINE_MAX_RETRIES="1"),
    ) as (queue, log_path):
        env_a = writer_env(host_a, tmp_path, llm, queue)
        report = run_writer(host_a, env_a)
        assert report["sanitized"] and not report["published"]

        def failed() -> bool:
            return Session.objects.filter(pk=report["session_id"], pipeline_failed_at__isnull=False).exists()

        wait_for(failed, timeout=60, what="the worker to give up")
        session = Session.objects.get(pk=report["session_id"])
        doctor = host_b.manage(
            ["ag2_logging_doctor", "--timeout", "1"],
            host_b.env(tmp_path, AG2_LOGGING_PIPELINE="celery", CELERY_BROKER_URL=BROKER_URL,
                       CELERY_TASK_ALWAYS_EAGER="false", AG2_TEST_CELERY_QUEUE=queue),
        )  # fmt: skip

    log = log_path.read_text()
    assert session.status == "completed" and session.host == WRITER
    assert session.ingested_at is None and session.summarized_at is None
    assert session.pipeline_attempts == 2  # the first try and PIPELINE_MAX_RETRIES=1 retry
    assert f"not on host {WORKER!r} (written on {WRITER!r})" in session.pipeline_error, session.pipeline_error
    assert "JOURNAL_STORAGE" in session.pipeline_error
    assert "gave up on session" in log and report["session_id"] in log
    # Celery records the task that gave up as a failure, and no run of it ever ingested.
    assert "PipelineFailed" in log and "raised unexpected" in log, log[-3000:]
    results = worker_results(log_path, report["session_id"])
    assert all("ingest" not in r.get("ran", []) for r in results), results
    # The totals the writer recorded stay on the row; no rows or rollups were invented.
    assert session.call_count == len(llm.successful()) == 3
    assert LLMCall.objects.count() == 0 and not DailyRollup.objects.exists()

    # Everything else is healthy on host B: the one problem is the session that is not in the reports.
    assert doctor.returncode != 0, doctor.stdout
    assert "problems found: sessions in the reports" in doctor.stderr, doctor.stdout + doctor.stderr[-2000:]
    failing = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 1 and "1 failed" in failing[0] and str(session.pk) in failing[0], doctor.stdout
    assert f"ok   worker consuming the queue: queue {queue!r} consumed by celery@{WORKER}" in doctor.stdout

    # The remedy the doctor names: recovery on the writing host, which has the journal.
    recover = host_a.manage(["ag2_logging_recover", "--local"], env_a)
    assert recover.returncode == 0, recover.stdout + recover.stderr[-3000:]
    session.refresh_from_db()
    assert session.pipeline_failed_at is None and session.pipeline_error == ""
    assert session.ingested_at is not None and session.summarized_at is not None
    assert_rows_match_served(session, llm)


def test_a_crashed_writer_is_completed_by_recovery_on_its_host(
    llm: FakeLLMServer, tmp_path: Path, s3_endpoint: str
) -> None:
    """Host A's process is killed mid-session. Recovery on host B finds the writer silent but
    cannot read its journal, so it waits; ``ag2_logging_recover --local`` on host A sanitizes,
    publishes and ingests it as ``interrupted``."""
    host_a, host_b = two_hosts(tmp_path, WRITER, WORKER)
    bucket = new_bucket(s3_endpoint)
    storage = {"AG2_TEST_JOURNAL_STORAGE": f"s3:{s3_endpoint}|{bucket}"}
    env_a = writer_env(host_a, tmp_path, llm, "ag2-test-unused", AG2_TEST_KILL="1", **storage)
    proc = host_a.python(WRITER_SCRIPT, env_a)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    session = Session.objects.get()
    assert session.status == "running" and session.host == WRITER and session.call_count == 0
    assert len(llm.successful()) == 3

    # Elsewhere: the writer is silent (--stale-after 0) but its journal was never published.
    elsewhere = host_b.manage(
        ["ag2_logging_recover", "--stale-after", "0", "--json"], host_b.env(tmp_path, **storage)
    )
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr[-3000:]
    # (the list holds the session twice: see test_recovery_elsewhere_lists_a_waiting_session_once)
    assert set(json.loads(elsewhere.stdout)["waiting_for_host"]) == {str(session.pk)}
    session.refresh_from_db()
    assert session.ingested_at is None and session.pipeline_failed_at is None

    on_host = host_a.manage(["ag2_logging_recover", "--local", "--json"], env_a)
    assert on_host.returncode == 0, on_host.stdout + on_host.stderr[-3000:]
    session.refresh_from_db()
    assert session.status == "interrupted"
    assert session.sanitized_at is not None and session.journal_published_at is not None
    assert session.ingested_at is not None and session.summarized_at is not None
    assert session.pipeline_failed_at is None
    assert_rows_match_served(session, llm)
    journal = host_a.journal_dir / session.started_at.strftime("%Y-%m-%d") / f"{session.pk}.jsonl"
    body = s3_client(s3_endpoint).get_object(Bucket=bucket, Key=session.journal_storage_name)["Body"].read()
    assert body == journal.read_bytes()

    again = host_a.manage(["ag2_logging_recover", "--local", "--json"], env_a)  # idempotent
    assert again.returncode == 0 and json.loads(again.stdout)["interrupted"] == 0
    assert LLMCall.objects.count() == 3


def test_recovery_elsewhere_lists_a_waiting_session_once(tmp_path: Path) -> None:
    """Recovery on a host that is not the writer's, for a silent writer whose journal was never
    published: the session is reported once, as waiting for its host (no journal here to read)."""
    from ag2_logging.pipeline.recovery import recover_sessions

    started = timezone.now() - dt.timedelta(hours=1)
    session = Session.objects.create(
        chat_id="c-elsewhere", started_at=started, last_heartbeat_at=started, host=WRITER, pid=1,
        journal_path=str(tmp_path / "on-another-host.jsonl"),
    )  # fmt: skip
    result = recover_sessions(stale_after=0)
    session.refresh_from_db()
    assert session.status == "interrupted" and session.pipeline_failed_at is None
    assert result.interrupted == [str(session.pk)]
    assert result.waiting == [str(session.pk)]
