"""The example's tests, run by Django's own runner (`python manage.py test`) on SQLite or
PostgreSQL (`DJANGO_SITE_DB`): the backend's mapping, its checks, transactional enqueue, and a
real worker process (`manage.py taskyard_worker --burst`) running tasks enqueued here."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase
from django.utils import timezone

from shop import tasks
from shop.models import Order
from taskyard.contrib.django.backend import TaskyardBackend
from taskyard.contrib.django.compat import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
)

HERE = Path(__file__).resolve().parents[1]
ON_POSTGRES = connection.vendor == "postgresql"


def tearDownModule() -> None:
    # Close the app's connections: the test database is dropped next.
    backend = task_backends["default"]
    url = backend.app.backend.url
    backend.close()
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)


def backend() -> TaskyardBackend:
    found = task_backends["default"]
    assert isinstance(found, TaskyardBackend)
    return found


def run_worker() -> str:
    """Run `manage.py taskyard_worker --burst` in a process of its own on this run's test
    databases (Django's and taskyard's) until nothing is left to run; its output."""
    env = {**os.environ, "TASKYARD_URL": backend().app.backend.url, "PYTHONUNBUFFERED": "1"}
    settings = connection.settings_dict
    if ON_POSTGRES:
        auth = quote(settings["USER"] or "", safe="")
        if settings["PASSWORD"]:
            auth += ":" + quote(settings["PASSWORD"], safe="")
        env["DJANGO_SITE_POSTGRES_URL"] = (
            f"postgres://{auth}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
        )
    else:
        env["DJANGO_SITE_SQLITE"] = str(settings["NAME"])
    done = subprocess.run(
        [sys.executable, "manage.py", "taskyard_worker", "--burst", "--concurrency", "4"],
        cwd=HERE, env=env, capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, f"worker exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


class MappingTests(TransactionTestCase):
    """A Django task call is a taskyard job, and its result reads back from that job."""

    def test_enqueue_stores_a_job_named_by_the_module_path(self) -> None:
        result = tasks.add.enqueue(2, b=3)
        self.assertEqual(result.status, TaskResultStatus.READY)
        job = backend().app.get_job(result.id)
        assert job is not None
        self.assertEqual(
            (job.task, job.queue, job.priority, job.payload),
            ("shop.tasks.add", "default", 0, {"args": [2], "kwargs": {"b": 3}}),
        )
        read = backend().get_result(result.id)
        self.assertEqual((read.status, read.args, read.kwargs, read.attempts), ("READY", [2], {"b": 3}, 0))
        self.assertEqual(read.task.func, tasks.add.func)

    def test_queue_and_priority_come_from_the_task(self) -> None:
        job = backend().app.get_job(tasks.send_receipt.using(priority=-5).enqueue(7).id)
        assert job is not None
        self.assertEqual((job.queue, job.priority), ("mail", -5))

    def test_run_after_schedules_the_job(self) -> None:
        when = timezone.now() + timedelta(hours=1)
        result = tasks.add.using(run_after=when).enqueue(1, 1)
        job = backend().app.get_job(result.id)
        assert job is not None
        self.assertEqual((job.status.value, job.run_at), ("scheduled", when))
        self.assertEqual(backend().get_result(result.id).status, TaskResultStatus.READY)

    def test_a_queue_not_in_QUEUES_is_refused(self) -> None:
        with self.assertRaises(InvalidTask):
            tasks.add.using(queue_name="elsewhere")

    def test_unknown_result_ids(self) -> None:
        for result_id in ("01NOSUCHJOB", "not a name/"):
            with self.assertRaises(TaskResultDoesNotExist):
                backend().get_result(result_id)

    def test_async_enqueue_and_result(self) -> None:
        result = async_to_sync(tasks.double.aenqueue)(4)
        read = async_to_sync(tasks.double.aget_result)(result.id)
        self.assertEqual((read.id, read.args), (result.id, [4]))


class PublicApiTests(TransactionTestCase):
    """What taskyard.contrib.django exports."""

    def test_the_public_names(self) -> None:
        import taskyard.contrib.django as contrib

        self.assertEqual(contrib.__all__, ("TaskyardBackend",))
        self.assertIs(contrib.TaskyardBackend, TaskyardBackend)


class CheckTests(TransactionTestCase):
    """A bad configuration is reported by Django's system checks."""

    def test_the_project_passes_its_checks(self) -> None:
        call_command("check", fail_level="WARNING")

    def messages(self, params: dict) -> list[str]:
        found = list(TaskyardBackend("broken", params).check())
        self.assertTrue(all(m.id == "taskyard.E001" for m in found))
        return [m.msg for m in found]

    def test_bad_options(self) -> None:
        msgs = self.messages(
            {"QUEUES": ["ok", "not ok"], "OPTIONS": {"BACKEND_URL": "memory://", "APP": "x:y", "ON_COMIT": 1}}
        )
        self.assertEqual(len(msgs), 3, msgs)
        self.assertIn("unknown key 'ON_COMIT' (did you mean 'ON_COMMIT'?)", msgs[0])
        self.assertIn("'not ok' is not a valid taskyard queue name", msgs[1])
        self.assertIn("BACKEND_URL or APP, not both", msgs[2])

    def test_a_bad_backend_url_or_app(self) -> None:
        self.assertIn("scheme 'nope' is not supported", self.messages({"OPTIONS": {"BACKEND_URL": "nope://x"}})[0])
        self.assertIn("is not a Taskyard app", self.messages({"OPTIONS": {"APP": "shop.tasks:add"}})[0])
        self.assertIn("No module named", self.messages({"OPTIONS": {"APP": "no_such_module:app"}})[0])
        self.assertIn("no database 'other'", self.messages({"OPTIONS": {"DATABASE": "other"}})[0])
        self.assertEqual(self.messages({"OPTIONS": {"BACKEND_URL": "memory://"}}), [])


