"""What one run of the operator holds: its configuration, the Store, the reconciler
with its expectations, the autoscaler, the Kafka lag readers, the routing-table
publisher and the retries of failed reconciles.

The Kopf startup handler builds one `Runtime` and keeps it in Kopf's operator memo;
every handler reaches it through its own `memo` kwarg (`runtime_of`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from reelplane_operator import conditions
from reelplane_operator.expectations import Expectations
from reelplane_operator.kube import Kube
from reelplane_operator.lag import KafkaLagReader
from reelplane_operator.meta import ParentKey, parent_key
from reelplane_operator.models import TranscodePoolSpec
from reelplane_operator.reconcile import Reconciler
from reelplane_operator.scaling import Autoscaler
from reelplane_operator.store import Store

log = logging.getLogger("reelplane_operator")

RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: The memo keys: what `reelplane operator run` passes in, what startup builds.
CONFIG_KEY = "config"
RUNTIME_KEY = "runtime"


def default_identity() -> str:
    """This process's peering identity (as Kopf's: user@host/pid)."""
    return f"reelplane-operator@{socket.gethostname()}/{os.getpid()}"


@dataclass
class OperatorConfig:
    """How `reelplane operator run` configured this process."""

    namespace: str | None = None
    peering: str | None = None
    priority: int = field(default_factory=lambda: random.randint(1, 1_000_000))
    peering_lifetime_s: int = 60  # Kopf's default
    identity: str = field(default_factory=default_identity)
    routing_period_s: float = 2.0
    kafka_timeout_s: float = 10.0


def config_of(memo: kopf.Memo) -> OperatorConfig:
    """The configuration passed in the operator memo (defaults when run otherwise)."""
    config = memo.get(CONFIG_KEY)
    return config if isinstance(config, OperatorConfig) else OperatorConfig()


def runtime_of(memo: kopf.Memo) -> Runtime:
    """The Runtime the startup handler put in the memo (resource memos are shallow
    copies of the operator's, so every handler sees the same one)."""
    runtime = memo.get(RUNTIME_KEY)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the operator has not started")
    return runtime


class Runtime:
    """Everything the handlers share during one run of the operator."""

    def __init__(self, config: OperatorConfig, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.store = Store()
        self.expectations = Expectations()
        self.autoscaler = Autoscaler()
        self.reconciler = Reconciler(
            kube, self.store, self.autoscaler, expectations=self.expectations
        )
        self.lag_readers: dict[str, KafkaLagReader] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.retries: set[asyncio.Task[None]] = set()
        self.failures: dict[ParentKey, int] = {}
        self.pending_retry: set[ParentKey] = set()
        self.running: set[ParentKey] = set()
        self.rerun: set[ParentKey] = set()

    # -- reconcile with retries ------------------------------------------------------
    async def reconcile(self, key: ParentKey) -> None:
        """Reconcile the stored resource `key`; on failure schedule a retry.

        Requests for a key that is being reconciled are coalesced into one more run
        after the current one (a burst of child events costs two passes, not N), and
        each pass reads the newest stored version of the resource.
        """
        if key in self.running:
            self.rerun.add(key)
            return
        self.running.add(key)
        try:
            while True:
                self.rerun.discard(key)
                await self._reconcile_once(key)
                if key not in self.rerun:
                    break
        finally:
            self.running.discard(key)

    async def _reconcile_once(self, key: ParentKey) -> None:
        body = self.store.parents.get(key)
        if body is None:
            return
        try:
            await self.reconciler.reconcile(body)
        except Exception as exc:
            attempt = self.failures.get(key, 0)
            self.failures[key] = attempt + 1
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            log.warning("reconcile %s failed (%r); retry in %.0fs", "/".join(key), exc, delay)
            self._retry_later(key, delay)
        else:
            self.failures.pop(key, None)

    def _retry_later(self, key: ParentKey, delay_s: float) -> None:
        if key in self.pending_retry:
            return
        self.pending_retry.add(key)

        async def later() -> None:
            await asyncio.sleep(delay_s)
            self.pending_retry.discard(key)
            await self.reconcile(key)

        task = asyncio.create_task(later())
        self.retries.add(task)
        task.add_done_callback(self.retries.discard)

    def forget(self, key: ParentKey, uid: str) -> None:
        """Drop everything remembered about a deleted custom resource."""
        self.reconciler.forget(uid, key)
        self.store.forget_parent(key)
        self.autoscaler.forget((key[1], key[2]))
        self.failures.pop(key, None)

    # -- lag -------------------------------------------------------------------------
    def lag_reader(self, bootstrap: str) -> KafkaLagReader:
        reader = self.lag_readers.get(bootstrap)
        if reader is None:
            reader = self.lag_readers[bootstrap] = KafkaLagReader(
                bootstrap, self.config.kafka_timeout_s
            )
        return reader

    async def poll_pool(self, body: Mapping[str, Any]) -> None:
        """Read one pool's lag if its poll interval has passed, and reconcile it if the
        reading changed anything."""
        key = parent_key(body)
        spec = TranscodePoolSpec.model_validate(body.get("spec") or {})
        pool = (key[1], key[2])
        now_s = time.monotonic()
        if not self.autoscaler.due(pool, spec, now_s):
            return
        reading, error = None, None
        try:
            reading = await self.lag_reader(spec.kafka.bootstrap_servers).read(
                spec.kafka.topic, spec.kafka.consumer_group, spec.kafka.offset_reset_policy
            )
        except Exception as exc:
            error = (
                f"cannot read lag from {spec.kafka.bootstrap_servers}: {exc or type(exc).__name__}"
            )
        changed = self.autoscaler.observe(
            pool, spec, reading, error, now_s, conditions.now_rfc3339()
        )
        if changed:
            await self.reconcile(key)

    # -- routing table ---------------------------------------------------------------
    async def routing_loop(self) -> None:
        while True:
            # Coalesces a burst of PoPs turning Ready into one write per period.
            await asyncio.sleep(self.config.routing_period_s)
            try:
                await self.reconciler.publish_routing()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("routing table publish failed; will retry")

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.routing_loop()))

    async def stop(self) -> None:
        tasks = [*self.tasks, *self.retries]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for reader in self.lag_readers.values():
            await reader.close()
        await self.kube.close()
