"""Apache Kafka 4.x in KRaft mode: one combined broker+controller as a plain JVM.

The jars come from Maven Central through `mvn dependency:copy-dependencies`
(`kafka_2.13` plus the log4j2 jars its POM leaves out) into `cache/kafka/lib`;
no tarball, no container. The node keeps its log dirs under `data/kafka/` and
is formatted once with `kafka.tools.StorageTool`.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import uuid
from pathlib import Path
from typing import Any

from reelplane.infra.harness import (
    Server,
    fetch_maven_jars,
    port_open,
    run_step,
)

KAFKA_VERSION = "4.3.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.25.3"
SLF4J_VERSION = "2.0.17"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>reelplane.infra</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- Pinned: otherwise a transitive slf4j-api 1.7 wins and the log4j2 binding
         (an slf4j 2 provider) is ignored, so Kafka logs nothing. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{plugin}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""

# Console only: the harness sends stdout to run/kafka.log. WARN everywhere, INFO
# only for the lifecycle lines (starting, started, shutting down, topic
# auto-creation, log recovery), so the log stays short enough to read.
_LOG4J2 = """status = warn
name = reelplane-kafka
# Kafka logs its own shutdown from a JVM shutdown hook: log4j's hook must not
# close the logging first (it would fall back to a bare SimpleLogger).
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{yyyy-MM-dd HH:mm:ss,SSS}] %p %m (%c{1})%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.main.name = kafka.Kafka
logger.main.level = INFO
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
logger.controller.name = kafka.server.ControllerServer
logger.controller.level = INFO
logger.shared.name = kafka.server.SharedServer
logger.shared.level = INFO
logger.lifecycle.name = org.apache.kafka.server.BrokerLifecycleManager
logger.lifecycle.level = INFO
logger.logmanager.name = kafka.log.LogManager
logger.logmanager.level = INFO
logger.autotopics.name = kafka.server.DefaultAutoTopicCreationManager
logger.autotopics.level = INFO
"""


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, url-safe base64, no padding, no leading '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class Kafka(Server):
    name = "kafka"
    port = 19092
    controller_port = 19093
    start_timeout_s = 120.0
    setting = "REELPLANE_BUS_URL"

    @property
    def url(self) -> str:
        return f"kafka://{self.address}"

    # -- paths ---------------------------------------------------------------
    @property
    def lib_dir(self) -> Path:
        return self.cache_dir / "lib"

    @property
    def _stamp(self) -> Path:
        return self.lib_dir / f".complete-{KAFKA_VERSION}-{LOG4J_VERSION}-{SLF4J_VERSION}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    # -- install -------------------------------------------------------------
    def install(self) -> None:
        fetch_maven_jars(
            self.name,
            self.cache_dir,
            pom_xml=_POM.format(
                scala=SCALA_VERSION,
                kafka=KAFKA_VERSION,
                log4j=LOG4J_VERSION,
                slf4j=SLF4J_VERSION,
                plugin=DEPENDENCY_PLUGIN_VERSION,
            ),
            stamp=self._stamp,
            main_jar=f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar",
            what=f"Kafka {KAFKA_VERSION} (log4j {LOG4J_VERSION}, slf4j {SLF4J_VERSION})",
        )

    # -- prepare -------------------------------------------------------------
    def _properties(self) -> str:
        host = self.host
        settings: dict[str, Any] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            # Topics: created on first use, 6 partitions, one replica.
            "num.partitions": 6,
            "auto.create.topics.enable": "true",
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            # Internal topics on a single node: replication 1, few partitions so they
            # are created quickly.
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 6,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            # Consumer groups join at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": 0,
            # Sized for a small machine.
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 2,
            "background.threads": 4,
            # Keep the disk footprint of a dev node small.
            "log.retention.hours": 24,
            "log.retention.bytes": 1024 * 1024 * 1024,
            "log.segment.bytes": 64 * 1024 * 1024,
            "auto.leader.rebalance.enable": "false",
            "delete.topic.enable": "true",
        }
        lines = ["# Written by reelplane's infra harness; rewritten on every start."]
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._properties())
        self.log4j_file.write_text(_LOG4J2)
        if (self.log_dir / "meta.properties").is_file():
            return  # formatted on an earlier start: keep the data
        cluster_id = _cluster_id()
        run_step(
            self.name,
            f"formatting KRaft storage (cluster {cluster_id})",
            [
                *self._java(heap=("-Xms64m", "-Xmx256m")),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
            ],
            cwd=self.data_dir,
        )

    # -- run -----------------------------------------------------------------
    def _java(self, heap: tuple[str, str] = ("-Xms512m", "-Xmx1g")) -> list[str]:
        return [
            "java",
            *heap,
            "-server",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            f"{self.lib_dir}/*",
        ]

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [*self._java(), "kafka.Kafka", str(self.config_file)], {}

    # -- readiness -----------------------------------------------------------
    def ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._probe())
        # Called from inside an event loop: probe on a thread of its own.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._probe()).result()

    async def _probe(self, timeout_s: float = 5.0) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.address,
            request_timeout_ms=int(timeout_s * 1000),
            client_id="reelplane-infra-probe",
        )
        try:
            async with asyncio.timeout(timeout_s):
                await admin.start()
                cluster: dict[str, Any] = await admin.describe_cluster()
        finally:
            await admin.close()
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) >= 0