class TransactionalEnqueueTests(TransactionTestCase):
    """Inside `transaction.atomic()` a job is stored with the transaction, never without it."""

    def test_a_rolled_back_transaction_leaves_no_job(self) -> None:
        with self.assertRaises(RuntimeError), transaction.atomic():
            Order.objects.create(item="tea")
            result = tasks.add.enqueue(1, 1)
            raise RuntimeError("payment declined")
        self.assertFalse(Order.objects.exists())
        with self.assertRaises(TaskResultDoesNotExist):
            backend().get_result(result.id)

    def test_the_job_is_stored_in_the_transaction_or_at_its_commit(self) -> None:
        with transaction.atomic():
            result = tasks.add.enqueue(1, 2)
            # taskyard's own connections cannot see it before the commit, either way.
            self.assertIsNone(backend().app.get_job(result.id))
            if ON_POSTGRES:  # in the transaction itself: Django's connection sees the row
                with connection.cursor() as cur:
                    cur.execute("SELECT task FROM taskyard.jobs WHERE id = %s", [result.id])
                    self.assertEqual(cur.fetchall(), [("shop.tasks.add",)])
        self.assertEqual(backend().get_result(result.id).args, [1, 2])

    def test_without_on_commit_a_store_that_cannot_share_stores_at_once(self) -> None:
        if ON_POSTGRES:
            self.skipTest("the PostgreSQL store shares Django's transaction: nothing to defer")
        other = TaskyardBackend("default", {"QUEUES": [], "OPTIONS": {"BACKEND_URL": backend().app.backend.url, "ON_COMMIT": False}})
        try:
            with self.assertRaises(RuntimeError), transaction.atomic():
                result = other.enqueue(tasks.add, [5], {"b": 5})
                raise RuntimeError("rolled back, the job stays")
            self.assertEqual(other.get_result(result.id).args, [5])
        finally:
            other.close()


class InsideTestCaseTests(TestCase):
    """Django's TestCase wraps each test in a transaction: jobs wait for its commit."""

    def test_capture_on_commit_callbacks_stores_the_job(self) -> None:
        if ON_POSTGRES:
            self.skipTest("on PostgreSQL the job is in the test's transaction (rolled back after it)")
        with self.captureOnCommitCallbacks(execute=True):
            result = tasks.add.enqueue(3, 4)
            with self.assertRaises(TaskResultDoesNotExist):
                backend().get_result(result.id)
        self.assertEqual(backend().get_result(result.id).args, [3, 4])


class WorkerProcessTests(TransactionTestCase):
    """A view enqueues through django.tasks; `manage.py taskyard_worker` runs it."""

    def test_a_worker_process_runs_the_tasks_and_results_read_back(self) -> None:
        response = self.client.post("/orders/", {"item": "green tea"}, content_type="application/json")
        self.assertEqual(response.status_code, 201)
        receipt_id, order = response.json()["result_id"], response.json()["order"]
        declined = tasks.charge.enqueue(12)
        context = tasks.whoami.enqueue("hi")
        doubled = tasks.double.enqueue(21)

        output = run_worker()
        self.assertIn("Django task(s)", output)

        receipt = tasks.send_receipt.get_result(receipt_id)
        self.assertEqual(receipt.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(receipt.return_value, f"receipt for order {order}: green tea")
        self.assertEqual(receipt.attempts, 1)
        self.assertTrue(receipt.worker_ids[0])
        self.assertIsNotNone(receipt.finished_at)
        self.assertEqual(
            self.client.get(f"/results/{receipt_id}/").json(),
            {"status": "SUCCESSFUL", "attempts": 1, "return_value": receipt.return_value},
        )

        failed = tasks.charge.get_result(declined.id)
        self.assertEqual(failed.status, TaskResultStatus.FAILED)
        self.assertEqual(len(failed.errors), 1)
        self.assertIs(failed.errors[0].exception_class, tasks.PaymentDeclined)
        self.assertIn("card declined for 12", failed.errors[0].traceback)
        self.assertIn('in charge', failed.errors[0].traceback)
        with self.assertRaises(ValueError):
            _ = failed.return_value

        self.assertEqual(
            tasks.whoami.get_result(context.id).return_value, {"label": "hi", "attempt": 1, "id": context.id}
        )
        self.assertEqual(tasks.double.get_result(doubled.id).return_value, 42)
